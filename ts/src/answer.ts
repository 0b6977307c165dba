/**
 * Reading a model's answer as Python's engine reads it (`parse_answer` in `stratum_core/engine/_infer.py`): a ```
 * fence is tolerated, and JSON is parsed by a port of Python's `json` decoder so that a broken answer is reported
 * with the same words and position (`Expecting ',' delimiter at line 1, column 22`), which the retry feeds back;
 * then checked against the output type (Zod) and `ensure`, each problem worded as Python words it.
 */

import type { z } from "zod";

import { evaluateCondition, explain, conditionText } from "./conditions.js";
import { ExpressionError } from "./errors.js";
import type { Condition } from "./functions.js";
import type { ContractSpec, FieldSpec, OutputSchema } from "./schema.js";
import { schemaViolations } from "./validation.js";

const FENCE = /^```[A-Za-z0-9_-]*[ \t]*\n?([\s\S]*?)\n?[ \t]*```$/;
const PY_SPACE = /^[\s\x1c-\x1f\x85]+|[\s\x1c-\x1f\x85]+$/gu;
const NUMBER = /^(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?/;

class DecodeError extends Error {
  constructor(
    readonly msg: string,
    readonly pos: number,
  ) {
    super(msg);
  }
}

class StopIteration extends Error {
  constructor(readonly pos: number) {
    super("stop");
  }
}

/** Python's `json.loads` on `text` (a list of code points), with Python's error messages. */
function decode(points: string[]): unknown {
  const n = points.length;
  const ws = (i: number): number => {
    while (i < n && " \t\n\r".includes(points[i]!)) i++;
    return i;
  };
  const scanString = (start: number): [string, number] => {
    // start: index after the opening quote
    let out = "";
    let i = start;
    for (;;) {
      if (i >= n) throw new DecodeError("Unterminated string starting at", start - 1);
      const ch = points[i]!;
      if (ch === '"') return [out, i + 1];
      if (ch === "\\") {
        i++;
        if (i >= n) throw new DecodeError("Unterminated string starting at", start - 1);
        const esc = points[i]!;
        const simple: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
        if (esc in simple) {
          out += simple[esc];
          i++;
          continue;
        }
        if (esc !== "u") throw new DecodeError("Invalid \\escape", i - 1);
        const hex = points.slice(i + 1, i + 5).join("");
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new DecodeError("Invalid \\uXXXX escape", i - 1);
        let code = parseInt(hex, 16);
        i += 5;
        if (code >= 0xd800 && code <= 0xdbff && points[i] === "\\" && points[i + 1] === "u") {
          const low = points.slice(i + 2, i + 6).join("");
          if (!/^[0-9a-fA-F]{4}$/.test(low)) throw new DecodeError("Invalid \\uXXXX escape", i);
          const second = parseInt(low, 16);
          if (second >= 0xdc00 && second <= 0xdfff) {
            code = 0x10000 + ((code - 0xd800) << 10) + (second - 0xdc00);
            i += 6;
          }
        }
        out += String.fromCodePoint(code);
        continue;
      }
      if (ch.codePointAt(0)! < 0x20) throw new DecodeError("Invalid control character at", i);
      out += ch;
      i++;
    }
  };
  const scan = (i: number, depth: number): [unknown, number] => {
    if (depth > 900) throw new DecodeError("nested too deeply", i);
    if (i >= n) throw new StopIteration(i);
    const ch = points[i]!;
    if (ch === '"') return scanString(i + 1);
    if (ch === "{") return object(i + 1, depth);
    if (ch === "[") return array(i + 1, depth);
    const rest = (length: number): string => points.slice(i, i + length).join("");
    if (ch === "n" && rest(4) === "null") return [null, i + 4];
    if (ch === "t" && rest(4) === "true") return [true, i + 4];
    if (ch === "f" && rest(5) === "false") return [false, i + 5];
    const number = NUMBER.exec(points.slice(i, i + 400).join(""));
    if (number) {
      const [text, , frac, exp] = number;
      return [frac || exp ? Number(text) : Number(BigInt(text)), i + [...text].length];
    }
    if (ch === "N" && rest(3) === "NaN") throw new ConstantError("NaN");
    if (ch === "I" && rest(8) === "Infinity") throw new ConstantError("Infinity");
    if (ch === "-" && rest(9) === "-Infinity") throw new ConstantError("-Infinity");
    throw new StopIteration(i);
  };
  const value = (i: number, depth: number): [unknown, number] => {
    try {
      return scan(i, depth + 1);
    } catch (error) {
      if (error instanceof StopIteration) throw new DecodeError("Expecting value", error.pos);
      throw error;
    }
  };
  const object = (i: number, depth: number): [unknown, number] => {
    const out: Record<string, unknown> = {};
    i = ws(i);
    if (points[i] === "}") return [out, i + 1];
    for (;;) {
      if (points[i] !== '"') throw new DecodeError("Expecting property name enclosed in double quotes", i);
      const [key, afterKey] = scanString(i + 1);
      i = ws(afterKey);
      if (points[i] !== ":") throw new DecodeError("Expecting ':' delimiter", i);
      i = ws(i + 1);
      const [item, afterValue] = value(i, depth);
      Object.defineProperty(out, key, { value: item, enumerable: true, writable: true, configurable: true });
      i = ws(afterValue);
      if (points[i] === "}") return [out, i + 1];
      if (points[i] !== ",") throw new DecodeError("Expecting ',' delimiter", i);
      i = ws(i + 1);
    }
  };
  const array = (i: number, depth: number): [unknown, number] => {
    const out: unknown[] = [];
    i = ws(i);
    if (points[i] === "]") return [out, i + 1];
    for (;;) {
      const [item, after] = value(i, depth);
      out.push(item);
      i = ws(after);
      if (points[i] === "]") return [out, i + 1];
      if (points[i] !== ",") throw new DecodeError("Expecting ',' delimiter", i);
      i = ws(i + 1);
    }
  };
  const start = ws(0);
  const [result, end] = value(start, 0);
  const tail = ws(end);
  if (tail !== n) throw new DecodeError("Extra data", tail);
  return result;
}

class ConstantError extends Error {}

function hasLoneSurrogate(value: unknown): boolean {
  if (typeof value === "string") return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogate);
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).some(([key, item]) => hasLoneSurrogate(key) || hasLoneSurrogate(item));
  }
  return false;
}

/** The JSON value of a model's answer; throws Error with Python's short reason when it is not JSON. */
export function parseAnswer(content: string): unknown {
  let text = content.replace(PY_SPACE, "");
  const fenced = FENCE.exec(text);
  if (fenced) text = fenced[1]!.replace(PY_SPACE, "");
  if (!text) throw new Error("the answer is empty");
  const points = [...text];
  let value: unknown;
  try {
    value = decode(points);
  } catch (error) {
    if (error instanceof ConstantError) throw new Error(`${error.message} is not valid JSON`);
    if (!(error instanceof DecodeError)) throw error;
    const before = points.slice(0, error.pos);
    const line = before.filter((ch) => ch === "\n").length + 1;
    const lastNewline = before.lastIndexOf("\n");
    const column = error.pos - lastNewline;
    throw new Error(`${error.msg} at line ${line}, column ${column}`);
  }
  if (hasLoneSurrogate(value)) throw new Error("a string holds an unpaired \\u surrogate escape, which is not valid Unicode");
  return value;
}

export interface Checked {
  value: unknown;
  violations: string[];
  parsed: boolean;
}

export interface AnswerSpec {
  output: OutputSchema;
  zod: z.ZodType;
  spec: FieldSpec;
  contracts: ReadonlyMap<string, ContractSpec>;
  ensure: readonly Condition[];
  inputs: Record<string, unknown>;
}

export function ensureViolations(spec: Pick<AnswerSpec, "ensure" | "inputs">, value: unknown): string[] {
  const env = { ...spec.inputs, result: value };
  const violations: string[] = [];
  for (const condition of spec.ensure) {
    let ok: boolean;
    try {
      ok = evaluateCondition(condition, env, "");
    } catch (error) {
      if (!(error instanceof ExpressionError)) throw error;
      const detail = typeof condition === "string" ? error.detail : error.message;
      violations.push(`ensure: ${conditionText(condition)} could not be evaluated: ${detail}`);
      continue;
    }
    if (!ok) violations.push(`ensure: ${explain(condition, env, ["result", ...Object.keys(spec.inputs)])}`);
  }
  return violations;
}

/** Parse, schema-validate (Zod) and `ensure`-check one answer, with Python's violation texts. */
export function checkAnswer(content: string, spec: AnswerSpec): Checked {
  let data: unknown;
  try {
    data = parseAnswer(content);
  } catch (error) {
    return { value: undefined, violations: [`parse: the answer is not valid JSON (${(error as Error).message})`], parsed: false };
  }
  let value = data;
  if (spec.output.wrapped && typeof data === "object" && data !== null && !Array.isArray(data) && "value" in data) {
    value = (data as { value: unknown }).value;
  }
  const violations = schemaViolations(value, spec.zod, spec.spec, spec.contracts);
  if (violations.length) return { value: undefined, violations, parsed: true };
  return { value, violations: ensureViolations(spec, value), parsed: true };
}
