/**
 * The sandbox for plan expressions (`given`, `ensure`, `until`, `feedback`, `when`, `dispatch`, `validate`, `expr`):
 * a port of `stratum_core/_expressions.py`, rule for rule, with the same bounds and the same messages.
 *
 * Expressions are untrusted text in Python expression syntax. They are parsed into a tree, checked against the same
 * whitelist of node types, functions and methods, and run by a tree-walking interpreter over Python values: nothing
 * reaches `eval` or `Function`. Each evaluation is bounded in steps, wall time, nesting, and the size of the strings,
 * collections and integers it builds. A shared corpus (`tests/vectors/expressions.json`) holds both sides to the
 * same answers.
 */

import { closeMatch } from "./difflib.js";
import {
  children,
  ExpressionSyntaxError,
  ForeignConstant,
  Parser,
  type BinaryOperator,
  type Node,
  type NodeOf,
} from "./parse.js";
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
  pySort,
  pyStr,
  PyTuple,
  type PyValue,
  sequenceItems,
  shortRepr,
  strLength,
  strRepr,
  toFloat,
  truthy,
  typeName,
} from "./values.js";

export { ExpressionSyntaxError } from "./parse.js";

const MAX_TEXT = 10_000;
const ITEMS_PER_STEP = 64;
const CLOCK_EVERY = 128;

/** Bounds on one evaluation; `maxDepth` also bounds the expression's nesting when it is compiled. */
export interface Limits {
  maxSteps: number;
  maxSeconds: number;
  maxString: number;
  maxSequence: number;
  maxIntBits: number;
  maxDepth: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxSteps: 100_000,
  maxSeconds: 0.05,
  maxString: 100_000,
  maxSequence: 10_000,
  maxIntBits: 4_096,
  maxDepth: 64,
});

/** A condition or computation failed at run time: a bound, a missing name or field, a bad operand. */
export class ExpressionError extends Error {
  readonly expression: string;
  readonly detail: string;

  constructor(message: string, expression: string) {
    super(message);
    this.name = "ExpressionError";
    this.detail = message;
    this.expression = expression;
  }
}

/** A read of a record field chain rooted at a free name: `result.label.lower()` reads `result` field `label`. */
export interface FieldRead {
  root: string;
  fields: string[];
  offset: number;
}

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
  const checker = new Checker(text, lead, code, limits);
  checker.check(tree, new Set());
  const reads = [...checker.reads].sort((a, b) => a.offset - b.offset);
  return new Expression(text, tree, code, checker.names, reads);
}

function statementHint(code: string): string | undefined {
  const statement = /^(import|from|def|class|return|pass|raise|del|assert|global|for|while|with|try|if)\b|^[\p{L}_][\p{L}\p{N}_.]*\s*([-+*/%&|^@]|\*\*|\/\/|<<|>>)?=(?!=)/u;
  return statement.test(code) ? "a plan expression is a single Python expression, not a statement" : undefined;
}

function tooDeep(text: string, offset: number, limit: number): ExpressionSyntaxError {
  return new ExpressionSyntaxError(`expression is nested too deeply (more than ${limit} levels)`, {
    expression: text,
    offset,
    hint: "split it into simpler expressions",
  });
}

function checkNesting(text: string, code: string, lead: number, tree: Node, limit: number): void {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < code.length; i++) {
    const ch = code[i]!;
    if (quote !== null) {
      if (ch === "\\") i++;
      else if (code.startsWith(quote, i)) {
        i += quote.length - 1;
        quote = null;
      }
      continue;
    }
    if (ch === "#") {
      while (i < code.length && code[i] !== "\n") i++;
    } else if (ch === '"' || ch === "'") {
      quote = code.startsWith(ch.repeat(3), i) ? ch.repeat(3) : ch;
      i += quote.length - 1;
    } else if ("([{".includes(ch)) {
      depth++;
      if (depth > limit) throw tooDeep(text, lead + i, limit);
    } else if (")]}".includes(ch)) depth--;
  }
  const stack: [Node, number][] = [[tree, 1]];
  while (stack.length) {
    const [node, level] = stack.pop()!;
    if (level > limit) throw tooDeep(text, lead + node.start, limit);
    for (const child of children(node)) stack.push([child, level + 1]);
  }
}

const BINARY_ALLOWED = new Set<BinaryOperator>(["Add", "Sub", "Mult", "Div", "FloorDiv", "Mod", "Pow"]);
const SYMBOLS: Record<string, string> = {
  LShift: "<<", RShift: ">>", BitOr: "|", BitXor: "^", BitAnd: "&", MatMult: "@", Invert: "~",
};
const OPERATOR_HINT = "allowed operators: + - * / // % ** and, or, not, comparisons, in, is None";
const REFUSED: Record<string, [string, string | undefined]> = {
  Lambda: ["lambda functions are not allowed", "an expression cannot define functions"],
  NamedExpr: ["assignment expressions (:=) are not allowed", "an expression cannot assign names"],
  JoinedStr: ["f-strings are not allowed", "build text with + and str(...)"],
  Await: ["'await' is not allowed", undefined],
  Yield: ["'yield' is not allowed", undefined],
  YieldFrom: ["'yield from' is not allowed", undefined],
  Starred: ["unpacking with * is not allowed", undefined],
  Slice: ["a slice is only allowed directly inside [...]", undefined],
  GeneratorExp: [
    "a generator expression can only be passed to a function",
    "e.g. any(x > 0 for x in items), or use a list comprehension [...]",
  ],
};

function stringKey(node: NodeOf<"Subscript">): string | undefined {
  const index = node.slice;
  return index.kind === "Constant" && typeof index.value === "string" ? index.value : undefined;
}

class Checker {
  readonly names = new Set<string>();
  readonly reads: FieldRead[] = [];

  constructor(
    private readonly text: string,
    private readonly lead: number,
    private readonly code: string,
    private readonly limits: Limits,
  ) {}

  error(node: { start: number }, message: string, hint?: string): ExpressionSyntaxError {
    return new ExpressionSyntaxError(message, { expression: this.text, offset: this.lead + node.start, hint });
  }

  check(node: Node, bound: ReadonlySet<string>): void {
    switch (node.kind) {
      case "Name":
      case "Attribute":
      case "Subscript":
        return this.chain(node, bound);
      case "Constant":
        return this.constant(node);
      case "List":
      case "Tuple":
      case "Set":
        for (const item of node.elts) this.check(item, bound);
        return;
      case "Dict":
        node.keys.forEach((key, i) => {
          if (key === null) throw this.error(node.values[i]!, "dict unpacking (**) is not allowed");
          this.check(key, bound);
          this.check(node.values[i]!, bound);
        });
        return;
      case "UnaryOp":
        if (node.op === "Invert") throw this.error(node, `operator '~' is not allowed`, OPERATOR_HINT);
        return this.check(node.operand, bound);
      case "BinOp":
        if (!BINARY_ALLOWED.has(node.op)) throw this.error(node, `operator '${SYMBOLS[node.op]}' is not allowed`, OPERATOR_HINT);
        this.check(node.left, bound);
        return this.check(node.right, bound);
      case "BoolOp":
        for (const part of node.values) this.check(part, bound);
        return;
      case "Compare":
        return this.compare(node, bound);
      case "IfExp":
        for (const part of [node.test, node.body, node.orelse]) this.check(part, bound);
        return;
      case "Call":
        return this.call(node, bound);
      case "ListComp":
      case "SetComp":
      case "DictComp":
        return this.comprehension(node, bound);
      default: {
        const [message, hint] = REFUSED[node.kind] ?? [`${node.kind} is not allowed`, undefined];
        throw this.error(node, message, hint);
      }
    }
  }

  private constant(node: NodeOf<"Constant">): void {
    if (node.value instanceof ForeignConstant) throw this.error(node, `${node.value.typeName} literals are not allowed`);
    if (typeof node.value === "bigint" && bitLength(node.value) > this.limits.maxIntBits) {
      throw this.error(node, `integer literal is too large (limit ${this.limits.maxIntBits} bits)`);
    }
  }

  private chain(node: Node, bound: ReadonlySet<string>): void {
    const fields: string[] = [];
    let current = node;
    for (;;) {
      if (current.kind === "Attribute") {
        this.attributeName(current, current.attr);
        fields.push(current.attr);
        current = current.value;
      } else if (current.kind === "Subscript" && stringKey(current) !== undefined) {
        fields.push(stringKey(current)!);
        current = current.value;
      } else break;
    }
    if (current.kind === "Name") {
      this.name(current, bound, fields.reverse());
    } else if (current.kind === "Subscript") {
      const slice = current.slice;
      if (slice.kind === "Slice") {
        for (const part of [slice.lower, slice.upper, slice.step]) if (part !== null) this.check(part, bound);
      } else this.check(slice, bound);
      this.chain(current.value, bound);
    } else this.check(current, bound);
  }

  private name(node: NodeOf<"Name">, bound: ReadonlySet<string>, fields: string[]): void {
    if (node.id.startsWith("_") && !(node.id === "_" && bound.has("_"))) {
      throw this.error(node, `name '${node.id}' is not allowed`, "names starting with '_' are private");
    }
    if (!bound.has(node.id)) {
      this.names.add(node.id);
      this.reads.push({ root: node.id, fields, offset: this.lead + node.start });
    }
  }

  private attributeName(node: Node, name: string): void {
    if (name.startsWith("_")) throw this.error(node, `attribute '${name}' is not allowed`, "names starting with '_' are private");
  }

  private compare(node: NodeOf<"Compare">, bound: ReadonlySet<string>): void {
    const operands = [node.left, ...node.comparators];
    node.ops.forEach((op, i) => {
      if (op !== "Is" && op !== "IsNot") return;
      const singleton = (side: Node): boolean =>
        side.kind === "Constant" && (side.value === null || side.value === true || side.value === false);
      if (!singleton(operands[i]!) && !singleton(operands[i + 1]!)) {
        throw this.error(operands[i + 1]!, "'is' only compares with None, True or False", "use == to compare values");
      }
    });
    for (const operand of operands) this.check(operand, bound);
  }

  private call(node: NodeOf<"Call">, bound: ReadonlySet<string>): void {
    const func = node.func;
    let takesGenerators: boolean;
    if (func.kind === "Name") {
      const spec = FUNCTIONS[func.id];
      if (spec === undefined) {
        throw this.error(func, `unknown function '${func.id}'`, `allowed functions: ${Object.keys(FUNCTIONS).join(", ")}`);
      }
      this.checkCall(func.id, spec, node);
      takesGenerators = spec.takesIterables;
    } else if (func.kind === "Attribute") {
      this.attributeName(func, func.attr);
      if (!ALL_METHODS.has(func.attr)) throw this.error(func, `method '${func.attr}' is not available`, METHODS_HINT);
      if (node.keywords.length) throw this.error(node.keywords[0]!.value, `method '${func.attr}' takes positional arguments only`);
      this.check(func.value, bound);
      takesGenerators = func.attr === "join";
    } else {
      throw this.error(func, "only named functions and methods can be called");
    }
    for (const arg of node.args) {
      if (arg.kind === "GeneratorExp" && takesGenerators) this.comprehension(arg, bound);
      else this.check(arg, bound);
    }
    for (const keyword of node.keywords) this.check(keyword.value, bound);
  }

  private checkCall(name: string, spec: FunctionSpec, node: NodeOf<"Call">): void {
    const count = node.args.length;
    if (node.args.some((arg) => arg.kind === "Starred")) throw this.error(node, "unpacking with * is not allowed");
    if (count < spec.minArgs || (spec.maxArgs !== null && count > spec.maxArgs)) {
      const most = spec.maxArgs === null ? "any number of" : String(spec.maxArgs);
      const expected = spec.minArgs === spec.maxArgs ? String(spec.minArgs) : `${spec.minArgs} to ${most}`;
      throw this.error(node, `${name}() takes ${expected} arguments (${count} given)`);
    }
    for (const keyword of node.keywords) {
      if (keyword.arg === null || !spec.keywords.includes(keyword.arg)) {
        const allowed = [...spec.keywords].sort().join(", ") || "none";
        const shown = keyword.arg ? `'${keyword.arg}'` : "**";
        throw this.error(keyword.value, `${name}() does not take keyword ${shown}`, `keywords: ${allowed}`);
      }
    }
  }

  private comprehension(node: NodeOf<"ListComp" | "SetComp" | "DictComp" | "GeneratorExp">, bound: ReadonlySet<string>): void {
    let inner = new Set(bound);
    for (const generator of node.generators) {
      if (generator.isAsync) throw this.error(generator.iter, "'async for' is not allowed");
      this.check(generator.iter, inner);
      inner = new Set([...inner, ...this.targets(generator.target)]);
      for (const test of generator.ifs) this.check(test, inner);
    }
    if (node.kind === "DictComp") {
      this.check(node.key, inner);
      this.check(node.value, inner);
    } else this.check(node.elt, inner);
  }

  private targets(target: Node): string[] {
    if (target.kind === "Name") {
      if (target.id.startsWith("_") && target.id !== "_") {
        throw this.error(target, `name '${target.id}' is not allowed`, "names starting with '_' are private");
      }
      return [target.id];
    }
    if (target.kind === "Tuple" || target.kind === "List") return target.elts.flatMap((item) => this.targets(item));
    throw this.error(target, "a comprehension can only bind names, e.g. `for k, v in d.items()`");
  }
}

// --- evaluation -----------------------------------------------------------------------------------------------------

type Scope = Map<string, PyValue>;

function article(value: PyValue): string {
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

function lengthOf(value: PyValue): number {
  if (typeof value === "string") return strLength(value);
  if (Array.isArray(value)) return value.length;
  if (value instanceof PyTuple) return value.items.length;
  if (value instanceof PySet || value instanceof PyDict) return value.size;
  if (value instanceof PyRange) return Number(value.length);
  throw new PyError("TypeError", `object of type '${typeName(value)}' has no len()`);
}

const ITERABLE = new Set(["str", "list", "tuple", "dict", "set", "range", "generator"]);
const SEQUENCE_KINDS = new Set(["list", "tuple", "dict", "set"]);

class Evaluator {
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

function fromJsonChecked(value: unknown): PyValue {
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

function* rawItems(value: PyValue): Generator<PyValue> {
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

function sliceValue(value: PyValue, bounds: (bigint | boolean | null)[]): PyValue {
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

// --- functions and methods ------------------------------------------------------------------------------------------

type Implementation = (ev: Evaluator, args: PyValue[], keywords: Map<string, PyValue>) => PyValue;

interface FunctionSpec {
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

function join(ev: Evaluator, separator: string, args: PyValue[]): string {
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

function checkReplace(ev: Evaluator, text: string, args: PyValue[]): void {
  if (args.length < 2 || typeof args[0] !== "string" || typeof args[1] !== "string") return;
  let count = countOf(text, args[0]);
  if (args.length > 2 && typeof args[2] === "bigint" && args[2] >= 0n) count = Math.min(count, Number(args[2]));
  const length = strLength(text) + count * (strLength(args[1]) - strLength(args[0]));
  if (length > Math.max(strLength(text), ev.limits.maxString)) ev.requireLength(length, "text");
}

const FUNCTIONS: Record<string, FunctionSpec> = {
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
const METHODS: Record<string, ReadonlySet<string>> = {
  str: new Set(STRING_METHODS),
  list: new Set(["count", "index"]),
  tuple: new Set(["count", "index"]),
  dict: new Set(["get", "keys", "values", "items"]),
};
const ALL_METHODS = new Set(Object.values(METHODS).flatMap((names) => [...names]));
const METHODS_HINT =
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

function callMethod(receiver: PyValue, name: string, args: PyValue[]): PyValue {
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
