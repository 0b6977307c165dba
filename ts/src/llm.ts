/**
 * The model substrate: the Anthropic Messages API through `@anthropic-ai/sdk`, with the output contract sent as
 * structured output (`output_config.format`, a JSON schema, transformed by the SDK for what the API accepts; the
 * full contract is still checked here with Zod). Transport faults (429, 408, 409, 5xx, 529, dropped connections)
 * are retried with backoff inside the caller's deadline, honouring `retry-after`; anything else the API refuses is
 * an LLMError at once. Content is never judged here.
 */

import Anthropic from "@anthropic-ai/sdk";
import { transformJSONSchema } from "@anthropic-ai/sdk/lib/transform-json-schema";

import { BudgetExceeded, LLMError } from "./errors.js";
import type { Message } from "./prompt.js";
import type { JsonSchema } from "./schema.js";

export interface ModelRequest {
  model: string;
  messages: readonly Message[];
  schema: JsonSchema;
  schemaName: string;
  maxTokens: number;
  temperature?: number | undefined;
  /** Absolute deadline (performance.now() clock); Infinity for none. */
  deadline: number;
}

export interface ModelResponse {
  content: string;
  model: string;
  tokensIn: number;
  tokensOut: number;
  /** null when the model's price is unknown. */
  costUsd: number | null;
  durationMs: number;
  transportAttempts: number;
  transportErrors: string[];
}

/** What runs an infer attempt: the Anthropic adapter, or any object with the same method (tests, other providers). */
export interface ModelClient {
  complete(request: ModelRequest): Promise<ModelResponse>;
  /** Dollars per token, or undefined when the price is unknown (used to reserve a call's worst case). */
  price(model: string): Price | undefined;
  /** Count the prompt before the call (to reserve its worst case); clients that cannot count may estimate. */
  quote(request: ModelRequest): Promise<Quote>;
}

export type { Price } from "./budget.js";
import type { Price } from "./budget.js";

/** A call's prompt as counted before it is made, and the model's most output tokens (if known). */
export interface Quote {
  promptTokens: number;
  /** True when a tokenizer counted it; false for the generous estimate (about 2 characters a token). */
  exact: boolean;
  maxOutputTokens: number | undefined;
}

/** A generous count for a prompt no tokenizer counted: about 2 characters a token (Python's `estimate_quote`). */
export function estimatePromptTokens(messages: readonly Message[], schema?: JsonSchema): number {
  let text = JSON.stringify(messages);
  if (schema !== undefined) text += JSON.stringify(schema);
  return Math.ceil(text.length / 2);
}

/** Dollars per token of current Anthropic models (list prices); pass `prices` to add or override. */
export const ANTHROPIC_PRICES: Readonly<Record<string, Price>> = Object.freeze({
  "claude-haiku-4-5": { input: 1e-6, output: 5e-6 },
  "claude-sonnet-4-5": { input: 3e-6, output: 15e-6 },
  "claude-sonnet-4": { input: 3e-6, output: 15e-6 },
  "claude-opus-4-5": { input: 5e-6, output: 25e-6 },
  "claude-opus-4-1": { input: 15e-6, output: 75e-6 },
  "claude-3-5-haiku-latest": { input: 0.8e-6, output: 4e-6 },
});

/** The most output tokens of current Anthropic models (what a call may ask for when a function sets no maxTokens). */
export const ANTHROPIC_MAX_OUTPUT: Readonly<Record<string, number>> = Object.freeze({
  "claude-haiku-4-5": 64_000,
  "claude-sonnet-4-5": 64_000,
  "claude-sonnet-4": 64_000,
  "claude-opus-4-5": 64_000,
  "claude-opus-4-1": 32_000,
  "claude-3-5-haiku-latest": 8_192,
});

/** The API's model name for a plan's model string (`anthropic/claude-haiku-4-5` → `claude-haiku-4-5`). */
export function apiModel(model: string): string {
  return model.startsWith("anthropic/") ? model.slice("anthropic/".length) : model;
}

const RETRIED = new Set([408, 409, 429]);

export interface AnthropicModelOptions {
  /** A configured SDK client; otherwise one is made from `apiKey`/`baseURL` (or ANTHROPIC_API_KEY/ANTHROPIC_BASE_URL). */
  client?: Anthropic;
  apiKey?: string;
  baseURL?: string;
  /** Extra attempts after a transport fault (so at most this + 1 calls). */
  maxTransportRetries?: number;
  /** First backoff in seconds; doubles per retry with jitter, up to `backoffMax`. */
  backoffBase?: number;
  backoffMax?: number;
  /** Seconds one HTTP attempt may take. */
  requestTimeout?: number;
  prices?: Record<string, Price>;
  /**
   * How a call's prompt is counted before it is made: "api" asks the Messages API's count_tokens endpoint (exact;
   * the estimate is used when it fails), "estimate" counts about 2 characters a token (generous). Default "api".
   */
  countTokens?: "api" | "estimate";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function retryAfter(headers: Headers | undefined): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms !== null && !Number.isNaN(Number(ms))) return Number(ms) / 1000;
  const value = headers.get("retry-after");
  if (value === null) return undefined;
  if (!Number.isNaN(Number(value))) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

function detail(error: unknown): string {
  const text = (error instanceof Error ? error.message : String(error)).split(/\s+/).join(" ");
  return text.length <= 300 ? text : text.slice(0, 299) + "…";
}

export class AnthropicModel implements ModelClient {
  readonly client: Anthropic;
  private readonly retries: number;
  private readonly backoffBase: number;
  private readonly backoffMax: number;
  private readonly requestTimeout: number;
  private readonly prices: Record<string, Price>;
  private readonly countTokens: "api" | "estimate";

  constructor(options: AnthropicModelOptions = {}) {
    this.client =
      options.client ??
      new Anthropic({
        apiKey: options.apiKey ?? process.env["ANTHROPIC_API_KEY"] ?? "no-key",
        ...(options.baseURL ? { baseURL: options.baseURL } : {}),
        maxRetries: 0,
      });
    this.retries = options.maxTransportRetries ?? 4;
    this.backoffBase = options.backoffBase ?? 0.25;
    this.backoffMax = options.backoffMax ?? 8;
    this.requestTimeout = options.requestTimeout ?? 120;
    this.prices = { ...ANTHROPIC_PRICES, ...(options.prices ?? {}) };
    this.countTokens = options.countTokens ?? "api";
  }

  private body(request: ModelRequest): Anthropic.MessageCreateParamsNonStreaming {
    const system = request.messages.filter((m) => m.role === "system").map((m) => m.content).join("\n\n");
    const user = request.messages.filter((m) => m.role !== "system");
    return {
      model: apiModel(request.model),
      max_tokens: request.maxTokens,
      system,
      messages: [{ role: "user", content: user.map((m) => ({ type: "text" as const, text: m.content })) }],
      output_config: { format: { type: "json_schema", schema: transformJSONSchema(structuredClone(request.schema)) } },
      // `temperature` is not sent: the Messages API of @anthropic-ai/sdk 1.x no longer takes it.
    };
  }

  async quote(request: ModelRequest): Promise<Quote> {
    const maxOutputTokens = ANTHROPIC_MAX_OUTPUT[apiModel(request.model)];
    if (this.countTokens === "api") {
      try {
        const { max_tokens: _, ...params } = this.body(request);
        const left = request.deadline - performance.now();
        const counted = await this.client.messages.countTokens(params, { timeout: Math.ceil(Math.max(1, Math.min(30_000, left))), maxRetries: 0 });
        return { promptTokens: counted.input_tokens, exact: true, maxOutputTokens };
      } catch {
        // an endpoint that cannot count (or a proxy without it): the generous estimate still fails closed
      }
    }
    return { promptTokens: estimatePromptTokens(request.messages, request.schema), exact: false, maxOutputTokens };
  }

  price(model: string): Price | undefined {
    return this.prices[apiModel(model)] ?? this.prices[model];
  }

  async complete(request: ModelRequest): Promise<ModelResponse> {
    const started = performance.now();
    const body = this.body(request);
    const errors: string[] = [];
    for (let attempt = 1; ; attempt++) {
      const left = request.deadline - performance.now();
      const timeout = Math.ceil(Math.max(1, Math.min(this.requestTimeout * 1000, left)));
      try {
        const message = await this.client.messages.create(body, { timeout, maxRetries: 0 });
        const content = message.content
          .filter((block): block is Anthropic.TextBlock => block.type === "text")
          .map((block) => block.text)
          .join("");
        const usage = message.usage;
        const tokensIn = usage.input_tokens + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0);
        const tokensOut = usage.output_tokens;
        const price = this.price(request.model);
        return {
          content,
          model: message.model || request.model,
          tokensIn,
          tokensOut,
          costUsd: price ? tokensIn * price.input + tokensOut * price.output : null,
          durationMs: performance.now() - started,
          transportAttempts: attempt,
          transportErrors: errors,
        };
      } catch (error) {
        const [summary, retryable, wait] = this.classify(error, attempt);
        if (!retryable) {
          throw new LLMError(`model '${request.model}' failed: ${summary}: ${detail(error)}`, request.model, attempt);
        }
        if (attempt > this.retries) {
          throw new LLMError(
            `model '${request.model}' failed after ${attempt} attempts; last error: ${summary}: ${detail(error)}`,
            request.model,
            attempt,
          );
        }
        const remaining = request.deadline - performance.now();
        if (wait * 1000 >= remaining) {
          const elapsed = performance.now() - started;
          throw new BudgetExceeded(
            `model '${request.model}': ${summary}; waiting ${wait.toFixed(2)}s to retry would pass the deadline (${Math.max(0, remaining).toFixed(0)} ms left)`,
            "ms",
            elapsed + Math.max(0, remaining),
            elapsed + wait * 1000,
          );
        }
        errors.push(`${summary}, retried after ${wait.toFixed(2)}s`);
        await sleep(wait * 1000);
      }
    }
  }

  private classify(error: unknown, attempt: number): [string, boolean, number] {
    const ceiling = Math.min(this.backoffMax, this.backoffBase * 2 ** (attempt - 1));
    const backoff = ceiling / 2 + Math.random() * (ceiling / 2);
    if (error instanceof Anthropic.APIConnectionTimeoutError) return ["timeout", true, backoff];
    if (error instanceof Anthropic.APIConnectionError) return ["connection error", true, backoff];
    if (error instanceof Anthropic.APIError && typeof error.status === "number") {
      const status = error.status;
      const wait = retryAfter(error.headers as Headers | undefined) ?? backoff;
      if (status === 429) return ["429 rate limited", true, wait];
      if (status >= 500 || RETRIED.has(status)) return [`${status} server error`, true, wait];
      return [`${status} client error`, false, 0];
    }
    return [`unexpected ${error instanceof Error ? error.name : typeof error}`, false, 0];
  }
}
