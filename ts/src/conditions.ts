/**
 * Conditions (`given`, `ensure`, `when`, `until`, `validate`): an expression string run by the sandbox, or a
 * TypeScript function of the names an expression would see; a false one is explained with the values it read.
 */

import { ExpressionError } from "./errors.js";
import { compileExpression, describeFailure, type Expression } from "./expressions/index.js";
import type { Condition, Feedback } from "./functions.js";
import { pyJsonDumps } from "./json.js";

export function conditionText(condition: Condition | Feedback): string {
  if (typeof condition === "string") return condition;
  const source = condition.toString().split(/\s+/).join(" ");
  return source.length <= 120 ? source : source.slice(0, 117) + "...";
}

function short(value: unknown): string {
  const text = pyJsonDumps(value);
  return text.length <= 200 ? text : text.slice(0, 197) + "...";
}

export function compiled(text: string, stepId: string): Expression {
  try {
    return compileExpression(text);
  } catch (error) {
    throw Object.assign(new ExpressionError(`${text}: ${(error as Error).message}`, text), { stepId });
  }
}

/** The value of a condition on `env`; an expression error (or a throwing function) names the step. */
export function evaluateCondition(condition: Condition, env: Record<string, unknown>, stepId: string): boolean {
  if (typeof condition === "string") {
    try {
      return compiled(condition, stepId).holds(env);
    } catch (error) {
      if (error instanceof ExpressionError) Object.assign(error, { stepId });
      throw error;
    }
  }
  try {
    return Boolean(condition(env));
  } catch (error) {
    const text = conditionText(condition);
    throw Object.assign(new ExpressionError(`${text} raised ${(error as Error)?.name ?? "an error"}: ${(error as Error)?.message ?? error}`, text), { stepId });
  }
}

/** Why a condition is false, with the values it read (Python's `describe`). */
export function explain(condition: Condition, env: Record<string, unknown>, shown: string[]): string {
  if (typeof condition === "string") return describeFailure(compileExpression(condition), env);
  const actual = shown.filter((name) => name in env).map((name) => `${name} = ${short(env[name])}`).join(", ");
  const text = conditionText(condition);
  return actual ? `${text} (actual: ${actual})` : text;
}
