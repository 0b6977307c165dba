/**
 * Evaluation with bounds (Python's `stratum_core/expressions/_evaluation.py`): a tree-walking interpreter over Python
 * values that counts steps, watches the clock and refuses, before building it, any value past a size limit.
 */

import { callMethod, checkReplace, FUNCTIONS, join, METHODS } from "./builtins.js";
import { closeMatch } from "./difflib.js";
import { ExpressionError } from "./errors.js";
import type { Expression } from "./expression.js";
import type { BinaryOperator, Node, NodeOf } from "./parse.js";
import { CLOCK_EVERY, ITEMS_PER_STEP, type Limits } from "./syntax.js";
import {
  asBigInt,
  bitLength,
  floatRepr,
  fromJson,
  hasAstral,
  isInt,
  isNumber,
  pyCompare,
  PyDict,
  pyEquals,
  PyError,
  PyGenerator,
  PyRange,
  pyRepr,
  PySet,
  PyTuple,
  type PyValue,
  sequenceItems,
  strLength,
  strRepr,
  toFloat,
  truthy,
  typeName,
} from "./values.js";

// --- evaluation -----------------------------------------------------------------------------------------------------

export type Scope = Map<string, PyValue>;

export function article(value: PyValue): string {
  if (value === null) return "None";
  const name = typeName(value);
  return `${"aeiou".includes(name[0]!) ? "an" : "a"} ${name}`;
}

function listing(names: string[], wanted: unknown): string {
  const shown = names.length ? names.slice(0, 20).join(", ") + (names.length > 20 ? ", ..." : "") : "none";
  const close = typeof wanted === "string" ? closeMatch(wanted, names) : undefined;
  return close !== undefined ? `${shown}; did you mean ${strRepr(close)}?` : shown;
}

function pythonFailure(error: PyError, source: string): string {
  if (error.type === "ZeroDivisionError") return `division by zero in ${source}`;
  const kinds: Record<string, string> = {
    OverflowError: "number too large",
    IndexError: "index out of range",
    KeyError: "missing key",
    TypeError: "type error",
  };
  return `${kinds[error.type] ?? "invalid value"} in ${source}: ${error.message}`;
}

export function lengthOf(value: PyValue): number {
  if (typeof value === "string") return strLength(value);
  if (Array.isArray(value)) return value.length;
  if (value instanceof PyTuple) return value.items.length;
  if (value instanceof PySet || value instanceof PyDict) return value.size;
  if (value instanceof PyRange) return Number(value.length);
  throw new PyError("TypeError", `object of type '${typeName(value)}' has no len()`);
}

const ITERABLE = new Set(["str", "list", "tuple", "dict", "set", "range", "generator"]);
export const SEQUENCE_KINDS = new Set(["list", "tuple", "dict", "set"]);

export class Evaluator {
  private readonly inputs = new Map<string, PyValue>();
  private steps = 0;
  private nextClock = CLOCK_EVERY;
  private readonly deadline: number;

  constructor(
    private readonly expression: Expression,
    private readonly env: Record<string, unknown>,
    readonly limits: Limits,
  ) {
    this.deadline = performance.now() + limits.maxSeconds * 1000;
  }

  run(node: Node): PyValue {
    try {
      return this.eval(node, new Map());
    } catch (error) {
      if (error instanceof RangeError && /call stack/i.test(error.message)) {
        throw this.fail("expression is nested too deeply to evaluate");
      }
      throw error;
    }
  }

  fail(message: string): ExpressionError {
    return new ExpressionError(message, this.expression.text);
  }

  source(node: Node): string {
    return this.expression.segment(node);
  }

  // budgets

  tick(cost = 1): void {
    this.steps += cost;
    if (this.steps > this.limits.maxSteps) throw this.fail(`evaluation took too many steps (limit ${this.limits.maxSteps})`);
    if (this.steps >= this.nextClock) {
      this.nextClock = this.steps + CLOCK_EVERY;
      if (performance.now() > this.deadline) {
        throw this.fail(`evaluation took too long (limit ${floatRepr(this.limits.maxSeconds)} s)`);
      }
    }
  }

  charge(size: number): void {
    if (size >= ITEMS_PER_STEP) this.tick(Math.floor(size / ITEMS_PER_STEP));
  }

  requireLength(length: number, kind: string): void {
    const [limit, unit] = kind === "text" ? [this.limits.maxString, "characters"] : [this.limits.maxSequence, "items"];
    if (length > limit) throw this.fail(`${kind} is too long: ${length} ${unit} (limit ${limit})`);
  }

  requireBits(bits: number, estimate = false): void {
    if (bits > this.limits.maxIntBits) {
      const size = estimate ? `at least ${bits}` : String(bits);
      throw this.fail(`integer is too large: ${size} bits (limit ${this.limits.maxIntBits})`);
    }
  }

  produced(value: PyValue): PyValue {
    const kind = typeName(value);
    if (kind === "str" || SEQUENCE_KINDS.has(kind)) {
      const length = lengthOf(value);
      this.requireLength(length, kind === "str" ? "text" : kind);
      this.charge(length);
    } else if (kind === "int") {
      this.requireBits(bitLength(value as bigint));
    }
    return value;
  }

  // iteration

  iterable(value: PyValue): PyValue {
    if (!ITERABLE.has(typeName(value))) throw this.fail(`cannot iterate over ${article(value)}`);
    return value;
  }

  *iterate(value: PyValue): Generator<PyValue> {
    for (const item of rawItems(this.iterable(value))) {
      this.tick();
      yield item;
    }
  }

  bounded(items: Iterable<PyValue>, kind = "list"): PyValue[] {
    const result: PyValue[] = [];
    for (const item of items) {
      result.push(item);
      if (result.length > this.limits.maxSequence) {
        throw this.fail(`${kind} is too long: over the limit of ${this.limits.maxSequence} items`);
      }
    }
    return result;
  }

  collect(value: PyValue): PyValue[] {
    if (value instanceof PyGenerator) return this.bounded(rawItems(value));
    this.charge(lengthOf(this.iterable(value)));
    return [...rawItems(value)];
  }

  // nodes

  eval(node: Node, scope: Scope): PyValue {
    this.tick();
    try {
      return this.handle(node, scope);
    } catch (error) {
      if (error instanceof PyError) throw this.fail(pythonFailure(error, this.source(node)));
      throw error;
    }
  }

  private handle(node: Node, scope: Scope): PyValue {
    switch (node.kind) {
      case "Constant":
        return node.value as PyValue;
      case "Name":
        return this.name(node, scope);
      case "Attribute":
        return this.attribute(node, scope);
      case "Subscript":
        return this.subscript(node, scope);
      case "List":
        return this.produced(node.elts.map((item) => this.eval(item, scope)));
      case "Tuple":
        return this.produced(new PyTuple(node.elts.map((item) => this.eval(item, scope))));
      case "Set":
        return this.produced(new PySet(node.elts.map((item) => this.eval(item, scope))));
      case "Dict": {
        const dict = new PyDict();
        node.keys.forEach((key, i) => {
          const k = this.eval(key!, scope);
          dict.set(k, this.eval(node.values[i]!, scope));
        });
        return this.produced(dict);
      }
      case "UnaryOp":
        return this.produced(unary(node.op, this.eval(node.operand, scope)));
      case "BinOp": {
        const left = this.eval(node.left, scope);
        return this.arithmetic(node.op, left, this.eval(node.right, scope));
      }
      case "BoolOp": {
        const stopWhen = node.op === "Or";
        for (const part of node.values.slice(0, -1)) {
          const value = this.eval(part, scope);
          if (truthy(value) === stopWhen) return value;
        }
        return this.eval(node.values[node.values.length - 1]!, scope);
      }
      case "Compare":
        return this.compare(node, scope);
      case "IfExp":
        return this.eval(truthy(this.eval(node.test, scope)) ? node.body : node.orelse, scope);
      case "Call":
        return this.call(node, scope);
      case "ListComp":
      case "SetComp":
      case "DictComp":
        return this.comprehension(node, scope);
      default:
        throw this.fail(`${node.kind} is not allowed`);
    }
  }

  private name(node: NodeOf<"Name">, scope: Scope): PyValue {
    if (scope.has(node.id)) return scope.get(node.id)!;
    if (this.inputs.has(node.id)) return this.inputs.get(node.id)!;
    if (!Object.prototype.hasOwnProperty.call(this.env, node.id)) {
      const available = Object.keys(this.env).sort();
      throw this.fail(`unknown name '${node.id}' (available: ${listing(available, node.id)})`);
    }
    let value: PyValue;
    try {
      value = fromJsonChecked(this.env[node.id]);
    } catch (error) {
      if (error instanceof PyError) throw this.fail(`input '${node.id}' ${error.message}`);
      throw error;
    }
    this.inputs.set(node.id, value);
    return value;
  }

  private attribute(node: NodeOf<"Attribute">, scope: Scope): PyValue {
    const value = this.eval(node.value, scope);
    if (value instanceof PyDict) return this.field(value, node.attr, node.value);
    const owner = this.source(node.value);
    let message = `${owner} is ${article(value)}, not a record, so it has no field '${node.attr}'`;
    if (METHODS[typeName(value)]?.has(node.attr)) message += ` (to use the method, call it: ${owner}.${node.attr}())`;
    throw this.fail(message);
  }

  field(record: PyDict, key: PyValue, owner: Node): PyValue {
    const value = record.get(key);
    if (value !== undefined) return value;
    const word = typeof key === "string" ? "field" : "key";
    const names = record.keys().filter((name): name is string => typeof name === "string");
    throw this.fail(`${this.source(owner)} has no ${word} ${pyRepr(key)} (${word}s: ${listing(names, key)})`);
  }

  private subscript(node: NodeOf<"Subscript">, scope: Scope): PyValue {
    const value = this.eval(node.value, scope);
    const slice = node.slice;
    if (slice.kind === "Slice") {
      const bounds = [slice.lower, slice.upper, slice.step].map((part) => (part === null ? null : this.eval(part, scope)));
      if (bounds.some((bound) => bound !== null && !isInt(bound))) {
        throw this.fail(`slice bounds must be integers or None in ${this.source(node)}`);
      }
      const kind = typeName(value);
      if (!["str", "list", "tuple", "range"].includes(kind)) throw this.fail(`cannot slice ${article(value)} in ${this.source(node)}`);
      const result = sliceValue(value, bounds as (bigint | boolean | null)[]);
      this.charge(lengthOf(result));
      return result;
    }
    const key = this.eval(slice, scope);
    if (value instanceof PyDict) return this.field(value, key, node.value);
    const kind = typeName(value);
    if (!["str", "list", "tuple", "range"].includes(kind)) throw this.fail(`cannot index ${article(value)} in ${this.source(node)}`);
    if (!isInt(key)) throw this.fail(`${kind} indices must be integers, not ${typeName(key)}`);
    const length = BigInt(lengthOf(value));
    const index = asBigInt(key);
    if (!(-length <= index && index < length)) {
      throw this.fail(`index ${pyRepr(key)} is out of range for ${this.source(node.value)} (${length} items)`);
    }
    const at = Number(index < 0n ? index + length : index);
    if (typeof value === "string") return hasAstral(value) ? [...value][at]! : value[at]!;
    if (value instanceof PyRange) return value.at(BigInt(at));
    return sequenceItems(value)![at]!;
  }

  arithmetic(op: BinaryOperator, left: PyValue, right: PyValue): PyValue {
    const sequences = ["str", "list", "tuple"];
    const leftKind = typeName(left);
    if (op === "Add" && sequences.includes(leftKind) && leftKind === typeName(right)) {
      this.requireLength(lengthOf(left) + lengthOf(right), leftKind === "str" ? "text" : leftKind);
    } else if (op === "Mult") {
      this.checkProduct(left, right);
    } else if (op === "Pow" && isInt(left) && isInt(right) && asBigInt(right) > 0n) {
      const base = asBigInt(left) < 0n ? -asBigInt(left) : asBigInt(left);
      if (base > 1n) this.requireBits((bitLength(base) - 1) * Number(asBigInt(right)) + 1, true);
    } else if (op === "Mod" && typeof left === "string") {
      throw this.fail("text formatting with % is not available (build text with + and str(...))");
    }
    const [result, complex] = binary(op, left, right);
    if (complex) throw this.fail("the result is a complex number, which expressions do not support");
    return this.produced(result);
  }

  private checkProduct(left: PyValue, right: PyValue): void {
    if (isInt(left) && isInt(right)) {
      this.requireBits(bitLength(asBigInt(left)) + bitLength(asBigInt(right)) - 1, true);
      return;
    }
    for (const [sequence, count] of [
      [left, right],
      [right, left],
    ] as const) {
      const kind = typeName(sequence);
      if (["str", "list", "tuple"].includes(kind) && isInt(count)) {
        const times = asBigInt(count) > 0n ? asBigInt(count) : 0n;
        const length = BigInt(lengthOf(sequence)) * times;
        this.requireLength(length > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(length), kind === "str" ? "text" : kind);
      }
    }
  }

  private compare(node: NodeOf<"Compare">, scope: Scope): PyValue {
    let left = this.eval(node.left, scope);
    for (let i = 0; i < node.ops.length; i++) {
      const op = node.ops[i]!;
      const right = this.eval(node.comparators[i]!, scope);
      if ((op === "In" || op === "NotIn") && ITERABLE.has(typeName(right)) && !(right instanceof PyGenerator)) {
        this.charge(lengthOf(right));
      }
      if (!compareOp(op, left, right)) return false;
      left = right;
    }
    return true;
  }

  private call(node: NodeOf<"Call">, scope: Scope): PyValue {
    if (node.func.kind === "Attribute") {
      const receiver = this.eval(node.func.value, scope);
      return this.method(receiver, node.func.attr, this.arguments(node, scope), node.func.value);
    }
    const name = (node.func as NodeOf<"Name">).id;
    const args = this.arguments(node, scope);
    const keywords = new Map<string, PyValue>();
    for (const keyword of node.keywords) keywords.set(keyword.arg!, this.eval(keyword.value, scope));
    return FUNCTIONS[name]!.implementation(this, args, keywords);
  }

  private arguments(node: NodeOf<"Call">, scope: Scope): PyValue[] {
    return node.args.map((arg) => (arg.kind === "GeneratorExp" ? this.generator(arg, scope) : this.eval(arg, scope)));
  }

  private method(receiver: PyValue, name: string, args: PyValue[], owner: Node): PyValue {
    const kind = typeName(receiver);
    const methods = METHODS[kind];
    if (!methods?.has(name)) {
      const available = methods ? [...methods].sort().join(", ") : "none";
      throw this.fail(`${this.source(owner)} is ${article(receiver)}, which has no method '${name}' (methods: ${available})`);
    }
    if (kind === "str" || kind === "list" || kind === "tuple") this.charge(lengthOf(receiver));
    if (name === "join") return join(this, receiver as string, args);
    if (name === "replace") checkReplace(this, receiver as string, args);
    const result = callMethod(receiver, name, args);
    if (typeof result === "string" || Array.isArray(result)) this.charge(lengthOf(result));
    return result;
  }

  private *scopes(generators: NodeOf<"ListComp">["generators"], scope: Scope, index = 0): Generator<Scope> {
    const first = generators[index]!;
    for (const item of this.iterate(this.eval(first.iter, scope))) {
      const inner = new Map(scope);
      this.bind(first.target, item, inner);
      if (first.ifs.every((test) => truthy(this.eval(test, inner)))) {
        if (index + 1 < generators.length) yield* this.scopes(generators, inner, index + 1);
        else yield inner;
      }
    }
  }

  private bind(target: Node, value: PyValue, scope: Scope): void {
    if (target.kind === "Name") {
      scope.set(target.id, value);
      return;
    }
    const names = (target as NodeOf<"Tuple">).elts;
    const kind = typeName(value);
    const items = kind === "str" ? [...(value as string)] : kind === "list" || kind === "tuple" ? sequenceItems(value)! : null;
    if (items === null || items.length !== names.length) {
      const size = items !== null ? `${items.length} values` : article(value);
      throw this.fail(`cannot unpack ${size} into ${names.length} names in ${this.source(target)}`);
    }
    names.forEach((name, i) => this.bind(name, items[i]!, scope));
  }

  private generator(node: NodeOf<"GeneratorExp">, scope: Scope): PyGenerator {
    const self = this;
    function* values(): Generator<PyValue> {
      for (const inner of self.scopes(node.generators, scope)) yield self.eval(node.elt, inner);
    }
    return new PyGenerator(values());
  }

  private comprehension(node: NodeOf<"ListComp" | "SetComp" | "DictComp">, scope: Scope): PyValue {
    const scopes = this.scopes(node.generators, scope);
    if (node.kind === "DictComp") {
      const self = this;
      const { key, value } = node;
      function* pairs(): Generator<PyValue> {
        for (const inner of scopes) yield new PyTuple([self.eval(key, inner), self.eval(value, inner)]);
      }
      const dict = new PyDict();
      for (const pair of this.bounded(pairs(), "dict")) dict.set((pair as PyTuple).items[0]!, (pair as PyTuple).items[1]!);
      return this.produced(dict);
    }
    const kind = node.kind === "SetComp" ? "set" : "list";
    const self = this;
    const elt = node.elt;
    function* items(): Generator<PyValue> {
      for (const inner of scopes) yield self.eval(elt, inner);
    }
    const values = this.bounded(items(), kind);
    return this.produced(kind === "set" ? new PySet(values) : values);
  }
}

export function fromJsonChecked(value: unknown): PyValue {
  const open = new Set<object>();
  const visit = (item: unknown, depth: number): void => {
    if (item === null || typeof item !== "object") {
      if (item !== null && !["string", "number", "boolean", "bigint", "undefined"].includes(typeof item)) {
        throw new PyError("TypeError", `holds a ${typeof item}; expressions read only dict, list, tuple, str, int, float, bool and None`);
      }
      return;
    }
    if (open.has(item)) throw new PyError("ValueError", "contains itself");
    if (depth >= 100) throw new PyError("ValueError", "is nested more than 100 levels deep");
    open.add(item);
    for (const child of Array.isArray(item) ? item : Object.values(item)) visit(child, depth + 1);
    open.delete(item);
  };
  visit(value, 0);
  return fromJson(value);
}

export function* rawItems(value: PyValue): Generator<PyValue> {
  if (typeof value === "string") {
    yield* value;
    return;
  }
  if (Array.isArray(value)) yield* value;
  else if (value instanceof PyTuple) yield* value.items;
  else if (value instanceof PyDict) yield* value.keys();
  else if (value instanceof PySet) yield* value.values();
  else if (value instanceof PyRange) yield* value;
  else if (value instanceof PyGenerator) {
    for (let next = value.iterator.next(); !next.done; next = value.iterator.next()) yield next.value;
  }
}

function sliceIndices(length: number, bounds: (bigint | boolean | null)[]): number[] {
  const [lower, upper, rawStep] = bounds.map((b) => (b === null ? null : asBigInt(b)));
  const step = rawStep ?? 1n;
  if (step === 0n) throw new PyError("ValueError", "slice step cannot be zero");
  const n = BigInt(length);
  const [low, high] = step > 0n ? [0n, n] : [-1n, n - 1n];
  const adjust = (value: bigint | null | undefined, fallback: bigint): bigint => {
    if (value === null || value === undefined) return fallback;
    if (value < 0n) {
      const shifted = value + n;
      return shifted < low ? low : shifted;
    }
    return value > high ? high : value;
  };
  const start = adjust(lower, step < 0n ? high : low);
  const stop = adjust(upper, step < 0n ? low : high);
  const indices: number[] = [];
  for (let i = start; step > 0n ? i < stop : i > stop; i += step) indices.push(Number(i));
  return indices;
}

export function sliceValue(value: PyValue, bounds: (bigint | boolean | null)[]): PyValue {
  if (value instanceof PyRange) {
    const indices = sliceIndices(Number(value.length), bounds);
    const step = (bounds[2] === null || bounds[2] === undefined ? 1n : asBigInt(bounds[2])) * value.step;
    const start = indices.length ? value.at(BigInt(indices[0]!)) : value.start;
    return new PyRange(start, start + BigInt(indices.length) * step, step);
  }
  if (typeof value === "string") {
    const points = hasAstral(value) ? [...value] : null;
    const indices = sliceIndices(points ? points.length : value.length, bounds);
    return indices.map((i) => (points ? points[i] : value[i])).join("");
  }
  const items = sequenceItems(value)!;
  const picked = sliceIndices(items.length, bounds).map((i) => items[i]!);
  return value instanceof PyTuple ? new PyTuple(picked) : picked;
}

function unary(op: string, operand: PyValue): PyValue {
  if (op === "Not") return !truthy(operand);
  if (!isNumber(operand)) {
    throw new PyError("TypeError", `bad operand type for unary ${op === "USub" ? "-" : "+"}: '${typeName(operand)}'`);
  }
  if (typeof operand === "number") return op === "USub" ? -operand : operand;
  return op === "USub" ? -asBigInt(operand) : asBigInt(operand);
}

const OP_SYMBOLS: Record<string, string> = { Add: "+", Sub: "-", Mult: "*", Div: "/", FloorDiv: "//", Mod: "%", Pow: "** or pow()" };

function unsupported(op: string, left: PyValue, right: PyValue): PyError {
  return new PyError("TypeError", `unsupported operand type(s) for ${OP_SYMBOLS[op]}: '${typeName(left)}' and '${typeName(right)}'`);
}

function floatMod(a: number, b: number): number {
  if (b === 0) throw new PyError("ZeroDivisionError", "float modulo");
  let mod = a % b;
  if (mod !== 0) {
    if (b < 0 !== mod < 0) mod += b;
  } else mod = b < 0 ? -0 : 0;
  return mod;
}

function floatFloorDiv(a: number, b: number): number {
  if (b === 0) throw new PyError("ZeroDivisionError", "float floor division by zero");
  let mod = a % b;
  let div = (a - mod) / b;
  if (mod !== 0 && b < 0 !== mod < 0) {
    mod += b;
    div -= 1;
  }
  if (div === 0) return a / b < 0 ? -0 : 0;
  let floor = Math.floor(div);
  if (div - floor > 0.5) floor += 1;
  return floor;
}

/** A binary operator on Python values: [result, whether Python's result would be a complex number]. */
function binary(op: BinaryOperator, left: PyValue, right: PyValue): [PyValue, boolean] {
  if (isNumber(left) && isNumber(right)) {
    if (isInt(left) && isInt(right)) {
      const a = asBigInt(left);
      const b = asBigInt(right);
      switch (op) {
        case "Add":
          return [a + b, false];
        case "Sub":
          return [a - b, false];
        case "Mult":
          return [a * b, false];
        case "Div":
          if (b === 0n) throw new PyError("ZeroDivisionError", "division by zero");
          return [Number(a) / Number(b), false];
        case "FloorDiv":
        case "Mod": {
          if (b === 0n) throw new PyError("ZeroDivisionError", "integer division or modulo by zero");
          let q = a / b;
          let r = a % b;
          if (r !== 0n && r < 0n !== b < 0n) {
            q -= 1n;
            r += b;
          }
          return [op === "FloorDiv" ? q : r, false];
        }
        case "Pow":
          if (b >= 0n) return [a ** b, false];
          if (a === 0n) throw new PyError("ZeroDivisionError", "0.0 cannot be raised to a negative power");
          return [Math.pow(Number(a), Number(b)), false];
      }
    }
    const a = toFloat(left);
    const b = toFloat(right);
    switch (op) {
      case "Add":
        return [a + b, false];
      case "Sub":
        return [a - b, false];
      case "Mult":
        return [a * b, false];
      case "Div":
        if (b === 0) throw new PyError("ZeroDivisionError", "float division by zero");
        return [a / b, false];
      case "FloorDiv":
        return [floatFloorDiv(a, b), false];
      case "Mod":
        return [floatMod(a, b), false];
      case "Pow": {
        if (a === 0 && b < 0) throw new PyError("ZeroDivisionError", "0.0 cannot be raised to a negative power");
        if (a < 0 && Number.isFinite(b) && !Number.isInteger(b)) return [null, true];
        const result = Math.pow(a, b);
        if (!Number.isFinite(result) && Number.isFinite(a) && Number.isFinite(b)) {
          throw new PyError("OverflowError", "(34, 'Numerical result out of range')");
        }
        return [result, false];
      }
    }
  }
  const leftKind = typeName(left);
  const rightKind = typeName(right);
  if (op === "Add") {
    if (leftKind === rightKind && leftKind === "str") return [(left as string) + (right as string), false];
    if (leftKind === rightKind && leftKind === "list") return [[...(left as PyValue[]), ...(right as PyValue[])], false];
    if (leftKind === rightKind && leftKind === "tuple") return [new PyTuple([...(left as PyTuple).items, ...(right as PyTuple).items]), false];
    if (leftKind === "str") throw new PyError("TypeError", `can only concatenate str (not "${rightKind}") to str`);
    if (leftKind === "list" || leftKind === "tuple") {
      throw new PyError("TypeError", `can only concatenate ${leftKind} (not "${rightKind}") to ${leftKind}`);
    }
  }
  if (op === "Sub" && left instanceof PySet && right instanceof PySet) {
    return [new PySet(left.values().filter((item) => !right.has(item))), false];
  }
  if (op === "Mult") {
    for (const [sequence, count] of [
      [left, right],
      [right, left],
    ] as const) {
      const kind = typeName(sequence);
      if (!["str", "list", "tuple"].includes(kind)) continue;
      if (!isInt(count)) {
        if (isNumber(count) || typeName(count) === typeName(sequence) || true) {
          throw new PyError("TypeError", `can't multiply sequence by non-int of type '${typeName(count)}'`);
        }
      }
      const times = Math.max(0, Number(asBigInt(count as bigint | boolean)));
      if (typeof sequence === "string") return [sequence.repeat(times), false];
      const items = sequenceItems(sequence)!;
      const out: PyValue[] = [];
      for (let i = 0; i < times; i++) out.push(...items);
      return [sequence instanceof PyTuple ? new PyTuple(out) : out, false];
    }
  }
  throw unsupported(op, left, right);
}

function compareOp(op: string, left: PyValue, right: PyValue): boolean {
  switch (op) {
    case "Eq":
      return pyEquals(left, right);
    case "NotEq":
      return !pyEquals(left, right);
    case "Is":
      return left === right;
    case "IsNot":
      return left !== right;
    case "In":
      return contains(right, left);
    case "NotIn":
      return !contains(right, left);
    default:
      return pyCompare(op as "Lt", left, right);
  }
}

function contains(container: PyValue, item: PyValue): boolean {
  if (typeof container === "string") {
    if (typeof item !== "string") {
      throw new PyError("TypeError", `'in <string>' requires string as left operand, not ${typeName(item)}`);
    }
    return container.includes(item);
  }
  if (container instanceof PyDict) return container.has(item);
  if (container instanceof PySet) return container.has(item);
  if (container instanceof PyRange) {
    if (!isNumber(item)) return false;
    return [...container].some((value) => pyEquals(value, item));
  }
  if (Array.isArray(container) || container instanceof PyTuple) {
    return sequenceItems(container)!.some((value) => value === item || pyEquals(value, item));
  }
  if (container instanceof PyGenerator) {
    for (const value of rawItems(container)) if (pyEquals(value, item)) return true;
    return false;
  }
  throw new PyError("TypeError", `argument of type '${typeName(container)}' is not iterable`);
}

