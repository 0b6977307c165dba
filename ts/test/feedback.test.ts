import assert from "node:assert/strict";
import { test } from "node:test";

import { z } from "zod";

import { checkAnswer, compileMessages, contract, infer, type InferFn, opaque, outputSchema, promptHash } from "../src/index.js";
import { splitOpaque } from "../src/prompt.js";
import { vectors } from "./paths.js";

interface Attempt {
  messages: { role: string; content: string }[];
  prompt_hash: string;
}

interface Vectors {
  cases: {
    function: string;
    inputs: Record<string, unknown>;
    contract_hash: string;
    first: Attempt;
    checks: { answer: string; violations: string[]; value: unknown; next: Attempt }[];
  }[];
}

// The functions of FEEDBACK_PLAN (tests/vectors/vector_cases.py), written with Zod.
const Sentiment = contract(
  "Sentiment",
  z.object({ label: z.enum(["positive", "negative", "neutral"]), confidence: z.number().min(0).max(1), reasoning: z.string() }),
);
const Headline = contract("Headline", z.object({ text: z.string().max(40), tags: z.array(z.string()).min(1) }));
const Note = contract("Note", z.object({ body: z.string(), source: opaque(z.string()) }));

const functions: Record<string, InferFn> = {
  classify: infer({
    name: "classify",
    intent: "Classify the emotional tone of the text.",
    context: ["Treat sarcasm as negative.", "  When unsure, say neutral.  "],
    input: { text: z.string() },
    output: Sentiment,
    ensure: ["result.confidence > 0.7", "len(result.reasoning) < 50"],
  }),
  headline: infer({
    name: "headline",
    intent: "Write a headline for the note.",
    input: { note: Note, limit: z.int(), hint: opaque(z.string()) },
    output: Headline,
    ensure: ["len(result.text) < limit and result.tags[0] != 'none'"],
  }),
  count: infer({
    name: "count",
    intent: "Count the words.",
    input: { text: z.string() },
    output: z.int().min(0),
    ensure: ["result <= len(text.split())"],
  }),
  labels: infer({ name: "labels", intent: "Label each sentence.", input: {}, output: z.array(Sentiment.zod).max(2) }),
};

const expected = vectors<Vectors>("feedback.json");

function attempt(fn: InferFn, inputs: Record<string, unknown>, violations: string[]): Attempt {
  const [visible, attachment] = splitOpaque(fn.inputSpecs, inputs, fn.contracts);
  const wrapped = outputSchema(fn.name, fn.outputSpec, fn.contracts).wrapped;
  const messages = compileMessages({ intent: fn.options.intent, context: fn.context, visible, attachment, violations, wrapped });
  return { messages, prompt_hash: promptHash(messages) };
}

test("retry feedback is Python's, word for word: violations, the next prompt and its hash (shared vectors)", () => {
  assert.equal(expected.cases.length, Object.keys(functions).length);
  for (const vector of expected.cases) {
    const fn = functions[vector.function]!;
    const output = outputSchema(fn.name, fn.outputSpec, fn.contracts);
    assert.equal(output.contractHash, vector.contract_hash, vector.function);
    assert.deepEqual(attempt(fn, vector.inputs, []), vector.first, `${vector.function}: first prompt`);
    for (const check of vector.checks) {
      const checked = checkAnswer(check.answer, {
        output,
        zod: fn.outputZod,
        spec: fn.outputSpec,
        contracts: fn.contracts,
        ensure: fn.ensure,
        inputs: vector.inputs,
      });
      assert.deepEqual(checked.violations, check.violations, `${vector.function}: ${check.answer}`);
      if (!check.violations.length) assert.deepEqual(checked.value, check.value);
      assert.deepEqual(attempt(fn, vector.inputs, checked.violations), check.next, `${vector.function}: prompt after ${check.answer}`);
    }
  }
});
