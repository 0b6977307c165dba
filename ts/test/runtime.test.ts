import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, test } from "node:test";

import { z } from "zod";

import {
  awaitHuman,
  BudgetExceeded,
  compute,
  ConfigurationError,
  contract,
  ConvergenceFailure,
  flow,
  HITLTimeoutError,
  HumanRejected,
  infer,
  LLMError,
  ParallelValidationFailed,
  ParseFailure,
  PostconditionFailed,
  PreconditionFailed,
  refine,
  Stratum,
  type StratumOptions,
} from "../src/index.js";
import { FakeAnthropic } from "../src/testing/index.js";

const fake = new FakeAnthropic();
before(() => fake.start());
after(() => fake.stop());
beforeEach(() => fake.reset());

function stratum(options: StratumOptions = {}): Stratum {
  return new Stratum({ baseURL: fake.url, apiKey: "test", model: "claude-haiku-4-5", ...options });
}

const Sentiment = contract(
  "Sentiment",
  z.object({ label: z.enum(["positive", "negative", "neutral"]), confidence: z.number().min(0).max(1), reasoning: z.string() }),
);

const classify = infer({
  name: "classify",
  intent: "Classify the emotional tone of the text.",
  input: { text: z.string() },
  output: Sentiment,
  given: ["len(text.strip()) > 0"],
  ensure: ["result.confidence > 0.7"],
  retries: 2,
  maxTokens: 200,
});

test("an ensure violation is retried with the violation and the actual value, and the trace records both attempts", async () => {
  fake.enqueue({ label: "negative", confidence: 0.42, reasoning: "angry" }, { label: "negative", confidence: 0.93, reasoning: "angry" });
  const runtime = stratum();
  const result = await runtime.runDetailed(classify, { text: "It broke again." });
  assert.equal(result.status, "ok", String(result.error));
  assert.deepEqual(result.output, { label: "negative", confidence: 0.93, reasoning: "angry" });
  const [first, second] = result.trace.attempts;
  assert.deepEqual(first!.violations, ["ensure: result.confidence > 0.7 (actual: result.confidence = 0.42)"]);
  assert.equal(second!.retryReason, "ensure: result.confidence > 0.7 (actual: result.confidence = 0.42)");
  assert.notEqual(first!.promptHash, second!.promptHash);
  assert.equal(first!.contractHash, Sentiment.contentHash);
  const retried = fake.requests[1]!.messages[0].content[0].text as string;
  assert.match(retried, /Your previous answer was rejected:\n- ensure: result\.confidence > 0\.7 \(actual: result\.confidence = 0\.42\)\nAnswer again/);
  // the request carried the contract as structured output, and the prompt was counted before the call
  assert.equal(fake.requests[0]!.output_config.format.type, "json_schema");
  assert.deepEqual(fake.requests[0]!.output_config.format.schema.required, ["label", "confidence", "reasoning"]);
  assert.equal(fake.countRequests.length, 2);
  assert.equal(result.trace.run.tokensIn, first!.tokensIn + second!.tokensIn);
});

test("when the retries run out the step fails with every attempt's violations", async () => {
  fake.addRule("emotional tone", { label: "angry", confidence: 0.5, reasoning: "x" });
  await assert.rejects(stratum().run(classify, { text: "Hm." }), (error: unknown) => {
    assert.ok(error instanceof PostconditionFailed);
    assert.equal(error.history.length, 3);
    assert.equal(error.stepId, "classify");
    assert.match(error.message, /^the output contract was still not met after 3 attempts: schema: result\.label: "angry" is not one of/);
    return true;
  });
});

test("answers that never parse fail as ParseFailure, with Python's JSON error", async () => {
  fake.addRule("emotional tone", "not json");
  await assert.rejects(stratum().run(classify, { text: "Hm." }), (error: unknown) => {
    assert.ok(error instanceof ParseFailure);
    assert.equal(error.message, "no answer parsed as JSON in 3 attempts; last: parse: the answer is not valid JSON (Expecting value at line 1, column 1)");
    return true;
  });
});

test("a false given fails at once and no request is made", async () => {
  await assert.rejects(stratum().run(classify, { text: "   " }), (error: unknown) => {
    assert.ok(error instanceof PreconditionFailed);
    assert.equal(error.message, "given: len(text.strip()) > 0 (actual: len(text.strip()) = 0)");
    return true;
  });
  assert.equal(fake.requests.length, 0);
});

test("429 and 500 from the API are retried with backoff (honouring retry-after), and counted on the attempt", async () => {
  fake.enqueue({ fault: "rate_limit", retryAfter: 0 }, { fault: "server_error" }, { fault: "overloaded" }, { label: "positive", confidence: 0.9, reasoning: "ok" });
  const result = await stratum().runDetailed(classify, { text: "Thanks!" });
  assert.equal(result.status, "ok", String(result.error));
  const [attempt] = result.trace.attempts;
  assert.equal(attempt!.transportAttempts, 4);
  assert.deepEqual(attempt!.transportErrors.map((e) => e.split(",")[0]), ["429 rate limited", "500 server error", "529 server error"]);
});

test("a 400 is not retried: the step fails with an LLMError naming the model", async () => {
  fake.enqueue({ fault: "bad_request" });
  await assert.rejects(stratum().run(classify, { text: "Hm." }), (error: unknown) => {
    assert.ok(error instanceof LLMError);
    assert.match(error.message, /^model 'claude-haiku-4-5' failed: 400 client error/);
    return true;
  });
  assert.equal(fake.requests.length, 1);
});

test("a token budget that cannot hold the counted prompt and the answer refuses the call before it is made", async () => {
  const tight = infer({ ...classify.options, name: "tight", budget: { tokens: 60 } });
  await assert.rejects(stratum().run(tight, { text: "It broke again." }), (error: unknown) => {
    assert.ok(error instanceof BudgetExceeded);
    assert.equal(error.dimension, "tokens");
    assert.match(error.message, /^the call cannot fit in the token budget of 60 \(function tight\): it reserves \d+ tokens \(\d+ for the prompt, at least 16 for the answer\) and 60 are left; no request was made$/);
    return true;
  });
  assert.equal(fake.requests.length, 0);
});

test("a time budget that runs out while the model is answering stops the step with BudgetExceeded, not a hang", async () => {
  fake.enqueue({ latencyMs: 5_000, json: { label: "positive", confidence: 0.9, reasoning: "late" } });
  const slow = infer({ ...classify.options, name: "slow", budget: { ms: 300 } });
  await assert.rejects(stratum().run(slow, { text: "Hm." }), (error: unknown) => {
    assert.ok(error instanceof BudgetExceeded);
    assert.equal(error.dimension, "ms");
    assert.equal(error.stepId, "slow");
    return true;
  });
});

test("a cost budget caps the answer's max_tokens to what is left, and refuses a model with no known price", async () => {
  fake.addRule("emotional tone", { label: "positive", confidence: 0.9, reasoning: "ok" });
  const capped = infer({ ...classify.options, name: "capped", maxTokens: undefined, budget: { usd: 0.002 } });
  await stratum().run(capped, { text: "Fine." });
  const maxTokens = fake.requests[0]!.max_tokens as number;
  assert.ok(maxTokens < 64_000 && maxTokens > 16, String(maxTokens)); // $0.002 pays for < 400 haiku-4-5 answer tokens
  const unpriced = infer({ ...classify.options, name: "unpriced", model: "claude-unknown", budget: { usd: 1 } });
  await assert.rejects(stratum().run(unpriced, { text: "Fine." }), /model 'claude-unknown' has no known price/);
  const priced = await stratum({ prices: { "claude-unknown": { input: 1e-6, output: 1e-6 } } }).runDetailed(unpriced, { text: "Fine." });
  assert.equal(priced.status, "ok", String(priced.error));
  assert.ok(priced.trace.run.costUsd > 0);
});

test("refine asks again with the feedback expression's text until `until` holds", async () => {
  const shorten = refine(
    infer({ name: "shorten", intent: "Shorten the text.", input: { text: z.string() }, output: z.string(), maxTokens: 100 }),
    { until: "len(result) <= 10", feedback: "'Use at most 10 characters; this has ' + str(len(result)) + '.'", maxIterations: 3 },
  );
  fake.enqueue({ value: "far too long an answer" }, { value: "short" });
  const result = await stratum().runDetailed(shorten, { text: "x" });
  assert.equal(result.output, "short");
  assert.equal(result.trace.attempts[1]!.retryReason, "refine: Use at most 10 characters; this has 22.");
  assert.match(fake.requests[1]!.messages[0].content[0].text, /Feedback on your previous answer:\nUse at most 10 characters; this has 22\./);
  fake.reset();
  fake.addRule("Shorten", { value: "still far too long" });
  await assert.rejects(stratum().run(shorten, { text: "x" }), (error: unknown) => {
    assert.ok(error instanceof ConvergenceFailure);
    assert.equal(error.message, "refine did not converge in 3 iterations: until len(result) <= 10 (actual: len(result) = 18)");
    return true;
  });
});

const review = infer({
  name: "review",
  intent: "Review the code for one concern.",
  input: { code: z.string(), focus: z.string() },
  output: z.object({ focus: z.string(), ok: z.boolean() }),
  retries: 0,
  maxTokens: 100,
});

function reviewFlow(require: "all" | "any" | number, validate?: string) {
  return flow({ name: `reviews_${String(require)}`, input: { code: z.string() } }, ({ input, parallel, branch }) =>
    parallel("reviews", [
      branch("security", review, { code: input.code, focus: "security" }),
      branch("style", review, { code: input.code, focus: "style" }),
      branch("speed", review, { code: input.code, focus: "speed" }),
    ], { require, ...(validate ? { validate } : {}) }),
  );
}

function scriptReviews(failing: string[]): void {
  for (const focus of ["security", "style", "speed"]) {
    fake.addRule(`focus: "${focus}"`, failing.includes(focus) ? "broken" : { focus, ok: true });
  }
}

test("parallel require: all, N, any and 0 give Python's outputs, and fail as Python does", async () => {
  scriptReviews([]);
  assert.deepEqual(await stratum().run(reviewFlow("all"), { code: "x" }), [
    { focus: "security", ok: true },
    { focus: "style", ok: true },
    { focus: "speed", ok: true },
  ]);
  fake.reset();
  scriptReviews(["style"]);
  await assert.rejects(stratum().run(reviewFlow("all"), { code: "x" }), ParseFailure);
  assert.deepEqual(await stratum().run(reviewFlow(2), { code: "x" }), [
    { focus: "security", ok: true },
    { focus: "speed", ok: true },
  ]);
  const any = (await stratum().run(reviewFlow("any"), { code: "x" })) as { ok: boolean };
  assert.equal(any.ok, true);
  const outcomes = (await stratum().run(reviewFlow(0), { code: "x" })) as { ok: boolean; error?: string }[];
  assert.deepEqual(outcomes.map((o) => o.ok), [true, false, true]);
  assert.match(outcomes[1]!.error!, /^no answer parsed as JSON in 1 attempt/);
  fake.reset();
  scriptReviews(["style", "speed"]);
  await assert.rejects(stratum().run(reviewFlow(2), { code: "x" }), (error: unknown) => {
    assert.ok(error instanceof ParallelValidationFailed);
    assert.match(error.message, /^parallel 'reviews': require: 2 but only 1 of 3 branches succeeded/);
    return true;
  });
  fake.reset();
  scriptReviews([]);
  await assert.rejects(stratum().run(reviewFlow("all", "len(outputs) > 3"), { code: "x" }), /validate: len\(outputs\) > 3 \(actual: len\(outputs\) = 3\)/);
});

const Approval = contract("Approval", z.object({ decision: z.enum(["send", "discard"]), note: z.string().optional() }));
const approve = awaitHuman({
  name: "approve",
  question: "Send this reply?",
  input: { reply: z.string() },
  output: Approval,
  options: ["send", "discard"],
  timeout: 0.05,
  onTimeout: { decision: "discard", note: "nobody answered" },
});

test("awaitHuman asks the sink, checks the decision, and falls back on timeout", async () => {
  const asked: unknown[] = [];
  const answering = stratum({ reviewSink: { ask: async (request) => (asked.push(request), { value: { decision: "send" }, reviewer: "ada" }) } });
  const result = await answering.runDetailed(approve, { reply: "Hi" });
  assert.deepEqual(result.output, { decision: "send" });
  assert.equal((asked[0] as { question: string }).question, "Send this reply?");
  assert.equal(result.trace.reviews[0]!.reviewer, "ada");
  const silent = stratum({ reviewSink: { ask: () => new Promise(() => {}) } });
  assert.deepEqual(await silent.run(approve, { reply: "Hi" }), { decision: "discard", note: "nobody answered" });
  const strict = awaitHuman({ ...approve.options, name: "strict", onTimeout: "raise" });
  await assert.rejects(silent.run(strict, { reply: "Hi" }), HITLTimeoutError);
  const declining = stratum({ reviewSink: { ask: async () => ({ action: "decline" }) } });
  await assert.rejects(declining.run(approve, { reply: "Hi" }), HumanRejected);
  const wrong = stratum({ reviewSink: { ask: async () => ({ value: { decision: "maybe" } }) } });
  await assert.rejects(wrong.run(approve, { reply: "Hi" }), /decision\.decision: "maybe" is not one of \["send", "discard"\]/);
  await assert.rejects(stratum().run(approve, { reply: "Hi" }), ConfigurationError);
});

test("a flow runs its graph: references, skipped branches, compute steps, and a JSON-lines trace file", async () => {
  const shout = compute({ name: "shout", input: { label: z.string() }, output: z.string(), expr: "label.upper() + '!'" });
  const count = compute({ name: "count", input: { text: z.string() }, output: z.int(), fn: ({ text }) => text.split(" ").length });
  const triage = flow(
    { name: "triage", input: { text: z.string() }, output: z.string(), budget: { ms: 30_000 } },
    ({ input, step }) => {
      const sentiment = step("sentiment", classify, { text: input.text });
      step("words", count, { text: input.text });
      const loud = step("loud", shout, { label: sentiment.label }, { when: "steps.sentiment.output.label == 'negative'" });
      const calm = step("calm", shout, { label: "fine" }, { when: "steps.sentiment.output.label != 'negative'" });
      return [loud, calm];
    },
  );
  fake.addRule("emotional tone", { label: "negative", confidence: 0.9, reasoning: "r" });
  const file = join(mkdtempSync(join(tmpdir(), "stratum-")), "trace.jsonl");
  const runtime = stratum({ traceFile: file });
  const result = await runtime.runDetailed(triage, { text: "It broke again" });
  assert.equal(result.output, "NEGATIVE!");
  const statuses = Object.fromEntries(result.trace.steps.map((s) => [s.stepId, s.status]));
  assert.deepEqual(statuses, { sentiment: "ok", words: "ok", loud: "ok", calm: "skipped" });
  const records = readFileSync(file, "utf-8").trim().split("\n").map((line) => JSON.parse(line) as { type: string });
  assert.deepEqual([...new Set(records.map((r) => r.type))].sort(), ["attempt", "run", "step"]);
  assert.equal(records[0]!.type, "run");
  assert.equal(records.at(-1)!.type, "run");
  await assert.rejects(runtime.run(triage, { text: 5 }), /flow 'triage': invalid input: input\.text: expected string, got 5/);
});

test("a function condition runs in TypeScript and explains itself with the values it read", async () => {
  const picky = infer({ ...classify.options, name: "picky", ensure: [(names) => names["result"].reasoning.length > 3], retries: 0 });
  fake.enqueue({ label: "neutral", confidence: 0.8, reasoning: "ok" });
  await assert.rejects(stratum().run(picky, { text: "Hm." }), (error: unknown) => {
    assert.ok(error instanceof PostconditionFailed);
    assert.match(error.message, /ensure: \(names\) => names\["result"\]\.reasoning\.length > 3 \(actual: result = \{"label": "neutral", "confidence": 0\.8, "reasoning": "ok"\}, text = "Hm\."\)$/);
    return true;
  });
});
