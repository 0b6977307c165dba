/**
 * The functions and methods expressions may call (Python's `stratum_core/expressions/_builtins.py`): their
 * signatures, checked when an expression is compiled, and what they do, with CPython's answers and messages.
 */

import { type Evaluator, lengthOf, rawItems, SEQUENCE_KINDS, sliceValue } from "./evaluation.js";
import {
  asBigInt,
  bitLength,
  isInt,
  isNumber,
  pyCompare,
  PyDict,
  pyEquals,
  PyError,
  PyRange,
  pyRepr,
  PySet,
  pySort,
  pyStr,
  PyTuple,
  type PyValue,
  sequenceItems,
  strLength,
  strRepr,
  toFloat,
  truthy,
  typeName,
} from "./values.js";

// --- functions and methods ------------------------------------------------------------------------------------------

type Implementation = (ev: Evaluator, args: PyValue[], keywords: Map<string, PyValue>) => PyValue;

export interface FunctionSpec {
  implementation: Implementation;
  minArgs: number;
  maxArgs: number | null;
  keywords: string[];
  takesIterables: boolean;
}

function fn(implementation: Implementation, minArgs: number, maxArgs: number | null, keywords: string[] = [], takesIterables = false): FunctionSpec {
  return { implementation, minArgs, maxArgs, keywords, takesIterables };
}

function optional(args: PyValue[], keywords: Map<string, PyValue>, index: number, name: string, fallback: PyValue): PyValue {
  if (args.length > index) {
    if (keywords.has(name)) throw new PyError("TypeError", `got two values for '${name}'`);
    return args[index]!;
  }
  return keywords.has(name) ? keywords.get(name)! : fallback;
}

function extreme(name: "max" | "min"): Implementation {
  return (ev, args, keywords) => {
    const items = args.length === 1 ? ev.collect(args[0]!) : args;
    if (keywords.has("default")) {
      if (args.length !== 1) throw new PyError("TypeError", "default= needs a single iterable argument");
      if (items.length === 0) return keywords.get("default")!;
    }
    if (items.length === 0) throw new PyError("ValueError", `${name}() arg is an empty sequence`);
    let best: PyValue = items[0] as PyValue;
    for (const item of items.slice(1)) {
      if (pyCompare(name === "max" ? "Gt" : "Lt", item, best)) best = item;
    }
    return best;
  };
}

function roundHalfEven(value: number): bigint {
  if (!Number.isFinite(value)) {
    if (Number.isNaN(value)) throw new PyError("ValueError", "cannot convert float NaN to integer");
    throw new PyError("OverflowError", "cannot convert float infinity to integer");
  }
  const floor = Math.floor(value);
  const diff = value - floor;
  let result = floor;
  if (diff > 0.5 || (diff === 0.5 && floor % 2 !== 0)) result = floor + 1;
  return BigInt(result);
}

/** round(float, digits): the double nearest the exact value rounded half-even at `digits` (CPython's answer). */
function roundFloat(value: number, digits: number): number {
  if (!Number.isFinite(value) || value === 0) return value;
  if (Math.abs(value) >= 1e21) {
    if (digits >= 0) return value;
  }
  const negative = value < 0;
  const exact = Math.abs(value) >= 1e21 ? BigInt(Math.abs(value)).toString() + "." + "0".repeat(100) : Math.abs(value).toFixed(100);
  const [intPart, fracPart] = exact.split(".") as [string, string];
  const all = intPart + fracPart;
  const position = intPart.length + digits; // digits kept: all[0:position]
  if (position < 0) return negative ? -0 : 0;
  const kept = all.slice(0, position);
  const rest = all.slice(position);
  let roundUp = false;
  if (rest.length && rest[0]! > "5") roundUp = true;
  else if (rest[0] === "5") {
    const tie = /^50*$/.test(rest);
    roundUp = !tie || (kept.length > 0 && Number(kept[kept.length - 1]) % 2 === 1);
  }
  let number = BigInt(kept || "0");
  if (roundUp) number += 1n;
  let text = number.toString();
  let result: number;
  if (digits >= 0) {
    text = text.padStart(digits + 1, "0");
    result = Number(`${text.slice(0, text.length - digits)}.${text.slice(text.length - digits) || "0"}`);
  } else {
    result = Number(text + "0".repeat(-digits));
  }
  if (!Number.isFinite(result)) throw new PyError("OverflowError", "rounded value too large to represent");
  return negative ? -result : result;
}

function round(ev: Evaluator, args: PyValue[], keywords: Map<string, PyValue>): PyValue {
  const digits = optional(args, keywords, 1, "ndigits", null);
  const value = args[0]!;
  if (digits !== null) {
    if (!isInt(digits)) throw new PyError("TypeError", `round() digits must be an integer, not ${typeName(digits)}`);
    const bound = Math.floor(ev.limits.maxIntBits / 4);
    if (asBigInt(digits) > BigInt(bound) || asBigInt(digits) < BigInt(-bound)) {
      throw ev.fail(`round() digits must be between -${bound} and ${bound}`);
    }
  }
  if (!isNumber(value)) throw new PyError("TypeError", `type ${typeName(value)} doesn't define __round__ method`);
  if (typeof value === "number") return digits === null ? roundHalfEven(value) : roundFloat(value, Number(asBigInt(digits as bigint)));
  const int = asBigInt(value);
  if (digits === null || asBigInt(digits as bigint) >= 0n) return int;
  const unit = 10n ** -asBigInt(digits as bigint);
  let q = int / unit;
  let r = int % unit;
  if (r < 0n) {
    q -= 1n;
    r += unit;
  }
  if (r * 2n > unit || (r * 2n === unit && q % 2n !== 0n)) q += 1n;
  return q * unit;
}

function reprLength(ev: Evaluator, value: PyValue): number {
  let total = 0;
  const stack: PyValue[] = [value];
  while (stack.length && total <= ev.limits.maxString) {
    const item = stack.pop()!;
    const kind = typeName(item);
    ev.tick();
    if (kind === "int") {
      const bits = bitLength(item as bigint);
      ev.requireBits(bits);
      total += Math.floor((bits * 30103) / 100_000) + 2;
    } else if (kind === "str") {
      const length = strLength(item as string);
      total += length <= ev.limits.maxString ? strLength(strRepr(item as string)) : length;
    } else if (SEQUENCE_KINDS.has(kind)) {
      total += 6 + 4 * lengthOf(item);
      if (item instanceof PyDict) stack.push(...item.keys(), ...item.values());
      else stack.push(...rawItems(item));
    } else total += pyRepr(item).length;
  }
  return total;
}

const PY_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

function parseIntText(text: string): bigint {
  const trimmed = text.replace(new RegExp(`^[${PY_WHITESPACE}]+|[${PY_WHITESPACE}]+$`, "g"), "");
  if (!/^[+-]?[0-9](_?[0-9])*$/.test(trimmed)) throw new PyError("ValueError", `invalid literal for int() with base 10: ${strRepr(text)}`);
  return BigInt(trimmed.replace(/_/g, ""));
}

function parseFloatText(text: string): number {
  const trimmed = text.replace(new RegExp(`^[${PY_WHITESPACE}]+|[${PY_WHITESPACE}]+$`, "g"), "");
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(trimmed);
  if (special) {
    const sign = special[1] === "-" ? -1 : 1;
    return special[2]!.toLowerCase() === "nan" ? NaN : sign * Infinity;
  }
  if (!/^[+-]?(([0-9](_?[0-9])*)?\.[0-9](_?[0-9])*|[0-9](_?[0-9])*\.?)([eE][+-]?[0-9](_?[0-9])*)?$/.test(trimmed)) {
    throw new PyError("ValueError", `could not convert string to float: ${strRepr(text)}`);
  }
  return Number(trimmed.replace(/_/g, ""));
}

function numberFunction(name: "int" | "float"): Implementation {
  return (ev, args) => {
    if (!args.length) return name === "int" ? 0n : 0;
    const value = args[0]!;
    if (!isNumber(value) && typeof value !== "string") {
      throw new PyError("TypeError", `${name}() takes a number or text, not ${typeName(value)}`);
    }
    const limit = Math.floor(ev.limits.maxIntBits / 3) + 64;
    if (typeof value === "string" && strLength(value) > limit) {
      throw ev.fail(`text is too long to convert with ${name}(): ${strLength(value)} characters (limit ${limit})`);
    }
    if (name === "float") return ev.produced(typeof value === "string" ? parseFloatText(value) : toFloat(value));
    if (typeof value === "string") return ev.produced(parseIntText(value));
    if (typeof value === "number") {
      if (Number.isNaN(value)) throw new PyError("ValueError", "cannot convert float NaN to integer");
      if (!Number.isFinite(value)) throw new PyError("OverflowError", "cannot convert float infinity to integer");
      return ev.produced(BigInt(Math.trunc(value)));
    }
    return ev.produced(asBigInt(value));
  };
}

function dictFunction(ev: Evaluator, args: PyValue[]): PyValue {
  const result = new PyDict();
  if (!args.length) return result;
  const source = args[0]!;
  if (source instanceof PyDict) {
    ev.charge(source.size);
    for (const [key, value] of source.items()) result.set(key, value);
    return result;
  }
  for (const pair of ev.collect(source)) {
    const items = Array.isArray(pair) || pair instanceof PyTuple ? sequenceItems(pair)! : null;
    if (items === null || items.length !== 2) throw new PyError("TypeError", "dict() takes (key, value) pairs");
    result.set(items[0]!, items[1]!);
  }
  return result;
}

function rangeFunction(ev: Evaluator, args: PyValue[]): PyValue {
  if (args.some((arg) => !isInt(arg))) throw new PyError("TypeError", "range() takes integers");
  const numbers = args.map((arg) => asBigInt(arg as bigint));
  const [start, stop, step] = numbers.length === 1 ? [0n, numbers[0]!, 1n] : [numbers[0]!, numbers[1]!, numbers[2] ?? 1n];
  if (step === 0n) throw new PyError("ValueError", "range() arg 3 must not be zero");
  const range = new PyRange(start, stop, step);
  const length = range.length;
  ev.requireLength(length > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(length), "range");
  return range;
}

export function join(ev: Evaluator, separator: string, args: PyValue[]): string {
  if (args.length !== 1) throw new PyError("TypeError", `join() takes exactly one argument (${args.length} given)`);
  const parts = ev.collect(args[0]!);
  const length =
    parts.reduce<number>((sum, part) => sum + (typeof part === "string" ? strLength(part) : 0), 0) +
    strLength(separator) * Math.max(parts.length - 1, 0);
  ev.requireLength(length, "text");
  parts.forEach((part, index) => {
    if (typeof part !== "string") throw new PyError("TypeError", `sequence item ${index}: expected str instance, ${typeName(part)} found`);
  });
  return ev.produced((parts as string[]).join(separator)) as string;
}

function countOf(text: string, sub: string): number {
  if (sub === "") return strLength(text) + 1;
  let count = 0;
  for (let at = text.indexOf(sub); at !== -1; at = text.indexOf(sub, at + sub.length)) count++;
  return count;
}

export function checkReplace(ev: Evaluator, text: string, args: PyValue[]): void {
  if (args.length < 2 || typeof args[0] !== "string" || typeof args[1] !== "string") return;
  let count = countOf(text, args[0]);
  if (args.length > 2 && typeof args[2] === "bigint" && args[2] >= 0n) count = Math.min(count, Number(args[2]));
  const length = strLength(text) + count * (strLength(args[1]) - strLength(args[0]));
  if (length > Math.max(strLength(text), ev.limits.maxString)) ev.requireLength(length, "text");
}

export const FUNCTIONS: Record<string, FunctionSpec> = {
  abs: fn((ev, args) => {
    const value = args[0]!;
    if (!isNumber(value)) throw new PyError("TypeError", `bad operand type for abs(): '${typeName(value)}'`);
    if (typeof value === "number") return Math.abs(value);
    const int = asBigInt(value);
    return int < 0n ? -int : int;
  }, 1, 1),
  all: fn((ev, args) => {
    for (const item of ev.iterate(args[0]!)) if (!truthy(item)) return false;
    return true;
  }, 1, 1, [], true),
  any: fn((ev, args) => {
    for (const item of ev.iterate(args[0]!)) if (truthy(item)) return true;
    return false;
  }, 1, 1, [], true),
  bool: fn((ev, args) => (args.length ? truthy(args[0]!) : false), 0, 1),
  dict: fn(dictFunction, 0, 1, [], true),
  enumerate: fn((ev, args, keywords) => {
    const start = optional(args, keywords, 1, "start", 0n);
    if (!isInt(start)) throw new PyError("TypeError", "enumerate() start must be an integer");
    return ev.collect(args[0]!).map((item, i) => new PyTuple([asBigInt(start) + BigInt(i), item]));
  }, 1, 2, ["start"], true),
  float: fn(numberFunction("float"), 0, 1),
  int: fn(numberFunction("int"), 0, 1),
  len: fn((ev, args) => BigInt(lengthOf(args[0]!)), 1, 1),
  list: fn((ev, args) => (args.length ? ev.collect(args[0]!) : []), 0, 1, [], true),
  max: fn(extreme("max"), 1, null, ["default"], true),
  min: fn(extreme("min"), 1, null, ["default"], true),
  range: fn(rangeFunction, 1, 3),
  reversed: fn((ev, args) => ev.collect(args[0]!).reverse(), 1, 1),
  round: fn(round, 1, 2, ["ndigits"]),
  set: fn((ev, args) => new PySet(args.length ? ev.collect(args[0]!) : []), 0, 1, [], true),
  sorted: fn((ev, args, keywords) => {
    const items = ev.collect(args[0]!);
    ev.charge(items.length);
    return pySort(items, truthy(keywords.get("reverse") ?? false));
  }, 1, 1, ["reverse"], true),
  str: fn((ev, args) => {
    if (!args.length) return "";
    const value = args[0]!;
    if (typeof value === "string") return value;
    ev.requireLength(reprLength(ev, value), "text");
    return pyStr(value);
  }, 0, 1),
  sum: fn((ev, args, keywords) => {
    let total = optional(args, keywords, 1, "start", 0n);
    if (typeof total === "string") throw new PyError("TypeError", "sum() cannot add text: use ''.join(...)");
    for (const item of ev.iterate(args[0]!)) total = ev.arithmetic("Add", total, item);
    return total;
  }, 1, 2, ["start"], true),
  tuple: fn((ev, args) => new PyTuple(args.length ? ev.collect(args[0]!) : []), 0, 1, [], true),
  zip: fn((ev, args) => {
    const lists = args.map((arg) => ev.collect(arg));
    const length = lists.length ? Math.min(...lists.map((l) => l.length)) : 0;
    return Array.from({ length }, (_, i) => new PyTuple(lists.map((l) => l[i]!)));
  }, 0, null, [], true),
};

const STRING_METHODS = "lower upper strip lstrip rstrip startswith endswith split join replace count find title capitalize isdigit isalpha isalnum isspace islower isupper".split(" ");
export const METHODS: Record<string, ReadonlySet<string>> = {
  str: new Set(STRING_METHODS),
  list: new Set(["count", "index"]),
  tuple: new Set(["count", "index"]),
  dict: new Set(["get", "keys", "values", "items"]),
};
export const ALL_METHODS = new Set(Object.values(METHODS).flatMap((names) => [...names]));
export const METHODS_HINT =
  "allowed methods: " +
  Object.entries(METHODS)
    .map(([kind, names]) => `${kind}: ${[...names].sort().join(", ")}`)
    .join("; ");

function stripChars(text: string, chars: PyValue, left: boolean, right: boolean, name: string): string {
  if (chars !== null && typeof chars !== "string") throw new PyError("TypeError", `${name} arg must be None or str`);
  const set = new Set(chars === null ? PY_WHITESPACE : chars);
  const points = [...text];
  let start = 0;
  let end = points.length;
  while (left && start < end && set.has(points[start]!)) start++;
  while (right && end > start && set.has(points[end - 1]!)) end--;
  return points.slice(start, end).join("");
}

function sliceArgs(text: string, args: PyValue[], from: number): string {
  if (args.length <= from) return text;
  const bounds = [args[from] ?? null, args[from + 1] ?? null].map((b) => {
    if (b !== null && !isInt(b)) throw new PyError("TypeError", "slice indices must be integers or None or have an __index__ method");
    return b as bigint | boolean | null;
  });
  return sliceValue(text, [bounds[0]!, bounds[1]!, null]) as string;
}

function affixes(value: PyValue, name: string): string[] {
  if (typeof value === "string") return [value];
  if (value instanceof PyTuple && value.items.every((item) => typeof item === "string")) return value.items as string[];
  throw new PyError("TypeError", `${name} first arg must be str or a tuple of str, not ${typeName(value)}`);
}

function split(text: string, sep: PyValue, maxsplit: PyValue): PyValue[] {
  let limit = maxsplit === null ? -1 : Number(asBigInt(maxsplit as bigint));
  if (sep === null) {
    const out: string[] = [];
    const points = [...text];
    const ws = new Set(PY_WHITESPACE);
    let i = 0;
    while (i < points.length) {
      while (i < points.length && ws.has(points[i]!)) i++;
      if (i >= points.length) break;
      if (limit === 0) {
        let end = points.length;
        while (end > i && ws.has(points[end - 1]!)) end--;
        out.push(points.slice(i, end).join(""));
        break;
      }
      let j = i;
      while (j < points.length && !ws.has(points[j]!)) j++;
      out.push(points.slice(i, j).join(""));
      i = j;
      if (limit > 0) limit--;
    }
    return out;
  }
  if (typeof sep !== "string") throw new PyError("TypeError", `must be str or None, not ${typeName(sep)}`);
  if (sep === "") throw new PyError("ValueError", "empty separator");
  const out: string[] = [];
  let rest = text;
  while (limit !== 0) {
    const at = rest.indexOf(sep);
    if (at === -1) break;
    out.push(rest.slice(0, at));
    rest = rest.slice(at + sep.length);
    if (limit > 0) limit--;
  }
  out.push(rest);
  return out;
}

function cased(text: string): string[] {
  return [...text].filter((ch) => ch.toLowerCase() !== ch.toUpperCase());
}

function requireString(value: PyValue | undefined, what: string): string {
  if (typeof value !== "string") throw new PyError("TypeError", `${what} must be str, not ${typeName(value ?? null)}`);
  return value;
}

function argumentCount(name: string, args: PyValue[], min: number, max: number): void {
  if (args.length < min || args.length > max) {
    const expected = min === max ? (min === 0 ? "no arguments" : `exactly ${min} argument${min === 1 ? "" : "s"}`) : `at most ${max} arguments`;
    throw new PyError("TypeError", `${name}() takes ${expected} (${args.length} given)`);
  }
}

export function callMethod(receiver: PyValue, name: string, args: PyValue[]): PyValue {
  if (typeof receiver === "string") {
    const text = receiver;
    switch (name) {
      case "lower":
      case "upper":
      case "title":
      case "capitalize":
      case "isdigit":
      case "isalpha":
      case "isalnum":
      case "isspace":
      case "islower":
      case "isupper":
        argumentCount(name, args, 0, 0);
        break;
    }
    switch (name) {
      case "lower":
        return text.toLowerCase();
      case "upper":
        return text.toUpperCase();
      case "strip":
      case "lstrip":
      case "rstrip":
        argumentCount(name, args, 0, 1);
        return stripChars(text, args[0] ?? null, name !== "rstrip", name !== "lstrip", name);
      case "startswith":
      case "endswith": {
        argumentCount(name, args, 1, 3);
        const part = sliceArgs(text, args, 1);
        return affixes(args[0]!, name).some((affix) => (name === "startswith" ? part.startsWith(affix) : part.endsWith(affix)));
      }
      case "split":
        argumentCount(name, args, 0, 2);
        return split(text, args[0] ?? null, args[1] ?? null);
      case "replace": {
        argumentCount(name, args, 2, 3);
        const old = requireString(args[0], "replace() argument 1");
        const replacement = requireString(args[1], "replace() argument 2");
        let count = args[2] === undefined ? -1 : Number(asBigInt(args[2] as bigint));
        if (old === "") {
          const points = [...text];
          let out = "";
          for (let i = 0; i <= points.length; i++) {
            if (count !== 0) {
              out += replacement;
              count--;
            }
            if (i < points.length) out += points[i];
          }
          return out;
        }
        let out = "";
        let rest = text;
        while (count !== 0) {
          const at = rest.indexOf(old);
          if (at === -1) break;
          out += rest.slice(0, at) + replacement;
          rest = rest.slice(at + old.length);
          count--;
        }
        return out + rest;
      }
      case "count":
        argumentCount(name, args, 1, 3);
        return BigInt(countOf(sliceArgs(text, args, 1), requireString(args[0], "must be str, not")));
      case "find": {
        argumentCount(name, args, 1, 3);
        const sub = requireString(args[0], "must be str, not");
        const offset = args.length > 1 ? [...text].length - [...sliceArgs(text, [null, args[1]!], 1)].length : 0;
        const part = sliceArgs(text, args, 1);
        const at = part.indexOf(sub);
        return at === -1 ? -1n : BigInt(strLength(part.slice(0, at)) + offset);
      }
      case "title":
        return text.replace(/\p{L}+/gu, (word) => word[0]!.toUpperCase() + word.slice(1).toLowerCase());
      case "capitalize": {
        const points = [...text];
        return points.length ? points[0]!.toUpperCase() + points.slice(1).join("").toLowerCase() : "";
      }
      case "isdigit":
        return /^\p{Nd}+$/u.test(text);
      case "isalpha":
        return /^\p{L}+$/u.test(text);
      case "isalnum":
        return /^[\p{L}\p{N}]+$/u.test(text);
      case "isspace":
        return text.length > 0 && [...text].every((ch) => PY_WHITESPACE.includes(ch));
      case "islower": {
        const letters = cased(text);
        return letters.length > 0 && letters.every((ch) => ch === ch.toLowerCase());
      }
      case "isupper": {
        const letters = cased(text);
        return letters.length > 0 && letters.every((ch) => ch === ch.toUpperCase());
      }
    }
  }
  if (Array.isArray(receiver) || receiver instanceof PyTuple) {
    const items = sequenceItems(receiver)!;
    argumentCount(name, args, 1, 1);
    if (name === "count") return BigInt(items.filter((item) => pyEquals(item, args[0]!)).length);
    const index = items.findIndex((item) => pyEquals(item, args[0]!));
    if (index === -1) {
      throw new PyError("ValueError", Array.isArray(receiver) ? `${pyRepr(args[0]!)} is not in list` : "tuple.index(x): x not in tuple");
    }
    return BigInt(index);
  }
  const dict = receiver as PyDict;
  switch (name) {
    case "get": {
      argumentCount(name, args, 1, 2);
      const value = dict.get(args[0]!);
      return value === undefined ? ((args[1] ?? null) as PyValue) : value;
    }
    case "keys":
      argumentCount(name, args, 0, 0);
      return dict.keys();
    case "values":
      argumentCount(name, args, 0, 0);
      return dict.values();
    default:
      argumentCount(name, args, 0, 0);
      return dict.items().map(([key, value]) => new PyTuple([key, value]));
  }
}

