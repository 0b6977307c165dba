/**
 * The trace of every run: the run, its steps, every model attempt (prompt and contract hashes, tokens, cost, raw
 * output, violations, retry reason) and every review, kept in memory and, when a file is given, appended to it as
 * JSON lines (`{"type": "attempt", ...}`), one record per line, as they happen.
 */

import { appendFileSync } from "node:fs";

export interface RunRecord {
  runId: string;
  flow: string;
  status: "running" | "ok" | "failed";
  input: unknown;
  output?: unknown;
  error?: string;
  startedAt: string;
  durationMs?: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
}

export interface StepRecord {
  runId: string;
  stepId: string;
  kind: "infer" | "compute" | "human" | "flow" | "parallel" | "race";
  function: string;
  status: "ok" | "failed" | "skipped";
  input?: unknown;
  output?: unknown;
  error?: string;
  attempts: number;
  tokensIn: number;
  tokensOut: number;
  costUsd: number;
  startedAt: string;
  durationMs: number;
  attributes: Record<string, unknown>;
}

export interface AttemptRecord {
  runId: string;
  stepId: string;
  number: number;
  kind: "infer" | "refine";
  model: string;
  promptHash: string;
  contractHash: string;
  messages: { role: string; content: string }[];
  tokensIn: number;
  tokensOut: number;
  costUsd: number | null;
  durationMs: number;
  startedAt: string;
  rawOutput: string | null;
  violations: string[];
  retryReason: string | null;
  transportAttempts: number;
  transportErrors: string[];
  error: string | null;
}

export interface ReviewRecord {
  runId: string;
  stepId: string;
  reviewId: string;
  question: string;
  request: unknown;
  status: "answered" | "timed_out" | "declined";
  value?: unknown;
  reviewer?: string | undefined;
  rationale?: string | undefined;
  decidedAt?: string;
}

export interface RunTrace {
  run: RunRecord;
  steps: StepRecord[];
  attempts: AttemptRecord[];
  reviews: ReviewRecord[];
}

export class Trace {
  private readonly runs = new Map<string, RunTrace>();

  /**
   * @param file a JSON-lines file every record is appended to (optional).
   * @param keep how many runs stay in memory (the oldest are forgotten first).
   */
  constructor(
    readonly file?: string,
    readonly keep = 1000,
  ) {}

  get(runId: string): RunTrace | undefined {
    return this.runs.get(runId);
  }

  /** Every run kept, oldest first. */
  all(): RunTrace[] {
    return [...this.runs.values()];
  }

  last(): RunTrace | undefined {
    return this.all().at(-1);
  }

  private write(type: string, record: object): void {
    if (this.file) appendFileSync(this.file, JSON.stringify({ type, ...record }) + "\n", "utf-8");
  }

  startRun(run: RunRecord): void {
    this.runs.set(run.runId, { run, steps: [], attempts: [], reviews: [] });
    while (this.runs.size > this.keep) this.runs.delete(this.runs.keys().next().value!);
    this.write("run", run);
  }

  finishRun(run: RunRecord): void {
    this.write("run", run);
  }

  step(record: StepRecord): void {
    this.runs.get(record.runId)?.steps.push(record);
    this.write("step", record);
  }

  attempt(record: AttemptRecord): void {
    this.runs.get(record.runId)?.attempts.push(record);
    this.write("attempt", record);
  }

  review(record: ReviewRecord): void {
    this.runs.get(record.runId)?.reviews.push(record);
    this.write("review", record);
  }
}
