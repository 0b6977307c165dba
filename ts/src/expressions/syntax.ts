/**
 * The allow-list and compiling (Python's `stratum_core/expressions/_syntax.py`): bounds, nesting, and the checker that
 * refuses what the sandbox will not run, with Python's messages, and collects the names and field reads.
 */

import { ALL_METHODS, FUNCTIONS, type FunctionSpec, METHODS_HINT } from "./builtins.js";
import { children, ExpressionSyntaxError, ForeignConstant, type BinaryOperator, type Node, type NodeOf } from "./parse.js";
import { bitLength } from "./values.js";

export const MAX_TEXT = 10_000;
export const ITEMS_PER_STEP = 64;
export const CLOCK_EVERY = 128;

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
/** A read of a record field chain rooted at a free name: `result.label.lower()` reads `result` field `label`. */
export interface FieldRead {
  root: string;
  fields: string[];
  offset: number;
}


export function statementHint(code: string): string | undefined {
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

export function checkNesting(text: string, code: string, lead: number, tree: Node, limit: number): void {
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

export class Checker {
  readonly names = new Set<string>();
  readonly reads: FieldRead[] = [];

  constructor(
    private readonly text: string,
    private readonly lead: number,
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

