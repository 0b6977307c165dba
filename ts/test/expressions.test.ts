import assert from "node:assert/strict";
import { test } from "node:test";

import { compileExpression, describeFailure, ExpressionError, ExpressionSyntaxError, pyRepr } from "../src/expressions/index.js";
import { vectors } from "./paths.js";

interface Case {
  expression: string;
  env: Record<string, unknown>;
  repr?: string;
  error?: string;
  refused?: string;
  described?: string;
}

const cases = vectors<Case[]>("expressions.json");

function answer(entry: Case): Partial<Case> {
  let expression;
  try {
    expression = compileExpression(entry.expression);
  } catch (error) {
    assert.ok(error instanceof ExpressionSyntaxError, `not a syntax error: ${error}`);
    const syntax = error.detail.startsWith("invalid syntax") || error.detail.startsWith("expression cannot be parsed");
    return { refused: syntax ? "syntax" : error.message };
  }
  if (entry.described !== undefined) return { described: describeFailure(expression, entry.env) };
  try {
    return { repr: pyRepr(expression.evaluatePy(entry.env)) };
  } catch (error) {
    assert.ok(error instanceof ExpressionError, `not an ExpressionError: ${error}`);
    return { error: error.detail.startsWith("evaluation took too") ? "bounded" : error.detail };
  }
}

test("the TypeScript sandbox gives Python's answer on every expression of the shared corpus", () => {
  const wrong: string[] = [];
  for (const entry of cases) {
    const { expression, env: _env, ...expected } = entry;
    const actual = answer(entry);
    try {
      assert.deepEqual(actual, expected);
    } catch {
      wrong.push(`${JSON.stringify(expression).slice(0, 120)}\n    python: ${JSON.stringify(expected)}\n    ts:     ${JSON.stringify(actual)}`);
    }
  }
  assert.equal(wrong.length, 0, `${wrong.length} of ${cases.length} answers differ:\n${wrong.join("\n")}`);
});

test("the corpus covers values, run-time errors, bounds, refusals and failure descriptions", () => {
  for (const key of ["repr", "error", "refused", "described"] as const) {
    assert.ok(cases.filter((entry) => entry[key] !== undefined).length >= 10, key);
  }
  assert.ok(cases.some((entry) => entry.error?.includes("(limit")));
});

test("an expression never reaches JavaScript objects: constructors and prototypes are not fields", () => {
  for (const text of ["constructor", "x.constructor", "x['__proto__']", "x.toString()", "x['constructor']"]) {
    let message = "";
    try {
      compileExpression(text).evaluate({ x: {} });
    } catch (error) {
      message = String((error as Error).message);
    }
    assert.match(message, /not allowed|not available|unknown name|has no field/, text);
  }
});
