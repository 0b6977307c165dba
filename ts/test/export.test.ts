import assert from "node:assert/strict";
import { test } from "node:test";

import { parse } from "yaml";
import { z } from "zod";

import { compute, DefinitionError, exportPlan, flow, infer } from "../src/index.js";
import * as support from "../examples/support.js";

test("a module exports as a version 1 plan: contracts, functions with plan keys, flows with references", () => {
  const plan = parse(exportPlan(support)) as Record<string, any>;
  assert.equal(plan["version"], "1");
  assert.deepEqual(Object.keys(plan["contracts"]).sort(), ["Approval", "Outcome", "Reply", "Sentiment", "Ticket"]);
  assert.deepEqual(plan["contracts"]["Ticket"]["customer_note"], { type: "string", required: false, opaque: true });
  const classify = plan["functions"]["classify"];
  assert.deepEqual(classify["ensure"], ["result.confidence > 0.7"]);
  assert.equal(classify["model"], "anthropic/claude-haiku-4-5");
  assert.equal(classify["max_tokens"], 400);
  assert.equal(classify["output"], "Sentiment");
  assert.deepEqual(plan["functions"]["draft"]["refine"], {
    until: "len(result.body) < 40",
    feedback: "'Shorter: ' + str(len(result.body)) + ' characters'",
    max_iterations: 3,
  });
  assert.equal(plan["functions"]["approve"]["mode"], "human");
  const steps = plan["flows"]["support"]["steps"];
  assert.deepEqual(steps[1], { id: "reply", function: "draft", inputs: { text: "$.input.ticket.text", label: "$.steps.sentiment.output.label" } });
  assert.equal(steps[2]["parallel"]["require"], 2);
  assert.equal(steps[3]["when"], "steps.sentiment.output.label != 'positive'");
  assert.equal(plan["flows"]["support"]["result"], "$.steps.outcome.output");
});

test("what has no plan form is reported, every problem at once with its path, and nothing is exported", () => {
  const words = compute({ name: "words", input: { text: z.string() }, output: z.int(), fn: ({ text }) => text.length });
  const rate = infer({
    name: "rate",
    intent: "Rate it.",
    input: { text: z.string() },
    output: z.int(),
    ensure: ["result >= 0", (names) => names["result"] < 10],
  });
  const both = flow({ name: "both", input: { text: z.string() } }, ({ input, step }) => {
    step("words", words, { text: input.text });
    return step("rate", rate, { text: "$.input.text" }, { when: () => true });
  });
  assert.throws(() => exportPlan({ both }), (error: unknown) => {
    assert.ok(error instanceof DefinitionError);
    assert.equal(
      error.message,
      [
        "cannot export (4 problems):",
        "functions.words: a compute function written in TypeScript (fn) cannot be exported (write it as an expression: expr)",
        'functions.rate.ensure[1]: a TypeScript function ((names) => names["result"] < 10) cannot be exported (write it as an expression string)',
        "flows.both.steps[1].inputs.text: the literal '$.input.text' would read as a reference in a plan",
        "flows.both.steps[1].when: a TypeScript function (() => true) cannot be exported (write it as an expression string)",
      ].join("\n"),
    );
    return true;
  });
});

test("a reference is not a value while the flow is built: using one as a value says so", () => {
  const echo = compute({ name: "echo", input: { n: z.int() }, output: z.int(), expr: "n" });
  assert.throws(
    () =>
      flow({ name: "bad", input: { n: z.int() } }, ({ input, step }) => {
        const one = step("one", echo, { n: input.n });
        return step("two", echo, { n: (one as unknown as number) + 1 });
      }),
    /\$\.steps\.one\.output is a reference while the flow is built, not a value/,
  );
});
