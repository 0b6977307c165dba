/**
 * Checking a model's answer against its output type with Zod, and saying what is wrong in the words Python's
 * engine uses (`stratum_core/engine/_validation.py`), so retry feedback reads the same in both:
 * `schema: result.confidence: 1.5 is greater than the maximum of 1`. Lines are sorted by path then keyword, as
 * Python sorts jsonschema's errors, and at most 10 are kept.
 */

import type { z } from "zod";

import { floatRepr, strRepr } from "./expressions/values.js";
import { pyJsonDumps } from "./json.js";
import { type ContractSpec, type FieldSpec, isContractType } from "./schema.js";

const MAX_VIOLATIONS = 10;

interface Problem {
  path: (string | number)[];
  keyword: string;
  message: string;
}

/** Python's `_short`: the JSON of a value, cut to 80 characters. */
export function shortJson(value: unknown): string {
  const text = pyJsonDumps(value);
  const points = [...text];
  return points.length <= 80 ? text : points.slice(0, 77).join("") + "...";
}

function bound(value: unknown): string {
  return typeof value === "number" && !Number.isSafeInteger(value) ? floatRepr(value) : String(value);
}

function where(path: (string | number)[], root: string): string {
  return root + path.map((part) => (typeof part === "number" ? `[${part}]` : `.${part}`)).join("");
}

function at(value: unknown, path: PropertyKey[]): unknown {
  let current = value;
  for (const part of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<PropertyKey, unknown>)[part as string];
  }
  return current;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function fitsType(value: unknown, type: string): boolean {
  const actual = jsonType(value);
  return actual === type || (type === "number" && actual === "integer");
}

/** The field specs of an object type (a contract or inline properties), or undefined. */
function fieldsOf(spec: FieldSpec | undefined, contracts: ReadonlyMap<string, ContractSpec>): Record<string, FieldSpec> | undefined {
  if (spec === undefined) return undefined;
  if (isContractType(spec)) return contracts.get(spec.type!)?.fields;
  return spec.properties;
}

function specAt(root: FieldSpec, path: (string | number)[], contracts: ReadonlyMap<string, ContractSpec>): FieldSpec | undefined {
  let spec: FieldSpec | undefined = root;
  for (const part of path) {
    if (spec === undefined) return undefined;
    spec = typeof part === "number" ? spec.items : fieldsOf(spec, contracts)?.[part];
  }
  return spec;
}

/** Keys that the object types in `value` do not declare (Zod drops them; the plan's schemas forbid them). */
function unexpectedKeys(value: unknown, spec: FieldSpec, contracts: ReadonlyMap<string, ContractSpec>, path: (string | number)[], out: Problem[], depth = 0): void {
  if (depth > 64) return;
  const fields = fieldsOf(spec, contracts);
  if (fields !== undefined && isObject(value)) {
    const extra = Object.keys(value)
      .filter((key) => !(key in fields))
      .sort();
    if (extra.length) {
      const list = extra.map((key) => strRepr(key)).join(", ");
      out.push({ path, keyword: "additionalProperties", message: `unexpected field${extra.length !== 1 ? "s" : ""} ${list}` });
    }
    for (const [key, field] of Object.entries(fields)) {
      if (key in value) unexpectedKeys(value[key], field, contracts, [...path, key], out, depth + 1);
    }
  } else if (spec.items !== undefined && Array.isArray(value)) {
    value.forEach((item, index) => unexpectedKeys(item, spec.items!, contracts, [...path, index], out, depth + 1));
  }
}

function length(value: unknown): number | string {
  if (typeof value === "string") return [...value].length;
  if (Array.isArray(value)) return value.length;
  return "?";
}

function fromIssue(issue: z.core.$ZodIssue, value: unknown, spec: FieldSpec, contracts: ReadonlyMap<string, ContractSpec>): Problem[] {
  const path = issue.path.map((part) => (typeof part === "number" ? part : String(part)));
  const input = at(value, issue.path);
  const here = specAt(spec, path, contracts);
  const parentValue = at(value, issue.path.slice(0, -1));
  const absent = input === undefined && path.length > 0 && !(isObject(parentValue) && String(path[path.length - 1]) in parentValue);
  switch (issue.code === "invalid_type" || absent ? "invalid_type" : issue.code) {
    case "invalid_type": {
      if (absent) {
        const parent = path.slice(0, -1);
        const object = at(value, parent);
        const declared = fieldsOf(specAt(spec, parent, contracts), contracts);
        const required = declared ? Object.entries(declared).filter(([, f]) => f.required !== false).map(([k]) => k) : [String(path[path.length - 1])];
        const missing = required.filter((name) => !isObject(object) || !(name in object));
        const list = missing.map((name) => strRepr(name)).join(", ");
        return [{ path: parent, keyword: "required", message: `missing required field${missing.length !== 1 ? "s" : ""} ${list}` }];
      }
      const zodExpected = (issue as { expected?: string }).expected;
      const expected = here?.type && !isContractType(here) ? here.type : zodExpected === "int" ? "integer" : zodExpected;
      return [{ path, keyword: "type", message: `expected ${expected}, got ${shortJson(input)}` }];
    }
    case "invalid_value": {
      const values = (issue as { values: unknown[] }).values;
      const problems: Problem[] = [{ path, keyword: "enum", message: `${shortJson(input)} is not one of ${shortJson(values)}` }];
      if (here?.type && !isContractType(here) && !fitsType(input, here.type)) {
        problems.push({ path, keyword: "type", message: `expected ${here.type}, got ${shortJson(input)}` });
      }
      return problems;
    }
    case "too_big":
    case "too_small": {
      const sized = issue as unknown as { code: string; origin: string; inclusive?: boolean; maximum?: unknown; minimum?: unknown; format?: string };
      const big = sized.code === "too_big";
      const limit = big ? sized.maximum : sized.minimum;
      if (sized.origin === "number" || sized.origin === "int" || sized.origin === "bigint") {
        const inclusive = sized.inclusive !== false;
        const keyword = big ? (inclusive ? "maximum" : "exclusiveMaximum") : inclusive ? "minimum" : "exclusiveMinimum";
        const words = {
          minimum: "less than the minimum of",
          maximum: "greater than the maximum of",
          exclusiveMinimum: "not greater than",
          exclusiveMaximum: "not less than",
        }[keyword];
        return [{ path, keyword, message: `${shortJson(input)} is ${words} ${bound(limit)}` }];
      }
      const unit = sized.origin === "string" ? "characters" : "items";
      const keyword = `${big ? "max" : "min"}${sized.origin === "string" ? "Length" : "Items"}`;
      return [{ path, keyword, message: `has ${length(input)} ${unit}, expected ${big ? "at most" : "at least"} ${bound(limit)}` }];
    }
    case "invalid_format": {
      const format = (issue as unknown as { format: string }).format;
      if (format === "regex" && typeof input === "string" && here?.pattern !== undefined) {
        return [{ path, keyword: "pattern", message: `${strRepr(input)} does not match ${strRepr(here.pattern)}` }];
      }
      return [{ path, keyword: "format", message: `${shortJson(input)} is not a valid ${here?.format ?? format}` }];
    }
    case "unrecognized_keys":
      return [];
    default:
      return [{ path, keyword: issue.code, message: issue.message }];
  }
}

function compareKeys(a: Problem, b: Problem): number {
  const x = a.path.map(String);
  const y = b.path.map(String);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  }
  if (x.length !== y.length) return x.length - y.length;
  return a.keyword < b.keyword ? -1 : a.keyword > b.keyword ? 1 : 0;
}

/**
 * Every way `value` breaks its type, as `schema: result.field: what is wrong` lines (at most 10), validated by
 * the type's Zod schema, plus the undeclared keys the plan's schemas forbid.
 */
export function schemaViolations(
  value: unknown,
  zod: z.ZodType,
  spec: FieldSpec,
  contracts: ReadonlyMap<string, ContractSpec>,
  root = "result",
): string[] {
  const problems: Problem[] = [];
  collect(value, zod, spec, contracts, [], problems, 0);
  unexpectedKeys(value, spec, contracts, [], problems);
  problems.sort(compareKeys);
  return problems.slice(0, MAX_VIOLATIONS).map((p) => `schema: ${where(p.path, root)}: ${p.message}`);
}

function unwrap(zod: z.ZodType): z.ZodType {
  let current = zod as unknown as { _zod: { def: Record<string, any> } };
  while (["optional", "default", "prefault", "nonoptional", "readonly"].includes(current._zod.def["type"])) {
    current = current._zod.def["innerType"];
  }
  return current as unknown as z.ZodType;
}

/** The Zod schema at `path` inside `zod` (object fields, array items), if it can be found. */
function zodAt(zod: z.ZodType, path: (string | number)[]): z.ZodType | undefined {
  let current: z.ZodType | undefined = zod;
  for (const part of path) {
    if (current === undefined) return undefined;
    const def: Record<string, any> = (unwrap(current) as unknown as { _zod: { def: Record<string, any> } })._zod.def;
    if (def["type"] === "array" && typeof part === "number") current = def["element"];
    else if (def["type"] === "object" && typeof part === "string") current = def["shape"][part];
    else return undefined;
  }
  return current;
}

/**
 * Zod's issues, in Python's words. Zod skips an array's items once its length check fails, where jsonschema reports
 * both: the items of such an array are checked on their own, so both implementations list the same problems.
 */
function collect(
  value: unknown,
  zod: z.ZodType,
  spec: FieldSpec,
  contracts: ReadonlyMap<string, ContractSpec>,
  prefix: (string | number)[],
  problems: Problem[],
  depth: number,
): void {
  const parsed = zod.safeParse(value, { reportInput: true });
  if (parsed.success) return;
  for (const issue of parsed.error.issues) {
    for (const problem of fromIssue(issue, value, spec, contracts)) problems.push({ ...problem, path: [...prefix, ...problem.path] });
    const lengthOfArray = (issue.code === "too_big" || issue.code === "too_small") && issue.origin === "array";
    if (!lengthOfArray || depth > 32) continue;
    const path = issue.path.map((part) => (typeof part === "number" ? part : String(part)));
    const items = at(value, issue.path);
    const arrayZod = zodAt(zod, path);
    const arraySpec = specAt(spec, path, contracts);
    const element = arrayZod && (unwrap(arrayZod) as unknown as { _zod: { def: Record<string, any> } })._zod.def["element"];
    if (!Array.isArray(items) || !element || !arraySpec?.items) continue;
    items.forEach((item, index) => collect(item, element, arraySpec.items!, contracts, [...prefix, ...path, index], problems, depth + 1));
  }
}
