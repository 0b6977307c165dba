/**
 * Python values in TypeScript, as the sandbox sees them: `None` is null, `bool` is boolean, `int` is bigint,
 * `float` is number, `str` is string, `list` is an array, and tuple, set, dict and range are small classes.
 * Equality, ordering, hashing (dict keys and set members), truthiness, `repr` and `str` follow CPython.
 */

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

export class PyRange {
  constructor(
    readonly start: bigint,
    readonly stop: bigint,
    readonly step: bigint,
  ) {}

  get length(): bigint {
    const { start, stop, step } = this;
    if (step > 0n) return stop > start ? (stop - start + step - 1n) / step : 0n;
    return start > stop ? (start - stop - step - 1n) / -step : 0n;
  }

  at(index: bigint): bigint {
    return this.start + index * this.step;
  }

  *[Symbol.iterator](): Generator<bigint> {
    const length = this.length;
    for (let i = 0n; i < length; i++) yield this.at(i);
  }
}

export class PyDict {
  private readonly entries = new Map<string, [PyValue, PyValue]>();

  get size(): number {
    return this.entries.size;
  }

  get(key: PyValue): PyValue | undefined {
    return this.entries.get(hashKey(key))?.[1];
  }

  has(key: PyValue): boolean {
    return this.entries.has(hashKey(key));
  }

  set(key: PyValue, value: PyValue): void {
    const hash = hashKey(key);
    const existing = this.entries.get(hash);
    if (existing) existing[1] = value;
    else this.entries.set(hash, [key, value]);
  }

  keys(): PyValue[] {
    return [...this.entries.values()].map(([key]) => key);
  }

  values(): PyValue[] {
    return [...this.entries.values()].map(([, value]) => value);
  }

  items(): [PyValue, PyValue][] {
    return [...this.entries.values()];
  }
}

export class PySet {
  private readonly members = new Map<string, PyValue>();

  constructor(items: Iterable<PyValue> = []) {
    for (const item of items) this.add(item);
  }

  get size(): number {
    return this.members.size;
  }

  add(item: PyValue): void {
    const hash = hashKey(item);
    if (!this.members.has(hash)) this.members.set(hash, item);
  }

  has(item: PyValue): boolean {
    return this.members.has(hashKey(item));
  }

  values(): PyValue[] {
    return [...this.members.values()];
  }
}

/** A lazy generator expression's values (only passed to functions that take iterables). */
export class PyGenerator {
  constructor(readonly iterator: Iterator<PyValue>) {}
}

export type PyValue = null | boolean | bigint | number | string | PyValue[] | PyTuple | PySet | PyDict | PyRange | PyGenerator;

/** A Python exception raised by an allowed operation on bad values; the evaluator words it like the sandbox. */
export class PyError extends Error {
  constructor(
    readonly type: "TypeError" | "ValueError" | "ZeroDivisionError" | "OverflowError" | "IndexError" | "KeyError",
    message: string,
  ) {
    super(message);
  }
}

export function typeName(value: PyValue): string {
  if (value === null) return "NoneType";
  switch (typeof value) {
    case "boolean":
      return "bool";
    case "bigint":
      return "int";
    case "number":
      return "float";
    case "string":
      return "str";
  }
  if (Array.isArray(value)) return "list";
  if (value instanceof PyTuple) return "tuple";
  if (value instanceof PySet) return "set";
  if (value instanceof PyDict) return "dict";
  if (value instanceof PyRange) return "range";
  return "generator";
}

export function isInt(value: PyValue): value is bigint | boolean {
  return typeof value === "bigint" || typeof value === "boolean";
}

export function isNumber(value: PyValue): value is bigint | boolean | number {
  return typeof value === "bigint" || typeof value === "boolean" || typeof value === "number";
}

export function asBigInt(value: bigint | boolean): bigint {
  return typeof value === "boolean" ? (value ? 1n : 0n) : value;
}

export function toFloat(value: bigint | boolean | number): number {
  if (typeof value === "number") return value;
  const number = Number(asBigInt(value));
  if (!Number.isFinite(number)) throw new PyError("OverflowError", "int too large to convert to float");
  return number;
}

export function bitLength(value: bigint): number {
  const magnitude = value < 0n ? -value : value;
  return magnitude === 0n ? 0 : magnitude.toString(2).length;
}

/** The key a dict or set files a value under: equal values (1, 1.0, True) share one. */
export function hashKey(value: PyValue): string {
  if (value === null) return "N";
  switch (typeof value) {
    case "boolean":
      return value ? "i1" : "i0";
    case "bigint":
      return `i${value}`;
    case "number":
      return Number.isInteger(value) ? `i${BigInt(value)}` : `f${value}`;
    case "string":
      return `s${value}`;
  }
  if (value instanceof PyTuple) return `t${JSON.stringify(value.items.map(hashKey))}`;
  if (value instanceof PyRange) return `r${value.start},${value.stop},${value.step}`;
  throw new PyError("TypeError", `unhashable type: '${typeName(value)}'`);
}

export function truthy(value: PyValue): boolean {
  if (value === null) return false;
  switch (typeof value) {
    case "boolean":
      return value;
    case "bigint":
      return value !== 0n;
    case "number":
      return value !== 0;
    case "string":
      return value.length > 0;
  }
  if (Array.isArray(value)) return value.length > 0;
  if (value instanceof PyTuple) return value.items.length > 0;
  if (value instanceof PySet || value instanceof PyDict) return value.size > 0;
  if (value instanceof PyRange) return value.length > 0n;
  return true;
}

/** The items of a sequence-like value, as Python would iterate them. */
export function sequenceItems(value: PyValue): PyValue[] | null {
  if (Array.isArray(value)) return value;
  if (value instanceof PyTuple) return value.items;
  if (value instanceof PyRange) return [...value];
  return null;
}

export function pyEquals(a: PyValue, b: PyValue): boolean {
  if (isNumber(a) && isNumber(b)) return compareNumbers(a, b) === 0;
  if (typeof a === "string" || typeof b === "string") return a === b;
  if (a === null || b === null) return a === b;
  if (Array.isArray(a) && Array.isArray(b)) return sameItems(a, b);
  if (a instanceof PyTuple && b instanceof PyTuple) return sameItems(a.items, b.items);
  if (a instanceof PyRange && b instanceof PyRange) return sameItems([...a], [...b]);
  if (a instanceof PyDict && b instanceof PyDict) {
    if (a.size !== b.size) return false;
    return a.items().every(([key, value]) => b.has(key) && pyEquals(value, b.get(key)!));
  }
  if (a instanceof PySet && b instanceof PySet) return a.size === b.size && a.values().every((item) => b.has(item));
  return a === b;
}

function sameItems(a: PyValue[], b: PyValue[]): boolean {
  return a.length === b.length && a.every((item, index) => item === b[index] || pyEquals(item, b[index]!));
}

/** -1, 0, 1, or NaN when unordered (a NaN operand). */
function compareNumbers(a: bigint | boolean | number, b: bigint | boolean | number): number {
  if (typeof a !== "number" && typeof b !== "number") {
    const x = asBigInt(a);
    const y = asBigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (typeof a === "number" && typeof b === "number") return a < b ? -1 : a > b ? 1 : a === b ? 0 : NaN;
  // an int against a float: exact, as Python compares them
  const [int, float, sign] = typeof a === "number" ? [asBigInt(b as bigint | boolean), a, -1] : [asBigInt(a), b as number, 1];
  if (Number.isNaN(float)) return NaN;
  if (float === Infinity) return -sign;
  if (float === -Infinity) return sign;
  const floor = BigInt(Math.floor(float));
  let result: number;
  if (int < floor) result = -1;
  else if (int > floor) result = 1;
  else result = Number.isInteger(float) ? 0 : -1;
  return result * sign;
}

const SYMBOLS = { Lt: "<", LtE: "<=", Gt: ">", GtE: ">=" } as const;

/** Python's `<`, `<=`, `>`, `>=`; a TypeError for values that have no order between them. */
export function pyCompare(op: keyof typeof SYMBOLS, a: PyValue, b: PyValue): boolean {
  const order = ordering(a, b);
  if (order === undefined) {
    throw new PyError("TypeError", `'${SYMBOLS[op]}' not supported between instances of '${typeName(a)}' and '${typeName(b)}'`);
  }
  if (Number.isNaN(order)) return false;
  switch (op) {
    case "Lt":
      return order < 0;
    case "LtE":
      return order <= 0;
    case "Gt":
      return order > 0;
    case "GtE":
      return order >= 0;
  }
}

function ordering(a: PyValue, b: PyValue): number | undefined {
  if (isNumber(a) && isNumber(b)) return compareNumbers(a, b);
  if (typeof a === "string" && typeof b === "string") return compareStrings(a, b);
  const bothLists = Array.isArray(a) && Array.isArray(b);
  const bothTuples = a instanceof PyTuple && b instanceof PyTuple;
  if (bothLists || bothTuples) {
    const x = bothLists ? (a as PyValue[]) : (a as PyTuple).items;
    const y = bothLists ? (b as PyValue[]) : (b as PyTuple).items;
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      if (!pyEquals(x[i]!, y[i]!)) {
        if (pyCompare("Lt", x[i]!, y[i]!)) return -1;
        return 1;
      }
    }
    return x.length - y.length;
  }
  if (a instanceof PySet && b instanceof PySet) {
    const aInB = a.values().every((item) => b.has(item));
    const bInA = b.values().every((item) => a.has(item));
    if (aInB && bInA) return 0;
    if (aInB) return -1;
    if (bInA) return 1;
    return NaN;
  }
  return undefined;
}

/** Strings compare by code point, as in Python (not by UTF-16 unit). */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]!.codePointAt(0)! < y[i]!.codePointAt(0)! ? -1 : 1;
  }
  return x.length - y.length;
}

/** Python's sort order for `sorted` and `min`/`max`: stable, with a TypeError for unordered values. */
export function pySort(items: PyValue[], reverse = false): PyValue[] {
  const sorted = [...items];
  sorted.sort((a, b) => {
    if (pyCompare("Lt", reverse ? a : b, reverse ? b : a)) return 1;
    if (pyCompare("Lt", reverse ? b : a, reverse ? a : b)) return -1;
    return 0;
  });
  return sorted;
}

export function hasAstral(text: string): boolean {
  return /[\uD800-\uDFFF]/.test(text);
}

/** `len(text)` in code points, as Python counts. */
export function strLength(text: string): number {
  return hasAstral(text) ? [...text].length : text.length;
}

// -- repr and str ---------------------------------------------------------------------------------------------------

/** Python's `repr(float)`: the shortest digits that round-trip, in Python's layout (`1.0`, `1e-05`, `1e+16`). */
export function floatRepr(value: number): string {
  if (Number.isNaN(value)) return "nan";
  if (value === Infinity) return "inf";
  if (value === -Infinity) return "-inf";
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const [mantissa, exponentText] = value.toExponential().split("e") as [string, string];
  const exponent = Number(exponentText);
  const negative = mantissa.startsWith("-");
  const digits = mantissa.replace("-", "").replace(".", "");
  let text: string;
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      text = `0.${"0".repeat(-exponent - 1)}${digits}`;
    } else if (digits.length <= exponent + 1) {
      text = `${digits}${"0".repeat(exponent + 1 - digits.length)}.0`;
    } else {
      text = `${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
    }
  } else {
    const sign = exponent < 0 ? "-" : "+";
    const magnitude = String(Math.abs(exponent)).padStart(2, "0");
    text = `${digits[0]}${digits.length > 1 ? "." + digits.slice(1) : ""}e${sign}${magnitude}`;
  }
  return negative ? `-${text}` : text;
}

/** Python's `repr(str)`. */
export function strRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
    else if ((code >= 0x80 && code < 0xa0) || code === 0xad) out += "\\x" + code.toString(16).padStart(2, "0");
    else if (/[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u.test(ch) || (/\p{Zs}/u.test(ch) && ch !== " ")) {
      out += code <= 0xffff ? "\\u" + code.toString(16).padStart(4, "0") : "\\U" + code.toString(16).padStart(8, "0");
    } else out += ch;
  }
  return out + quote;
}

/** Python's `repr(value)`. */
export function pyRepr(value: PyValue): string {
  if (value === null) return "None";
  switch (typeof value) {
    case "boolean":
      return value ? "True" : "False";
    case "bigint":
      return value.toString();
    case "number":
      return floatRepr(value);
    case "string":
      return strRepr(value);
  }
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(", ")}]`;
  if (value instanceof PyTuple) {
    return value.items.length === 1 ? `(${pyRepr(value.items[0]!)},)` : `(${value.items.map(pyRepr).join(", ")})`;
  }
  if (value instanceof PySet) return value.size === 0 ? "set()" : `{${value.values().map(pyRepr).join(", ")}}`;
  if (value instanceof PyDict) return `{${value.items().map(([k, v]) => `${pyRepr(k)}: ${pyRepr(v)}`).join(", ")}}`;
  if (value instanceof PyRange) {
    return value.step === 1n ? `range(${value.start}, ${value.stop})` : `range(${value.start}, ${value.stop}, ${value.step})`;
  }
  return "<generator object <genexpr>>";
}

/** Python's `str(value)`. */
export function pyStr(value: PyValue): string {
  return typeof value === "string" ? value : pyRepr(value);
}

function slicePoints(text: string, start: number, end?: number): string {
  return hasAstral(text) ? [...text].slice(start, end).join("") : text.slice(start, end);
}

function shorten(text: string, limit: number): string {
  if (strLength(text) <= limit) return text;
  const i = Math.max(0, Math.floor((limit - 3) / 2));
  const j = Math.max(0, limit - 3 - i);
  const length = strLength(text);
  return slicePoints(text, 0, i) + "..." + slicePoints(text, length - j);
}

function possiblySorted(items: PyValue[]): PyValue[] {
  try {
    return pySort(items);
  } catch {
    return items;
  }
}

/**
 * `reprlib.Repr` with `maxstring = maxother = 80`, as the sandbox shows actual values in violations:
 * strings, numbers and nested containers cut short the same way CPython cuts them.
 */
export function shortRepr(value: PyValue, level = 6): string {
  const maxString = 80;
  const maxOther = 80;
  if (typeof value === "string") {
    const length = strLength(value);
    let s = strRepr(slicePoints(value, 0, maxString));
    if (strLength(s) > maxString) {
      const i = Math.max(0, Math.floor((maxString - 3) / 2));
      const j = Math.max(0, maxString - 3 - i);
      s = strRepr(slicePoints(value, 0, i) + slicePoints(value, length - j));
      const sLength = strLength(s);
      s = slicePoints(s, 0, i) + "..." + slicePoints(s, sLength - j);
    }
    return s;
  }
  if (typeof value === "bigint") {
    const s = value.toString();
    if (s.length > 40) return s.slice(0, 18) + "..." + s.slice(s.length - 19);
    return s;
  }
  const iterable = (items: PyValue[], left: string, right: string, max: number, trail = ""): string => {
    const n = items.length;
    if (level <= 0 && n) return `${left}...${right}`;
    const pieces = items.slice(0, max).map((item) => shortRepr(item, level - 1));
    if (n > max) pieces.push("...");
    return `${left}${pieces.join(", ")}${n === 1 && trail ? trail + right : right}`;
  };
  if (Array.isArray(value)) return iterable(value, "[", "]", 6);
  if (value instanceof PyTuple) return iterable(value.items, "(", ")", 6, ",");
  if (value instanceof PySet) return value.size === 0 ? "set()" : iterable(possiblySorted(value.values()), "{", "}", 6);
  if (value instanceof PyDict) {
    if (value.size === 0) return "{}";
    if (level <= 0) return "{...}";
    const keys = possiblySorted(value.keys()).slice(0, 4);
    const pieces = keys.map((key) => `${shortRepr(key, level - 1)}: ${shortRepr(value.get(key)!, level - 1)}`);
    if (value.size > 4) pieces.push("...");
    return `{${pieces.join(", ")}}`;
  }
  return shorten(pyRepr(value), maxOther);
}

// -- JSON <-> Python values -----------------------------------------------------------------------------------------

/** A JSON-like value as the sandbox reads it: whole numbers are ints, others floats, objects are dicts. */
export function fromJson(value: unknown, depth = 0): PyValue {
  if (depth > 100) throw new PyError("ValueError", "is nested more than 100 levels deep");
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case "boolean":
    case "string":
    case "bigint":
      return value;
    case "number":
      return Number.isSafeInteger(value) ? BigInt(value) : value;
  }
  if (Array.isArray(value)) return value.map((item) => fromJson(item, depth + 1));
  if (value instanceof PyTuple || value instanceof PyDict || value instanceof PySet || value instanceof PyRange) return value;
  if (typeof value === "object") {
    const dict = new PyDict();
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) dict.set(key, fromJson(item, depth + 1));
    return dict;
  }
  throw new PyError("TypeError", `holds a ${typeof value}; expressions read only objects, arrays, strings, numbers, booleans and null`);
}

/** A Python value as JSON: ints and floats become numbers, tuples, sets and ranges lists, dict keys strings. */
export function toJson(value: PyValue): unknown {
  if (value === null || typeof value === "boolean" || typeof value === "string" || typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (Array.isArray(value)) return value.map(toJson);
  if (value instanceof PyTuple) return value.items.map(toJson);
  if (value instanceof PySet) return value.values().map(toJson);
  if (value instanceof PyRange) return [...value].map(toJson);
  if (value instanceof PyDict) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of value.items()) out[typeof key === "string" ? key : pyStr(key)] = toJson(item);
    return out;
  }
  return null;
}
