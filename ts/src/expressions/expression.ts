/**
 * The sandbox for plan expressions (`given`, `ensure`, `until`, `feedback`, `when`, `dispatch`, `validate`, `expr`):
 * a port of Python's `stratum_core/expressions`, rule for rule, with the same bounds and the same messages. This
 * module holds a compiled expression and how a false condition is explained (Python's `_expression.py`).
 *
 * Expressions are untrusted text in Python expression syntax. They are parsed into a tree, checked against the same
 * allow-list of node types, functions and methods, and run by a tree-walking interpreter over Python values: nothing
 * reaches `eval` or `Function`. Each evaluation is bounded in steps, wall time, nesting, and the size of the strings,
 * collections and integers it builds. A shared corpus (`tests/vectors/expressions.json`) holds both sides to the
 * same answers.
 */

import { ExpressionError } from "./errors.js";
import { Evaluator } from "./evaluation.js";
import { children, ExpressionSyntaxError, Parser, type Node } from "./parse.js";
import { Checker, checkNesting, DEFAULT_LIMITS, type FieldRead, type Limits, MAX_TEXT, statementHint } from "./syntax.js";
import {
  fromJson,
  PyDict,
  PyGenerator,
  PyRange,
  PySet,
  pyStr,
  PyTuple,
  type PyValue,
  shortRepr,
  strLength,
  strRepr,
  truthy,
} from "./values.js";

function readText(read: FieldRead): string {
  return read.root + read.fields.map((f) => (/^[\p{L}_][\p{L}\p{N}_]*$/u.test(f) ? `.${f}` : `[${strRepr(f)}]`)).join("");
}

/** A compiled expression: checked once, then evaluated any number of times. */
export class Expression {
  constructor(
    readonly text: string,
    readonly tree: Node,
    readonly code: string,
    readonly names: ReadonlySet<string>,
    readonly reads: readonly FieldRead[],
  ) {}

  /** The value with free names bound by `env` (JSON-like values), as a Python value. */
  evaluatePy(env: Record<string, unknown>, limits: Limits = DEFAULT_LIMITS): PyValue {
    return new Evaluator(this, env, limits).run(this.tree);
  }

  /** The value with free names bound by `env`, converted back to JSON (ints and floats become numbers). */
  evaluate(env: Record<string, unknown>, limits: Limits = DEFAULT_LIMITS): unknown {
    return toPlain(this.evaluatePy(env, limits));
  }

  /** True when the value is truthy, as Python's `bool(...)`. */
  holds(env: Record<string, unknown>, limits: Limits = DEFAULT_LIMITS): boolean {
    return truthy(this.evaluatePy(env, limits));
  }

  segment(node: Node): string {
    return this.code.slice(node.start, node.end) || this.text.trim();
  }
}

function toPlain(value: PyValue): unknown {
  if (value instanceof PyGenerator) return null;
  if (value === null || typeof value !== "object") return typeof value === "bigint" ? Number(value) : value;
  if (Array.isArray(value)) return value.map(toPlain);
  if (value instanceof PyTuple) return value.items.map(toPlain);
  if (value instanceof PySet) return value.values().map(toPlain);
  if (value instanceof PyRange) return [...value].map(Number);
  const out: Record<string, unknown> = {};
  for (const [key, item] of value.items()) out[typeof key === "string" ? key : pyStr(key)] = toPlain(item);
  return out;
}

const cache = new Map<string, Expression>();

/** Parse and check `text`; throws ExpressionSyntaxError for anything the sandbox will not run. Cached. */
export function compileExpression(text: string, limits: Limits = DEFAULT_LIMITS): Expression {
  if (typeof text !== "string") {
    throw new ExpressionSyntaxError(`an expression must be text, not ${typeof text}`, { expression: String(text), offset: 0 });
  }
  const key = limits === DEFAULT_LIMITS ? text : `${JSON.stringify(limits)}\u0000${text}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const compiled = compile(text, limits);
  if (cache.size >= 4096) cache.clear();
  cache.set(key, compiled);
  return compiled;
}

function compile(text: string, limits: Limits): Expression {
  const length = strLength(text);
  if (length > MAX_TEXT) {
    throw new ExpressionSyntaxError(`expression is too long: ${length} characters (limit ${MAX_TEXT})`, {
      expression: text,
      offset: MAX_TEXT,
    });
  }
  const code = text.replace(/^[ \t\f]+/, "");
  const lead = text.length - code.length;
  if (code.trim() === "") throw new ExpressionSyntaxError("expression is empty", { expression: text, offset: 0 });
  const fail = (message: string, offset: number): never => {
    throw new ExpressionSyntaxError(message === "invalid syntax" ? "invalid syntax" : `invalid syntax: ${message}`, {
      expression: text,
      offset: lead + offset,
      hint: statementHint(code),
    });
  };
  const tree = new Parser(code, fail).parse();
  checkNesting(text, code, lead, tree, limits.maxDepth);
  const checker = new Checker(text, lead, limits);
  checker.check(tree, new Set());
  const reads = [...checker.reads].sort((a, b) => a.offset - b.offset);
  return new Expression(text, tree, code, checker.names, reads);
}

// --- failure descriptions -------------------------------------------------------------------------------------------

function containsName(node: Node): boolean {
  return node.kind === "Name" || children(node).some(containsName);
}

const MISSING = Symbol("missing");

function readField(env: Record<string, unknown>, read: FieldRead): PyValue | typeof MISSING {
  if (!Object.prototype.hasOwnProperty.call(env, read.root)) return MISSING;
  let value: PyValue;
  try {
    value = fromJson(env[read.root]);
  } catch {
    return MISSING;
  }
  for (const name of read.fields) {
    if (!(value instanceof PyDict) || !value.has(name)) return MISSING;
    value = value.get(name) as PyValue;
  }
  return value;
}

function actualValues(expression: Expression, clause: Node, env: Record<string, unknown>): [string, PyValue][] {
  const shown = new Map<string, PyValue>();
  if (clause.kind === "Compare") {
    for (const operand of [clause.left, ...clause.comparators]) {
      if (!containsName(operand)) continue;
      try {
        const segment = expression.segment(operand);
        const value = new Evaluator(expression, env, DEFAULT_LIMITS).run(operand);
        if (!shown.has(segment)) shown.set(segment, value);
      } catch (error) {
        if (error instanceof ExpressionError) continue;
        throw error;
      }
    }
    if (shown.size) return [...shown];
  }
  const lead = expression.text.length - expression.code.length;
  const start = lead + clause.start;
  const end = lead + clause.end;
  for (const read of expression.reads) {
    if (start <= read.offset && read.offset < end) {
      const value = readField(env, read);
      const text = readText(read);
      if (value !== MISSING && !shown.has(text)) shown.set(text, value);
    }
  }
  return [...shown];
}

/**
 * Explain a falsy condition with the values it read, e.g. `x.a > 1 (actual: x.a = 0)`, in the words Python uses.
 * For an `and` chain only the first false clause is shown: that is the one to fix.
 */
export function describeFailure(expression: Expression, env: Record<string, unknown>): string {
  let clause = expression.tree;
  if (clause.kind === "BoolOp" && clause.op === "And") {
    for (const part of clause.values) {
      let holds: PyValue;
      try {
        holds = new Evaluator(expression, env, DEFAULT_LIMITS).run(part);
      } catch (error) {
        if (error instanceof ExpressionError) return `${expression.segment(part)} (error: ${error.detail})`;
        throw error;
      }
      if (!truthy(holds)) {
        clause = part;
        break;
      }
    }
  }
  const text = clause === expression.tree ? expression.text.trim() : expression.segment(clause);
  const actual = actualValues(expression, clause, env)
    .map(([name, value]) => `${name} = ${shortRepr(value)}`)
    .join(", ");
  return actual ? `${text} (actual: ${actual})` : text;
}

