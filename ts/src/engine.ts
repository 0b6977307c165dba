/**
 * The runtime: runs flows and functions with the plan engine's semantics. A flow is a graph: every step whose inputs
 * are ready starts at once (up to `maxConcurrency`), `when`/`skipIf` skip steps (and the steps that read them), and
 * the flow's budget envelope is shared by its steps. An infer step checks `given`, asks the model for an answer
 * matching its output contract, checks the answer with Zod and `ensure`, and retries with exactly the violations
 * and their actual values, worded as Python words them; `refine` asks again with feedback until `until` holds.
 * Every run, step, attempt and review goes to the trace.
 */

import { randomUUID } from "node:crypto";

import type Anthropic from "@anthropic-ai/sdk";
import type { z } from "zod";

import { type AnswerSpec, checkAnswer, type Checked, ensureViolations } from "./answer.js";
import { compiled, conditionText, evaluateCondition, explain } from "./conditions.js";
import { type Budget, Envelope } from "./budget.js";
import {
  BudgetExceeded,
  ComputeError,
  ConfigurationError,
  ConvergenceFailure,
  HITLTimeoutError,
  HumanRejected,
  LLMError,
  ParallelValidationFailed,
  ParseFailure,
  PostconditionFailed,
  PreconditionFailed,
  RunError,
  StratumError,
} from "./errors.js";
import { compileExpression } from "./expressions/index.js";
import { type CallStep, type FlowDef, type FlowStep, type GroupStep, RefPath } from "./flow.js";
import type { ComputeFn, Condition, HumanFn, InferFn, StratumFunction } from "./functions.js";
import { canonicalJson, pyJsonDumps } from "./json.js";
import type { Price } from "./budget.js";
import { AnthropicModel, apiModel, type ModelClient, type ModelResponse } from "./llm.js";
import { compileMessages, type Message, promptHash, splitOpaque } from "./prompt.js";
import { type ContractSpec, type FieldSpec, type OutputSchema, outputSchema, typeSchema } from "./schema.js";
import { type RunTrace, type StepRecord, Trace } from "./trace.js";
import { schemaViolations } from "./validation.js";

// -- the runtime -----------------------------------------------------------------------------------------------------

export interface ReviewRequest {
  runId: string;
  stepId: string;
  reviewId: string;
  question: string;
  input: Record<string, unknown>;
  options?: unknown[] | undefined;
  /** The decision's JSON Schema (an object schema, or `{value: ...}` for a primitive decision). */
  schema: Record<string, unknown>;
  timeoutSeconds?: number | undefined;
}

export type ReviewAnswer = { action?: "accept"; value: unknown; reviewer?: string; rationale?: string } | { action: "decline" | "cancel"; reason?: string };

/** Where human steps go: anything that can ask a person and answer (a UI, a queue, a test script). */
export interface ReviewSink {
  ask(request: ReviewRequest): Promise<ReviewAnswer | null | undefined>;
}

export interface StratumOptions {
  /** The default model for infer functions that name none (`claude-haiku-4-5` or `anthropic/claude-haiku-4-5`). */
  model?: string;
  /** How model calls are made; default: AnthropicModel over `anthropic` (or a client from apiKey/baseURL). */
  client?: ModelClient;
  anthropic?: Anthropic;
  apiKey?: string;
  baseURL?: string;
  /** Most answer tokens per call when a function sets none and the model's limit is unknown (default 4096). */
  maxTokens?: number;
  reviewSink?: ReviewSink;
  /** A JSON-lines file every trace record is appended to. */
  traceFile?: string;
  /** At most this many steps at once in a flow (default 8). */
  maxConcurrency?: number;
  /** Dollars per token by model, beside (and over) the built-in Anthropic prices. */
  prices?: Record<string, Price>;
  /** Let models with no known price run under a cost budget (their cost counts as unknown); default: refused. */
  allowUnpriced?: boolean;
}

/** The most output tokens a call asks for when neither the function nor the model's known limit says. */
export const DEFAULT_MAX_TOKENS = 4096;

export interface RunResult<T = unknown> {
  runId: string;
  status: "ok" | "failed";
  output?: T;
  error?: StratumError | Error;
  trace: RunTrace;
}

class Semaphore {
  private waiting: (() => void)[] = [];
  private active = 0;
  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

interface RunContext {
  runId: string;
  trace: Trace;
  signal: AbortSignal;
  totals: { tokensIn: number; tokensOut: number; costUsd: number };
}

interface StepContext extends RunContext {
  stepId: string;
  envelope: Envelope;
  attempts: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  attributes: Record<string, unknown>;
}

function resolveRef(path: RefPath, input: Record<string, unknown>, outputs: Map<string, unknown>): unknown {
  const parts = path.parts;
  let value: unknown;
  let rest: readonly (string | number)[];
  if (parts[0] === "input") {
    value = input;
    rest = parts.slice(1);
  } else {
    value = outputs.get(String(parts[1]));
    rest = parts.slice(3);
  }
  for (const part of rest) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string | number, unknown>)[part];
  }
  return value;
}

function bind(value: unknown, input: Record<string, unknown>, outputs: Map<string, unknown>): unknown {
  if (value instanceof RefPath) return resolveRef(value, input, outputs);
  if (Array.isArray(value)) return value.map((item) => bind(item, input, outputs));
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = bind(item, input, outputs);
    return out;
  }
  return value;
}

function refsIn(value: unknown, out: Set<string>): void {
  if (value instanceof RefPath) {
    const step = value.step;
    if (step) out.add(step);
    return;
  }
  if (Array.isArray(value)) value.forEach((item) => refsIn(item, out));
  else if (typeof value === "object" && value !== null) Object.values(value).forEach((item) => refsIn(item, out));
}

function conditionSteps(condition: Condition | undefined, earlier: string[], out: Set<string>): void {
  if (condition === undefined) return;
  if (typeof condition !== "string") {
    earlier.forEach((id) => out.add(id)); // a function may read any earlier step
    return;
  }
  for (const read of compileExpression(condition).reads) {
    if (read.root === "steps" && read.fields[0] !== undefined) out.add(read.fields[0]);
  }
}

function mergeTokens(ctx: RunContext, response: ModelResponse): void {
  ctx.totals.tokensIn += response.tokensIn;
  ctx.totals.tokensOut += response.tokensOut;
  ctx.totals.costUsd += response.costUsd ?? 0;
}

function now(): string {
  return new Date().toISOString();
}

function validateValue(value: unknown, zod: z.ZodType, spec: FieldSpec, contracts: ReadonlyMap<string, ContractSpec>, root: string): string[] {
  return schemaViolations(value, zod, spec, contracts, root).map((line) => line.replace(/^schema: /, ""));
}

/** Runs flows and functions: `await stratum.run(flow, input)`. */
export class Stratum {
  readonly trace: Trace;
  readonly client: ModelClient;
  private readonly options: StratumOptions;
  private readonly prices: Record<string, Price>;

  constructor(options: StratumOptions = {}) {
    this.options = options;
    this.prices = {};
    for (const [model, price] of Object.entries(options.prices ?? {})) {
      this.prices[model] = price;
      this.prices[apiModel(model)] = price;
      this.prices[`anthropic/${apiModel(model)}`] = price;
    }
    this.trace = new Trace(options.traceFile);
    this.client =
      options.client ??
      new AnthropicModel({
        ...(options.anthropic ? { client: options.anthropic } : {}),
        ...(options.apiKey ? { apiKey: options.apiKey } : {}),
        ...(options.baseURL ? { baseURL: options.baseURL } : {}),
      });
  }

  /** Run a flow (or one function as a one-step run) and return its output; a failure throws (with runId, stepId). */
  async run<T>(target: FlowDef<any, T> | StratumFunction, input: Record<string, unknown>): Promise<T> {
    const result = await this.runDetailed(target, input);
    if (result.status === "failed") throw result.error;
    return result.output as T;
  }

  /** Run and return the run's result and trace; never throws a run's failure. */
  async runDetailed<T>(target: FlowDef<any, T> | StratumFunction, input: Record<string, unknown>): Promise<RunResult<T>> {
    const runId = randomUUID();
    const started = performance.now();
    const flowName = target.kind === "flow" ? target.name : target.name;
    const record = {
      runId,
      flow: flowName,
      status: "running" as const,
      input,
      startedAt: now(),
      tokensIn: 0,
      tokensOut: 0,
      costUsd: 0,
    };
    this.trace.startRun(record);
    const controller = new AbortController();
    const ctx: RunContext = { runId, trace: this.trace, signal: controller.signal, totals: { tokensIn: 0, tokensOut: 0, costUsd: 0 } };
    let output: unknown;
    let error: Error | undefined;
    try {
      if (target.kind === "flow") {
        output = await this.runFlow(target, input, ctx, new Envelope(target.options.budget ?? {}, `flow ${target.name}`), "");
      } else {
        const envelope = new Envelope(target.options.budget ?? {}, `function ${target.name}`);
        this.checkInputs(target.name, target.inputSpecs, target.inputZod, target.contracts, input);
        output = await this.callFunction(target, input, ctx, target.name, envelope, undefined);
      }
    } catch (caught) {
      error = caught as Error;
      if (error instanceof RunError) error.runId = runId;
      controller.abort();
    }
    const finished = {
      ...record,
      status: error ? ("failed" as const) : ("ok" as const),
      ...(error ? { error: error.message } : { output }),
      durationMs: performance.now() - started,
      ...ctx.totals,
    };
    Object.assign(this.trace.get(runId)?.run ?? {}, finished);
    this.trace.finishRun(finished);
    const trace = this.trace.get(runId) ?? { run: finished, steps: [], attempts: [], reviews: [] };
    return error ? { runId, status: "failed", error, trace } : { runId, status: "ok", output: output as T, trace };
  }

  private checkInputs(
    owner: string,
    specs: Record<string, FieldSpec>,
    zods: Record<string, z.ZodType>,
    contracts: ReadonlyMap<string, ContractSpec>,
    input: Record<string, unknown>,
  ): void {
    const problems: string[] = [];
    for (const [name, spec] of Object.entries(specs)) {
      if (!(name in input)) {
        if (spec.required !== false) problems.push(`input.${name}: missing`);
        continue;
      }
      problems.push(...validateValue(input[name], zods[name]!, spec, contracts, `input.${name}`));
    }
    for (const name of Object.keys(input)) if (!(name in specs)) problems.push(`input.${name}: unexpected input`);
    if (problems.length) throw new PreconditionFailed(`${owner}: invalid input: ${problems.join("; ")}`, "input", problems.join("; "));
  }

  // -- flows --

  private async runFlow(flowDef: FlowDef, input: Record<string, unknown>, ctx: RunContext, envelope: Envelope, prefix: string): Promise<unknown> {
    const zods: Record<string, z.ZodType> = {};
    for (const [name, type] of Object.entries(flowDef.options.input as Record<string, unknown>)) {
      zods[name] = (type as { kind?: string }).kind === "contract" ? (type as { zod: z.ZodType }).zod : (type as z.ZodType);
    }
    this.checkInputs(`flow '${flowDef.name}'`, flowDef.inputSpecs, zods, flowDef.contracts, input);
    const outputs = new Map<string, unknown>();
    const skipped = new Set<string>();
    const semaphore = new Semaphore(flowDef.options.maxConcurrency ?? this.options.maxConcurrency ?? 8);
    const deps = new Map<string, Set<string>>();
    const reads = new Map<string, Set<string>>();
    const ids: string[] = [];
    for (const step of flowDef.steps) {
      const read = new Set<string>();
      const calls = step.kind === "call" ? [step] : step.branches;
      for (const call of calls) refsIn(call.inputs, read);
      conditionSteps(step.when, ids, read);
      conditionSteps(step.skipIf, ids, read);
      if (step.kind !== "call") conditionSteps(step.validate, ids, read);
      const all = new Set([...read, ...step.dependsOn]);
      deps.set(step.id, all);
      reads.set(step.id, read);
      ids.push(step.id);
    }
    const done = new Map<string, Promise<void>>();
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    ctx.signal.addEventListener("abort", onAbort);
    const flowCtx: RunContext = { ...ctx, signal: controller.signal };
    const runStep = async (step: FlowStep): Promise<void> => {
      for (const dep of deps.get(step.id)!) await done.get(dep);
      if (controller.signal.aborted) return;
      const readSkipped = [...reads.get(step.id)!].find((id) => skipped.has(id));
      if (readSkipped !== undefined) {
        skipped.add(step.id);
        this.recordSkip(flowCtx, prefix + step.id, step, `reads the skipped step '${readSkipped}'`);
        return;
      }
      const env = { input, steps: Object.fromEntries([...outputs].map(([id, output]) => [id, { output }])) };
      const stepId = prefix + step.id;
      if ((step.when !== undefined && !evaluateCondition(step.when, env, stepId)) || (step.skipIf !== undefined && evaluateCondition(step.skipIf, env, stepId))) {
        skipped.add(step.id);
        this.recordSkip(flowCtx, stepId, step, "its condition is false");
        return;
      }
      const output = await semaphore.run(() =>
        step.kind === "call" ? this.callStep(step, input, outputs, flowCtx, envelope, prefix) : this.groupStep(step, input, outputs, env, flowCtx, envelope, prefix),
      );
      outputs.set(step.id, output);
    };
    let failure: unknown;
    for (const step of flowDef.steps) {
      const promise = runStep(step).catch((error: unknown) => {
        if (failure === undefined) failure = error;
        controller.abort();
      });
      done.set(step.id, promise);
    }
    await Promise.all(done.values());
    ctx.signal.removeEventListener("abort", onAbort);
    if (failure !== undefined) throw failure;
    let result: unknown;
    if (flowDef.result.length) {
      const ran = flowDef.result.find((ref) => ref.step === undefined || !skipped.has(ref.step));
      if (ran === undefined) {
        throw new RunError(`flow '${flowDef.name}': every candidate result was skipped (${flowDef.result.map(String).join(", ")})`);
      }
      result = resolveRef(ran, input, outputs);
    } else {
      const last = flowDef.steps[flowDef.steps.length - 1]!;
      if (skipped.has(last.id)) throw new RunError(`flow '${flowDef.name}': its last step '${last.id}' was skipped, so there is no result`);
      result = outputs.get(last.id);
    }
    if (flowDef.outputSpec !== undefined) {
      const type = flowDef.options.output as { kind?: string; zod?: z.ZodType };
      const zod = type.kind === "contract" ? type.zod! : (type as z.ZodType);
      const problems = validateValue(result, zod, flowDef.outputSpec, flowDef.contracts, "result");
      if (problems.length) throw new PostconditionFailed(`flow '${flowDef.name}': the result does not fit its output: ${problems.join("; ")}`, [problems]);
    }
    return result;
  }

  private recordSkip(ctx: RunContext, stepId: string, step: FlowStep, reason: string): void {
    const name = step.kind === "call" ? step.target.name : step.kind;
    const kind = step.kind === "call" ? (step.target.kind === "flow" ? "flow" : step.target.kind) : step.kind;
    ctx.trace.step({
      runId: ctx.runId,
      stepId,
      kind,
      function: name,
      status: "skipped",
      attempts: 0,
      tokensIn: 0,
      tokensOut: 0,
      costUsd: 0,
      startedAt: now(),
      durationMs: 0,
      attributes: { skipped: reason },
    });
  }

  private async callStep(step: CallStep, input: Record<string, unknown>, outputs: Map<string, unknown>, ctx: RunContext, envelope: Envelope, prefix: string): Promise<unknown> {
    const bound = bind(step.inputs, input, outputs) as Record<string, unknown>;
    const target = step.target;
    const stepId = prefix + step.id;
    if (target.kind === "flow") {
      const child = new Envelope(step.budget ?? target.options.budget ?? {}, `step ${stepId}`, envelope);
      const started = performance.now();
      const startedAt = now();
      try {
        const output = await this.runFlow(target, bound, ctx, child, `${stepId}.`);
        ctx.trace.step({ runId: ctx.runId, stepId, kind: "flow", function: target.name, status: "ok", input: bound, output, attempts: 0, tokensIn: 0, tokensOut: 0, costUsd: 0, startedAt, durationMs: performance.now() - started, attributes: {} });
        return output;
      } catch (error) {
        ctx.trace.step({ runId: ctx.runId, stepId, kind: "flow", function: target.name, status: "failed", input: bound, error: (error as Error).message, attempts: 0, tokensIn: 0, tokensOut: 0, costUsd: 0, startedAt, durationMs: performance.now() - started, attributes: {} });
        throw error;
      }
    }
    const child = new Envelope(step.budget ?? target.options.budget ?? {}, `step ${stepId}`, envelope);
    return this.callFunction(target, bound, ctx, stepId, child, step.budget);
  }

  private async groupStep(
    step: GroupStep,
    input: Record<string, unknown>,
    outputs: Map<string, unknown>,
    env: Record<string, unknown>,
    ctx: RunContext,
    envelope: Envelope,
    prefix: string,
  ): Promise<unknown> {
    const stepId = prefix + step.id;
    const started = performance.now();
    const startedAt = now();
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    ctx.signal.addEventListener("abort", abort);
    const branchCtx: RunContext = { ...ctx, signal: controller.signal };
    const results: ({ ok: true; output: unknown } | { ok: false; error: Error } | undefined)[] = step.branches.map(() => undefined);
    let winner: number | undefined;
    const require = step.require;
    try {
      await new Promise<void>((resolve, reject) => {
        let settled = 0;
        step.branches.forEach((branch, index) => {
          this.callStep(branch, input, outputs, branchCtx, envelope, prefix)
            .then(
              (output) => {
                results[index] = { ok: true, output };
                if (require === "any" && winner === undefined) {
                  winner = index;
                  controller.abort();
                  resolve();
                }
              },
              (error: Error) => {
                results[index] = { ok: false, error };
                if (require === "all" && !controller.signal.aborted) {
                  controller.abort();
                  reject(error);
                }
              },
            )
            .finally(() => {
              settled++;
              if (settled === step.branches.length) resolve();
            });
        });
      });
    } finally {
      ctx.signal.removeEventListener("abort", abort);
    }
    const fail = (message: string): never => {
      const error = new ParallelValidationFailed(`${step.kind} '${step.id}': ${message}`, { stepId });
      this.recordGroup(ctx, step, stepId, "failed", undefined, message, startedAt, started);
      throw error;
    };
    const failures = results.flatMap((r, i) => (r && !r.ok ? [`${step.branches[i]!.id}: ${r.error.message}`] : []));
    let output: unknown;
    let validated: unknown[];
    if (require === "all") {
      output = validated = results.map((r) => (r as { output: unknown }).output);
    } else if (require === "any") {
      if (winner === undefined) fail(`every branch failed: ${failures.join("; ")}`);
      output = (results[winner!] as { output: unknown }).output;
      validated = [output];
    } else if (require === 0) {
      output = results.map((r) => (r!.ok ? { ok: true, output: r!.output } : { ok: false, error: r!.error.message }));
      validated = results.flatMap((r) => (r?.ok ? [r.output] : []));
    } else {
      const successes = results.flatMap((r) => (r?.ok ? [r.output] : []));
      if (successes.length < require) {
        fail(`require: ${require} but only ${successes.length} of ${step.branches.length} branches succeeded (${failures.join("; ")})`);
      }
      output = validated = successes;
    }
    if (step.kind === "parallel" && step.validate !== undefined) {
      const validateEnv = { ...env, outputs: validated };
      if (!evaluateCondition(step.validate, validateEnv, stepId)) fail(`validate: ${explain(step.validate, validateEnv, ["outputs"])}`);
    }
    this.recordGroup(ctx, step, stepId, "ok", output, undefined, startedAt, started);
    return output;
  }

  private recordGroup(ctx: RunContext, step: GroupStep, stepId: string, status: "ok" | "failed", output: unknown, error: string | undefined, startedAt: string, started: number): void {
    ctx.trace.step({
      runId: ctx.runId,
      stepId,
      kind: step.kind,
      function: step.kind,
      status,
      ...(status === "ok" ? { output } : { error: error! }),
      attempts: 0,
      tokensIn: 0,
      tokensOut: 0,
      costUsd: 0,
      startedAt,
      durationMs: performance.now() - started,
      attributes: { require: step.require },
    });
  }

  // -- functions --

  private async callFunction(fn: StratumFunction, inputs: Record<string, unknown>, run: RunContext, stepId: string, envelope: Envelope, _stepBudget: Budget | undefined): Promise<unknown> {
    const ctx: StepContext = { ...run, stepId, envelope, attempts: 0, tokensIn: 0, tokensOut: 0, costUsd: 0, attributes: {} };
    const started = performance.now();
    const startedAt = now();
    const record = (status: "ok" | "failed", extra: Partial<StepRecord>): void =>
      run.trace.step({
        runId: run.runId,
        stepId,
        kind: fn.kind,
        function: fn.name,
        status,
        input: inputs,
        attempts: ctx.attempts,
        tokensIn: ctx.tokensIn,
        tokensOut: ctx.tokensOut,
        costUsd: ctx.costUsd,
        startedAt,
        durationMs: performance.now() - started,
        attributes: ctx.attributes,
        ...extra,
      });
    try {
      envelope.check(stepId);
      let output: unknown;
      if (fn.kind === "infer") output = await this.runInfer(fn, inputs, ctx);
      else if (fn.kind === "compute") output = await this.runCompute(fn, inputs, ctx);
      else output = await this.runHuman(fn, inputs, ctx);
      record("ok", { output });
      return output;
    } catch (error) {
      if (error instanceof RunError) {
        error.stepId = error.stepId || stepId;
        error.runId = run.runId;
      }
      record("failed", { error: (error as Error).message });
      throw error;
    }
  }

  private checkGiven(fn: StratumFunction, inputs: Record<string, unknown>, stepId: string): void {
    for (const condition of fn.given) {
      if (!evaluateCondition(condition, inputs, stepId)) {
        const actual = explain(condition, inputs, Object.keys(inputs));
        throw new PreconditionFailed(`given: ${actual}`, conditionText(condition), actual, { stepId });
      }
    }
  }

  private async runCompute(fn: ComputeFn, inputs: Record<string, unknown>, ctx: StepContext): Promise<unknown> {
    this.checkGiven(fn, inputs, ctx.stepId);
    let output: unknown;
    if (fn.options.expr !== undefined) {
      output = compiled(fn.options.expr, ctx.stepId).evaluate(inputs);
    } else {
      try {
        output = await fn.options.fn!(inputs as never);
      } catch (error) {
        throw new ComputeError(`compute '${fn.name}' threw ${(error as Error)?.name ?? "an error"}: ${(error as Error)?.message ?? error}`, { stepId: ctx.stepId });
      }
    }
    output = JSON.parse(JSON.stringify(output ?? null));
    const problems = schemaViolations(output, fn.outputZod, fn.outputSpec, fn.contracts);
    const violations = problems.length ? problems : ensureViolations({ ensure: fn.ensure, inputs }, output);
    if (violations.length) {
      throw new PostconditionFailed(`the output contract was not met: ${violations.join("; ")}`, [violations], { stepId: ctx.stepId });
    }
    return output;
  }

  private async runHuman(fn: HumanFn, inputs: Record<string, unknown>, ctx: StepContext): Promise<unknown> {
    const sink = this.options.reviewSink;
    const reviewId = randomUUID();
    const resolved = typeSchema(fn.outputSpec, fn.contracts);
    const request: ReviewRequest = {
      runId: ctx.runId,
      stepId: ctx.stepId,
      reviewId,
      question: fn.options.question,
      input: inputs,
      options: fn.options.options,
      schema: resolved,
      timeoutSeconds: fn.timeoutSeconds,
    };
    if (!sink) {
      throw new ConfigurationError(`human step '${ctx.stepId}' needs a review sink: new Stratum({ reviewSink: { ask(request) { ... } } })`);
    }
    const review = (status: "answered" | "timed_out" | "declined", extra: Record<string, unknown> = {}): void =>
      ctx.trace.review({ runId: ctx.runId, stepId: ctx.stepId, reviewId, question: fn.options.question, request: inputs, status, ...extra });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      if (fn.timeoutSeconds !== undefined) timer = setTimeout(() => resolve("timeout"), fn.timeoutSeconds * 1000);
    });
    const deadline = ctx.envelope.remainingMs();
    let budgetTimer: NodeJS.Timeout | undefined;
    const budget = new Promise<"budget">((resolve) => {
      if (Number.isFinite(deadline)) budgetTimer = setTimeout(() => resolve("budget"), Math.max(0, deadline));
    });
    let answer: ReviewAnswer | null | undefined | "timeout" | "budget";
    try {
      answer = await Promise.race([sink.ask(request), timeout, budget]);
    } finally {
      clearTimeout(timer);
      clearTimeout(budgetTimer);
    }
    if (answer === "budget") throw ctx.envelope.timeoutError(ctx.stepId);
    if (answer === "timeout" || answer === null || answer === undefined) {
      const fallback = fn.options.onTimeout;
      if (answer !== "timeout" && answer !== null && answer !== undefined) throw new Error("unreachable");
      if (fallback === undefined || fallback === "raise") {
        review("timed_out");
        throw new HITLTimeoutError(`nobody answered human step '${ctx.stepId}' (${fn.options.question})${fn.timeoutSeconds ? ` within ${fn.timeoutSeconds} s` : ""}`, { stepId: ctx.stepId });
      }
      review("timed_out", { value: fallback });
      ctx.attributes["on_timeout"] = true;
      return fallback;
    }
    if (answer.action === "decline" || answer.action === "cancel") {
      review("declined");
      throw new HumanRejected(`human step '${ctx.stepId}' was ${answer.action}d${"reason" in answer && answer.reason ? `: ${answer.reason}` : ""}`, { stepId: ctx.stepId });
    }
    const value = (answer as { value: unknown }).value;
    const problems = validateValue(value, fn.outputZod, fn.outputSpec, fn.contracts, "decision");
    const options = fn.options.options;
    if (options && !problems.length) {
      const spec = fn.outputSpec;
      const fields = spec.type && fn.contracts.get(spec.type)?.fields;
      const first = fields ? Object.entries(fields).find(([, f]) => f.required !== false)?.[0] : undefined;
      const chosen = first !== undefined ? (value as Record<string, unknown>)[first] : value;
      if (!options.some((option) => canonicalJson(option) === canonicalJson(chosen))) {
        problems.push(`decision${first !== undefined ? `.${first}` : ""}: ${pyJsonDumps(chosen)} is not one of the options ${pyJsonDumps(options)}`);
      }
    }
    if (problems.length) throw new PostconditionFailed(`human step '${ctx.stepId}': the decision does not fit its type: ${problems.join("; ")}`, [problems], { stepId: ctx.stepId });
    review("answered", { value, reviewer: "reviewer" in answer ? answer.reviewer : undefined, rationale: "rationale" in answer ? answer.rationale : undefined, decidedAt: now() });
    return value;
  }

  // -- infer --

  private async runInfer(fn: InferFn, inputs: Record<string, unknown>, ctx: StepContext): Promise<unknown> {
    this.checkGiven(fn, inputs, ctx.stepId);
    const model = fn.options.model ?? this.options.model;
    if (!model) {
      throw new ConfigurationError(`no model configured for infer step '${ctx.stepId}': pass model to the function or to new Stratum({ model })`);
    }
    const output = outputSchema(fn.name, fn.outputSpec, fn.contracts);
    const [visible, attachment] = splitOpaque(fn.inputSpecs, inputs, fn.contracts);
    const spec: AnswerSpec = { output, zod: fn.outputZod, spec: fn.outputSpec, contracts: fn.contracts, ensure: fn.ensure, inputs };
    const answer = (feedback: string | undefined, kind: "infer" | "refine"): Promise<unknown> => this.answer(fn, model, spec, visible, attachment, ctx, feedback, kind);
    const refine = fn.options.refine;
    if (!refine) return answer(undefined, "infer");
    const max = refine.maxIterations ?? 3;
    let feedback: string | undefined;
    let last = conditionText(refine.until);
    for (let iteration = 1; iteration <= max; iteration++) {
      ctx.attributes["iterations"] = iteration;
      const result = await answer(feedback, iteration === 1 ? "infer" : "refine");
      const env = { ...inputs, result };
      if (evaluateCondition(refine.until, env, ctx.stepId)) return result;
      last = explain(refine.until, env, ["result", ...Object.keys(inputs)]);
      feedback = `until: ${last}`;
      if (refine.feedback !== undefined) {
        if (typeof refine.feedback === "string") {
          const value = compiled(refine.feedback, ctx.stepId).evaluate(env);
          feedback = typeof value === "string" ? value : canonicalJson(value);
        } else feedback = String(refine.feedback(env));
      }
    }
    throw new ConvergenceFailure(`refine did not converge in ${max} iteration${max !== 1 ? "s" : ""}: until ${last}`, { stepId: ctx.stepId });
  }

  private async answer(
    fn: InferFn,
    model: string,
    spec: AnswerSpec,
    visible: Record<string, unknown>,
    attachment: Record<string, unknown>,
    ctx: StepContext,
    feedback: string | undefined,
    kind: "infer" | "refine",
  ): Promise<unknown> {
    const history: string[][] = [];
    let parsedAny = false;
    let previous: string[] = [];
    for (let i = 0; i <= fn.retries; i++) {
      const messages = compileMessages({ intent: fn.options.intent, context: fn.context, visible, attachment, violations: previous, feedback, wrapped: spec.output.wrapped });
      const reason = previous.length ? previous.join("; ") : feedback ? `refine: ${feedback}` : null;
      const response = await this.attempt(fn, model, messages, spec.output, ctx, kind, reason, (content) => checkAnswer(content, spec));
      if (!response.violations.length) return response.value;
      parsedAny = parsedAny || response.parsed;
      history.push(response.violations);
      previous = response.violations;
    }
    const count = history.length;
    const attempts = `${count} attempt${count !== 1 ? "s" : ""}`;
    const last = history.length ? history[history.length - 1]!.join("; ") : "";
    if (!parsedAny) throw new ParseFailure(`no answer parsed as JSON in ${attempts}; last: ${last}`, history, { stepId: ctx.stepId });
    throw new PostconditionFailed(`the output contract was still not met after ${attempts}: ${last}`, history, { stepId: ctx.stepId });
  }

  private async attempt(
    fn: InferFn,
    model: string,
    messages: Message[],
    output: OutputSchema,
    ctx: StepContext,
    kind: "infer" | "refine",
    retryReason: string | null,
    check: (content: string) => Checked,
  ): Promise<Checked> {
    if (ctx.signal.aborted) throw new RunError(`step '${ctx.stepId}' was cancelled`, { stepId: ctx.stepId });
    const hash = promptHash(messages);
    const number = ++ctx.attempts;
    const startedAt = now();
    const started = performance.now();
    const request = {
      model,
      messages,
      schema: output.schema,
      schemaName: output.name,
      maxTokens: fn.options.maxTokens ?? this.options.maxTokens ?? DEFAULT_MAX_TOKENS,
      temperature: fn.options.temperature,
      deadline: ctx.envelope.deadline,
    };
    ctx.envelope.checkTime(ctx.stepId);
    const quote = await this.client.quote(request);
    const reservation = ctx.envelope.reserve(
      {
        promptTokens: quote.promptTokens,
        wantedTokens: fn.options.maxTokens ?? quote.maxOutputTokens ?? request.maxTokens,
        price: this.prices[model] ?? this.client.price(model),
        model,
        allowUnpriced: this.options.allowUnpriced ?? false,
      },
      ctx.stepId,
    );
    const base = {
      runId: ctx.runId,
      stepId: ctx.stepId,
      number,
      kind,
      model,
      promptHash: hash,
      contractHash: output.contractHash,
      messages: messages.map((m) => ({ ...m })),
      startedAt,
      retryReason,
    };
    let response: ModelResponse;
    try {
      response = await this.client.complete({ ...request, maxTokens: reservation.maxTokens });
    } catch (error) {
      Envelope.settle(reservation, { tokens: 0, usd: 0 });
      let raised = error as Error;
      if (performance.now() >= ctx.envelope.deadline && !(raised instanceof BudgetExceeded)) raised = ctx.envelope.timeoutError(ctx.stepId);
      if (!(raised instanceof RunError)) raised = new LLMError(`the model call failed: ${raised.message}`, model, 1, { stepId: ctx.stepId });
      (raised as RunError).stepId = (raised as RunError).stepId || ctx.stepId;
      ctx.trace.attempt({
        ...base,
        tokensIn: 0,
        tokensOut: 0,
        costUsd: null,
        durationMs: performance.now() - started,
        rawOutput: null,
        violations: [],
        transportAttempts: raised instanceof LLMError ? raised.attempts : 1,
        transportErrors: [],
        error: raised.message,
      });
      throw raised;
    }
    const price = this.prices[model];
    if (price && response.costUsd === null) response = { ...response, costUsd: response.tokensIn * price.input + response.tokensOut * price.output };
    Envelope.settle(reservation, { tokens: response.tokensIn + response.tokensOut, usd: response.costUsd ?? 0 });
    ctx.tokensIn += response.tokensIn;
    ctx.tokensOut += response.tokensOut;
    ctx.costUsd += response.costUsd ?? 0;
    if (response.costUsd === null) ctx.attributes["cost_unknown"] = true;
    mergeTokens(ctx, response);
    const checked = check(response.content);
    ctx.trace.attempt({
      ...base,
      tokensIn: response.tokensIn,
      tokensOut: response.tokensOut,
      costUsd: response.costUsd,
      durationMs: response.durationMs,
      rawOutput: response.content,
      violations: checked.violations,
      transportAttempts: response.transportAttempts,
      transportErrors: response.transportErrors,
      error: null,
    });
    if (performance.now() > ctx.envelope.deadline) throw ctx.envelope.timeoutError(ctx.stepId);
    return checked;
  }
}
