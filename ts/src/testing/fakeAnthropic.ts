/**
 * A scripted Anthropic Messages API on a loopback port, for tests that go through the real SDK and HTTP path.
 * Answers come from a FIFO queue, then from rules (a substring of the request's text, or a predicate), then from a
 * minimal instance of the requested JSON schema. Faults (429 with retry-after, 500, 529, 400) and usage are scripted
 * the same way. Point the SDK (or `new Stratum({ baseURL: fake.url })`) at `fake.url`.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeReply {
  /** Sent as the text as is. */
  content?: string;
  /** Serialised as the text. */
  json?: unknown;
  inputTokens?: number;
  outputTokens?: number;
  /** Milliseconds to wait before answering (the answer is dropped if the client goes away or the fake stops). */
  latencyMs?: number;
}

export interface FakeFault {
  fault: "rate_limit" | "server_error" | "overloaded" | "bad_request";
  retryAfter?: number;
}

export type FakeAnswer = string | FakeReply | FakeFault | Record<string, unknown>;
export type Matcher = string | ((body: Record<string, any>) => boolean);

interface Rule {
  match: Matcher;
  answer: FakeAnswer | ((body: Record<string, any>) => FakeAnswer);
  remaining: number | undefined;
}

/** The text of a request: its system prompt and every text block, joined by newlines. */
export function requestText(body: Record<string, any>): string {
  const parts: string[] = [];
  const system = body["system"];
  if (typeof system === "string") parts.push(system);
  else if (Array.isArray(system)) parts.push(...system.filter((b) => b?.type === "text").map((b) => String(b.text)));
  for (const message of body["messages"] ?? []) {
    const content = message?.content;
    if (typeof content === "string") parts.push(content);
    else if (Array.isArray(content)) parts.push(...content.filter((b) => b?.type === "text").map((b) => String(b.text)));
  }
  return parts.join("\n");
}

/** The JSON schema a request asks for: `output_config.format`, the beta `output_format`, or a forced tool's input. */
export function requestSchema(body: Record<string, any>): Record<string, any> | undefined {
  const format = body["output_config"]?.format ?? body["output_format"];
  if (format?.type === "json_schema") return format.schema;
  const forced = body["tool_choice"]?.name;
  const tool = (body["tools"] ?? []).find((t: any) => t?.name === forced);
  return tool?.input_schema;
}

/** A small value valid against a JSON schema (enough for unscripted calls). */
export function minimalInstance(schema: any, root: any = schema, depth = 0): unknown {
  if (!schema || typeof schema !== "object" || depth > 20) return null;
  if (schema.$ref) {
    const name = String(schema.$ref).split("/").pop()!;
    return minimalInstance(schema.$ref === "#" ? root : root.$defs?.[name], root, depth + 1);
  }
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  switch (schema.type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const key of schema.required ?? []) out[key] = minimalInstance(schema.properties?.[key], root, depth + 1);
      return out;
    }
    case "array":
      return Array.from({ length: schema.minItems ?? 0 }, () => minimalInstance(schema.items, root, depth + 1));
    case "string":
      return "x".repeat(schema.minLength ?? 1);
    case "integer":
    case "number":
      return schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : 0);
    case "boolean":
      return false;
    default:
      return null;
  }
}

function isFault(answer: unknown): answer is FakeFault {
  return typeof answer === "object" && answer !== null && "fault" in answer;
}

function isReply(answer: unknown): answer is FakeReply {
  return typeof answer === "object" && answer !== null && ["content", "json", "inputTokens", "outputTokens", "latencyMs"].some((key) => key in answer);
}

export class FakeAnthropic {
  /** The bodies of `POST /v1/messages`, in arrival order. */
  readonly requests: Record<string, any>[] = [];
  /** The bodies of `POST /v1/messages/count_tokens` (answered with about 4 characters a token). */
  readonly countRequests: Record<string, any>[] = [];
  private readonly queue: FakeAnswer[] = [];
  private readonly rules: Rule[] = [];
  private server: Server | undefined;
  private ids = 0;

  constructor(readonly modelName = "claude-haiku-4-5") {}

  /** Start on a free loopback port. */
  async start(): Promise<this> {
    if (this.server) return this;
    const server = createServer((request, response) => void this.handle(request, response));
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    this.server = server;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The base URL to give the SDK (`baseURL`): `http://127.0.0.1:PORT`. */
  get url(): string {
    if (!this.server) throw new Error("FakeAnthropic is not started");
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Queue answers for the next requests, in order; the queue is used before any rule. */
  enqueue(...answers: FakeAnswer[]): void {
    this.queue.push(...answers);
  }

  /** Answer requests whose text contains `match` (or that the predicate accepts); at most `times` times. */
  addRule(match: Matcher, answer: FakeAnswer | ((body: Record<string, any>) => FakeAnswer), options: { times?: number } = {}): void {
    this.rules.push({ match, answer, remaining: options.times });
  }

  reset(): void {
    this.queue.length = 0;
    this.rules.length = 0;
    this.requests.length = 0;
    this.countRequests.length = 0;
  }

  private pick(body: Record<string, any>): FakeAnswer | undefined {
    if (this.queue.length) return this.queue.shift();
    const text = requestText(body);
    for (const rule of this.rules) {
      const matched = typeof rule.match === "string" ? text.includes(rule.match) : rule.match(body);
      if (!matched) continue;
      if (rule.remaining !== undefined && --rule.remaining === 0) this.rules.splice(this.rules.indexOf(rule), 1);
      return typeof rule.answer === "function" ? rule.answer(body) : rule.answer;
    }
    return undefined;
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}): void => {
      const data = JSON.stringify(payload);
      response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data), ...headers });
      response.end(data);
    };
    const error = (status: number, type: string, message: string, headers: Record<string, string> = {}): void =>
      send(status, { type: "error", error: { type, message } }, headers);
    const route = (request.url ?? "").replace(/\?.*$/, "");
    const counting = route.endsWith("/v1/messages/count_tokens");
    if (request.method !== "POST" || !(route.endsWith("/v1/messages") || counting)) {
      error(404, "not_found_error", `no route ${request.method} ${request.url}`);
      return;
    }
    let body: Record<string, any>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf-8"));
    } catch (e) {
      error(400, "invalid_request_error", `invalid JSON body: ${(e as Error).message}`);
      return;
    }
    if (counting) {
      this.countRequests.push(body);
      send(200, { input_tokens: Math.max(1, Math.ceil(requestText(body).length / 4)) });
      return;
    }
    this.requests.push(body);
    let answer: FakeAnswer | undefined;
    try {
      answer = this.pick(body);
    } catch (e) {
      error(500, "api_error", `FakeAnthropic rule failed: ${(e as Error).message}`);
      return;
    }
    if (isFault(answer)) {
      const headers: Record<string, string> = answer.retryAfter !== undefined ? { "retry-after": String(answer.retryAfter) } : {};
      if (answer.fault === "rate_limit") error(429, "rate_limit_error", "Rate limit reached (scripted)", headers);
      else if (answer.fault === "server_error") error(500, "api_error", "Internal server error (scripted)", headers);
      else if (answer.fault === "overloaded") error(529, "overloaded_error", "Overloaded (scripted)", headers);
      else error(400, "invalid_request_error", "Invalid request (scripted)");
      return;
    }
    const reply: FakeReply = typeof answer === "string" ? { content: answer } : answer === undefined ? {} : isReply(answer) ? answer : { json: answer };
    if (reply.latencyMs) {
      const gone = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), reply.latencyMs);
        response.on("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (gone || response.destroyed) return;
    }
    const text = reply.content ?? (reply.json !== undefined ? JSON.stringify(reply.json) : JSON.stringify(minimalInstance(requestSchema(body) ?? {})));
    const inputTokens = reply.inputTokens ?? Math.max(1, Math.ceil(requestText(body).length / 4));
    const outputTokens = reply.outputTokens ?? Math.max(1, Math.ceil(text.length / 4));
    send(200, {
      id: `msg_fake_${++this.ids}`,
      type: "message",
      role: "assistant",
      model: String(body["model"] ?? this.modelName),
      content: [{ type: "text", text }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { input_tokens: inputTokens, output_tokens: outputTokens },
    });
  }
}
