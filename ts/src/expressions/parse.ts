/**
 * A parser for the Python expression syntax plan expressions use, producing a tree shaped like Python's `ast`
 * (node kinds, field names and source positions), so the checker and the evaluator can follow the Python sandbox
 * (`stratum_core/expressions/`) rule for rule. Constructs the sandbox refuses (lambda, `:=`, f-strings, `*x`,
 * `await`, `yield`) are still parsed, so the checker can refuse them with the same words as Python.
 */

export class ExpressionSyntaxError extends Error {
  readonly expression: string;
  readonly offset: number;
  readonly hint: string | undefined;
  readonly detail: string;

  constructor(message: string, options: { expression: string; offset: number; hint?: string | undefined }) {
    super(options.hint ? `${message} (${options.hint})` : message);
    this.name = "ExpressionSyntaxError";
    this.detail = message;
    this.expression = options.expression;
    this.offset = options.offset;
    this.hint = options.hint;
  }
}

/** A constant that Python can write but the sandbox refuses (its Python type name). */
export class ForeignConstant {
  constructor(readonly typeName: "complex" | "bytes" | "ellipsis") {}
}

export type BinaryOperator = "Add" | "Sub" | "Mult" | "Div" | "FloorDiv" | "Mod" | "Pow" | "LShift" | "RShift" | "BitOr" | "BitXor" | "BitAnd" | "MatMult";
export type UnaryOperator = "Not" | "USub" | "UAdd" | "Invert";
export type CompareOperator = "Eq" | "NotEq" | "Lt" | "LtE" | "Gt" | "GtE" | "Is" | "IsNot" | "In" | "NotIn";

interface Span {
  start: number;
  end: number;
}

export interface Comprehension {
  target: Node;
  iter: Node;
  ifs: Node[];
  isAsync: boolean;
}

export interface Keyword extends Span {
  arg: string | null;
  value: Node;
}

type Sequence<K extends string> = { kind: K; elts: Node[] };
type Comp<K extends string> = { kind: K; elt: Node; generators: Comprehension[] };
type Wrapper<K extends string> = { kind: K; value: Node | null };

export type Node = Span &
  (
    | { kind: "Constant"; value: null | boolean | bigint | number | string | ForeignConstant }
    | { kind: "Name"; id: string }
    | { kind: "Attribute"; value: Node; attr: string }
    | { kind: "Subscript"; value: Node; slice: Node }
    | { kind: "Slice"; lower: Node | null; upper: Node | null; step: Node | null }
    | Sequence<"List">
    | Sequence<"Tuple">
    | Sequence<"Set">
    | { kind: "Dict"; keys: (Node | null)[]; values: Node[] }
    | { kind: "UnaryOp"; op: UnaryOperator; operand: Node }
    | { kind: "BinOp"; left: Node; op: BinaryOperator; right: Node }
    | { kind: "BoolOp"; op: "And" | "Or"; values: Node[] }
    | { kind: "Compare"; left: Node; ops: CompareOperator[]; comparators: Node[] }
    | { kind: "IfExp"; test: Node; body: Node; orelse: Node }
    | { kind: "Call"; func: Node; args: Node[]; keywords: Keyword[] }
    | Comp<"ListComp">
    | Comp<"SetComp">
    | Comp<"GeneratorExp">
    | { kind: "DictComp"; key: Node; value: Node; generators: Comprehension[] }
    | { kind: "Lambda" }
    | { kind: "JoinedStr" }
    | { kind: "NamedExpr"; target: Node; value: Node }
    | Wrapper<"Await">
    | Wrapper<"Yield">
    | Wrapper<"YieldFrom">
    | Wrapper<"Starred">
  );

export type NodeOf<K extends Node["kind"]> = Extract<Node, { kind: K }>;

type TokenKind = "name" | "number" | "string" | "op" | "end";

interface Token {
  kind: TokenKind;
  text: string;
  start: number;
  end: number;
  value?: Node extends never ? never : NodeOf<"Constant">["value"];
  fstring?: boolean;
}

const KEYWORDS = new Set(
  "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield".split(
    " ",
  ),
);
const OPERATORS = [
  "**=", "//=", ">>=", "<<=", "...", "->", ":=", "**", "//", "<<", ">>", "<=", ">=", "==", "!=", "+=", "-=", "*=", "/=",
  "%=", "&=", "|=", "^=", "@=", "+", "-", "*", "/", "%", "@", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ":", ".",
  ";", "&", "|", "^", "~", "!",
];
const MAX_PARENS = 200; // CPython's tokenizer refuses deeper nesting ("too many nested parentheses")
const MAX_RECURSION = 900;

function isIdentifierStart(ch: string): boolean {
  return /[\p{L}\p{Nl}_]/u.test(ch);
}

function isIdentifierPart(ch: string): boolean {
  return /[\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]/u.test(ch);
}

class Tokenizer {
  readonly tokens: Token[] = [];
  private pos = 0;
  private depth = 0;

  constructor(
    private readonly code: string,
    private readonly fail: (message: string, offset: number) => never,
  ) {}

  run(): Token[] {
    const code = this.code;
    while (this.pos < code.length) {
      const ch = code[this.pos]!;
      if (ch === " " || ch === "\t" || ch === "\f" || ch === "\r") {
        this.pos++;
      } else if (ch === "\n") {
        if (this.depth === 0 && code.slice(this.pos).trim() !== "") this.fail("invalid syntax", this.pos);
        this.pos++;
      } else if (ch === "#") {
        while (this.pos < code.length && code[this.pos] !== "\n") this.pos++;
      } else if (ch === "\\" && (code[this.pos + 1] === "\n" || (code[this.pos + 1] === "\r" && code[this.pos + 2] === "\n"))) {
        this.pos += code[this.pos + 1] === "\n" ? 2 : 3;
      } else if (/[0-9]/.test(ch) || (ch === "." && /[0-9]/.test(code[this.pos + 1] ?? ""))) {
        this.number();
      } else if (ch === '"' || ch === "'") {
        this.string(this.pos, "");
      } else if (isIdentifierStart(ch) || (ch.charCodeAt(0) >= 0xd800 && ch.charCodeAt(0) <= 0xdbff)) {
        this.name();
      } else {
        this.operator();
      }
    }
    this.tokens.push({ kind: "end", text: "", start: code.length, end: code.length });
    return this.tokens;
  }

  private name(): void {
    const code = this.code;
    const start = this.pos;
    const first = String.fromCodePoint(code.codePointAt(this.pos)!);
    if (!isIdentifierStart(first)) this.fail("invalid character", start);
    this.pos += first.length;
    while (this.pos < code.length) {
      const next = String.fromCodePoint(code.codePointAt(this.pos)!);
      if (!isIdentifierPart(next)) break;
      this.pos += next.length;
    }
    const text = code.slice(start, this.pos);
    const quote = code[this.pos];
    if ((quote === '"' || quote === "'") && /^(r|u|b|br|rb|f|fr|rf)$/i.test(text)) {
      this.string(start, text.toLowerCase());
      return;
    }
    this.tokens.push({ kind: "name", text: text.normalize("NFKC"), start, end: this.pos });
  }

  private number(): void {
    const code = this.code;
    const start = this.pos;
    const rest = code.slice(start);
    let match = /^0[xX](?:_?[0-9a-fA-F])+|^0[oO](?:_?[0-7])+|^0[bB](?:_?[01])+/.exec(rest);
    let value: bigint | number | ForeignConstant;
    if (match) {
      const digits = match[0].replace(/_/g, "");
      value = BigInt(digits.toLowerCase().replace(/^0o/, "0o"));
    } else {
      match = /^(?:(?:[0-9](?:_?[0-9])*)?\.[0-9](?:_?[0-9])*|[0-9](?:_?[0-9])*\.?)(?:[eE][+-]?[0-9](?:_?[0-9])*)?[jJ]?/.exec(rest);
      if (!match) this.fail("invalid syntax", start);
      const text = match[0].replace(/_/g, "");
      if (/[jJ]$/.test(text)) {
        value = new ForeignConstant("complex");
      } else if (/[.eE]/.test(text)) {
        value = Number(text);
      } else {
        if (/^0[0-9]/.test(text) && /[1-9]/.test(text)) {
          this.fail("leading zeros in decimal integer literals are not permitted; use an 0o prefix for octal integers", start);
        }
        value = BigInt(text);
      }
    }
    this.pos = start + match[0].length;
    if (this.pos < code.length && isIdentifierPart(code[this.pos]!)) this.fail("invalid decimal literal", start);
    this.tokens.push({ kind: "number", text: match[0], start, end: this.pos, value });
  }

  private string(start: number, prefix: string): void {
    const code = this.code;
    let pos = start + prefix.length;
    const quote = code[pos]!;
    const triple = code.startsWith(quote.repeat(3), pos);
    const delimiter = triple ? quote.repeat(3) : quote;
    pos += delimiter.length;
    const raw = prefix.includes("r");
    const bytes = prefix.includes("b");
    let out = "";
    for (;;) {
      if (pos >= code.length) {
        this.fail(triple ? "unterminated triple-quoted string literal" : "unterminated string literal", start);
      }
      if (code.startsWith(delimiter, pos)) {
        pos += delimiter.length;
        break;
      }
      const ch = code[pos]!;
      if (ch === "\n" && !triple) this.fail("unterminated string literal", start);
      if (ch === "\\") {
        const next = code[pos + 1];
        if (next === undefined) this.fail("unterminated string literal", start);
        if (raw) {
          out += ch + next;
          pos += 2;
          continue;
        }
        const [text, length] = this.escape(pos, bytes);
        out += text;
        pos += length;
        continue;
      }
      if (bytes && ch.charCodeAt(0) > 127) this.fail("bytes can only contain ASCII literal characters", pos);
      out += ch;
      pos++;
    }
    this.pos = pos;
    const value = bytes ? new ForeignConstant("bytes") : out;
    this.tokens.push({ kind: "string", text: code.slice(start, pos), start, end: pos, value, fstring: prefix.includes("f") });
  }

  private escape(pos: number, bytes: boolean): [string, number] {
    const code = this.code;
    const next = code[pos + 1]!;
    const simple: Record<string, string> = {
      "\n": "", "\\": "\\", "'": "'", '"': '"', a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v",
    };
    if (next in simple) return [simple[next]!, 2];
    if (/[0-7]/.test(next)) {
      const digits = /^[0-7]{1,3}/.exec(code.slice(pos + 1))![0];
      return [String.fromCodePoint(parseInt(digits, 8)), 1 + digits.length];
    }
    const widths: Record<string, number> = { x: 2, ...(bytes ? {} : { u: 4, U: 8 }) };
    const width = widths[next];
    if (width !== undefined) {
      const digits = code.slice(pos + 2, pos + 2 + width);
      if (!new RegExp(`^[0-9a-fA-F]{${width}}$`).test(digits)) {
        this.fail(`(unicode error) 'unicodeescape' codec can't decode bytes: truncated \\${next}${"X".repeat(width)} escape`, pos);
      }
      const point = parseInt(digits, 16);
      if (point > 0x10ffff) this.fail("(unicode error) 'unicodeescape' codec can't decode bytes: illegal Unicode character", pos);
      return [String.fromCodePoint(point), 2 + width];
    }
    if (next === "N" && !bytes) this.fail("\\N{...} escapes are not supported in plan expressions", pos);
    return ["\\" + next, 2]; // an unknown escape stays as written (Python warns, then keeps it)
  }

  private operator(): void {
    const code = this.code;
    const start = this.pos;
    const op = OPERATORS.find((candidate) => code.startsWith(candidate, start));
    if (op === undefined) this.fail("invalid character", start);
    if (op === "(" || op === "[" || op === "{") {
      this.depth++;
      if (this.depth > MAX_PARENS) this.fail("too many nested parentheses", start);
    } else if (op === ")" || op === "]" || op === "}") {
      this.depth--;
      if (this.depth < 0) this.fail(`unmatched '${op}'`, start);
    }
    this.pos += op.length;
    this.tokens.push({ kind: "op", text: op, start, end: this.pos });
  }
}

const COMPARE_OPERATORS: Record<string, CompareOperator> = {
  "==": "Eq", "!=": "NotEq", "<": "Lt", "<=": "LtE", ">": "Gt", ">=": "GtE",
};

/** Parses `code` (an expression, leading blanks removed) into a tree; positions are offsets into `code`. */
export class Parser {
  private readonly tokens: Token[];
  private index = 0;
  private recursion = 0;

  constructor(
    private readonly code: string,
    private readonly fail: (message: string, offset: number) => never,
  ) {
    this.tokens = new Tokenizer(code, fail).run();
  }

  parse(): Node {
    let node = this.isOp("*") ? this.element() : this.expression();
    if (this.isOp(",")) {
      const elts = [node];
      while (this.isOp(",")) {
        this.next();
        if (this.peek().kind === "end") break;
        elts.push(this.isOp("*") ? this.element() : this.expression());
      }
      node = { kind: "Tuple", elts, start: elts[0]!.start, end: this.tokens[this.index - 1]!.end };
    }
    const token = this.peek();
    if (token.kind !== "end") this.fail("invalid syntax", token.start);
    return node;
  }

  // -- helpers --

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.index + offset, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const token = this.peek();
    if (token.kind !== "end") this.index++;
    return token;
  }

  private isOp(text: string, offset = 0): boolean {
    const token = this.peek(offset);
    return token.kind === "op" && token.text === text;
  }

  private isKeyword(text: string, offset = 0): boolean {
    const token = this.peek(offset);
    return token.kind === "name" && token.text === text;
  }

  private expect(text: string): Token {
    const token = this.peek();
    if (token.kind === "op" && token.text === text) return this.next();
    if (token.kind === "end") {
      this.fail("unexpected EOF while parsing", token.start);
    }
    return this.fail("invalid syntax", token.start);
  }

  private enter(start: number): void {
    this.recursion++;
    if (this.recursion > MAX_RECURSION) {
      throw new ExpressionSyntaxError("expression is nested too deeply to parse", {
        expression: this.code,
        offset: start,
        hint: "split it into simpler ones",
      });
    }
  }

  private leave(): void {
    this.recursion--;
  }

  // -- grammar (Python's, from the lowest precedence up) --

  /** expression: a conditional expression or a lambda. */
  expression(): Node {
    const start = this.peek().start;
    this.enter(start);
    try {
      if (this.isKeyword("lambda")) return this.lambda();
      if (this.isKeyword("yield")) {
        return this.fail("invalid syntax", start);
      }
      const body = this.disjunction();
      if (this.isKeyword("if")) {
        this.next();
        const test = this.disjunction();
        if (!this.isKeyword("else")) this.fail("expected 'else' after 'if' expression", this.peek().start);
        this.next();
        const orelse = this.expression();
        return { kind: "IfExp", test, body, orelse, start: body.start, end: orelse.end };
      }
      return body;
    } finally {
      this.leave();
    }
  }

  /** A namedexpr_test: `name := value` where Python allows it (inside brackets and arguments). */
  private namedExpression(): Node {
    if (this.peek().kind === "name" && this.isOp(":=", 1)) {
      const name = this.next();
      this.next();
      const value = this.expression();
      return { kind: "NamedExpr", target: { kind: "Name", id: name.text, start: name.start, end: name.end }, value, start: name.start, end: value.end };
    }
    return this.expression();
  }

  /** An element of a list, tuple, set or call: a starred expression or a named expression. */
  private element(): Node {
    if (this.isOp("*")) {
      const star = this.next();
      const value = this.bitOr();
      return { kind: "Starred", value, start: star.start, end: value.end };
    }
    return this.namedExpression();
  }

  private lambda(): Node {
    const start = this.next().start;
    let depth = 0;
    while (!(depth === 0 && this.isOp(":"))) {
      const token = this.next();
      if (token.kind === "end") this.fail("invalid syntax", token.start);
      if (token.kind === "op" && "([{".includes(token.text)) depth++;
      if (token.kind === "op" && ")]}".includes(token.text)) depth--;
    }
    this.next();
    const body = this.expression();
    return { kind: "Lambda", start, end: body.end };
  }

  private disjunction(): Node {
    const first = this.conjunction();
    if (!this.isKeyword("or")) return first;
    const values = [first];
    while (this.isKeyword("or")) {
      this.next();
      values.push(this.conjunction());
    }
    return { kind: "BoolOp", op: "Or", values, start: first.start, end: values[values.length - 1]!.end };
  }

  private conjunction(): Node {
    const first = this.inversion();
    if (!this.isKeyword("and")) return first;
    const values = [first];
    while (this.isKeyword("and")) {
      this.next();
      values.push(this.inversion());
    }
    return { kind: "BoolOp", op: "And", values, start: first.start, end: values[values.length - 1]!.end };
  }

  private inversion(): Node {
    if (this.isKeyword("not")) {
      const token = this.next();
      this.enter(token.start);
      try {
        const operand = this.inversion();
        return { kind: "UnaryOp", op: "Not", operand, start: token.start, end: operand.end };
      } finally {
        this.leave();
      }
    }
    return this.comparison();
  }

  private comparison(): Node {
    const left = this.bitOr();
    const ops: CompareOperator[] = [];
    const comparators: Node[] = [];
    for (;;) {
      const token = this.peek();
      let op: CompareOperator | undefined;
      if (token.kind === "op" && token.text in COMPARE_OPERATORS) {
        op = COMPARE_OPERATORS[token.text];
        this.next();
      } else if (this.isKeyword("in")) {
        op = "In";
        this.next();
      } else if (this.isKeyword("not") && this.isKeyword("in", 1)) {
        op = "NotIn";
        this.next();
        this.next();
      } else if (this.isKeyword("is")) {
        this.next();
        op = "Is";
        if (this.isKeyword("not")) {
          this.next();
          op = "IsNot";
        }
      }
      if (op === undefined) break;
      ops.push(op);
      comparators.push(this.bitOr());
    }
    if (ops.length === 0) return left;
    return { kind: "Compare", left, ops, comparators, start: left.start, end: comparators[comparators.length - 1]!.end };
  }

  private binaryLevel(operators: Record<string, BinaryOperator>, operand: () => Node): Node {
    let left = operand();
    for (;;) {
      const token = this.peek();
      if (token.kind !== "op" || !(token.text in operators)) return left;
      this.next();
      const right = operand();
      left = { kind: "BinOp", left, op: operators[token.text]!, right, start: left.start, end: right.end };
    }
  }

  private bitOr(): Node {
    return this.binaryLevel({ "|": "BitOr" }, () => this.bitXor());
  }

  private bitXor(): Node {
    return this.binaryLevel({ "^": "BitXor" }, () => this.bitAnd());
  }

  private bitAnd(): Node {
    return this.binaryLevel({ "&": "BitAnd" }, () => this.shift());
  }

  private shift(): Node {
    return this.binaryLevel({ "<<": "LShift", ">>": "RShift" }, () => this.sum());
  }

  private sum(): Node {
    return this.binaryLevel({ "+": "Add", "-": "Sub" }, () => this.term());
  }

  private term(): Node {
    return this.binaryLevel({ "*": "Mult", "/": "Div", "//": "FloorDiv", "%": "Mod", "@": "MatMult" }, () => this.factor());
  }

  private factor(): Node {
    const token = this.peek();
    const ops: Record<string, UnaryOperator> = { "-": "USub", "+": "UAdd", "~": "Invert" };
    if (token.kind === "op" && token.text in ops) {
      this.next();
      this.enter(token.start);
      try {
        const operand = this.factor();
        return { kind: "UnaryOp", op: ops[token.text]!, operand, start: token.start, end: operand.end };
      } finally {
        this.leave();
      }
    }
    return this.power();
  }

  private power(): Node {
    const base = this.awaitPrimary();
    if (!this.isOp("**")) return base;
    this.next();
    const exponent = this.factor();
    return { kind: "BinOp", left: base, op: "Pow", right: exponent, start: base.start, end: exponent.end };
  }

  private awaitPrimary(): Node {
    if (this.isKeyword("await")) {
      const token = this.next();
      const value = this.primary();
      return { kind: "Await", value, start: token.start, end: value.end };
    }
    return this.primary();
  }

  private primary(): Node {
    let node = this.atom();
    for (;;) {
      if (this.isOp(".")) {
        this.next();
        const name = this.next();
        if (name.kind !== "name" || KEYWORDS.has(name.text)) this.fail("invalid syntax", name.start);
        node = { kind: "Attribute", value: node, attr: name.text, start: node.start, end: name.end };
      } else if (this.isOp("(")) {
        node = this.call(node);
      } else if (this.isOp("[")) {
        this.next();
        const slice = this.subscript();
        const close = this.expect("]");
        node = { kind: "Subscript", value: node, slice, start: node.start, end: close.end };
      } else {
        return node;
      }
    }
  }

  private call(func: Node): Node {
    this.expect("(");
    const args: Node[] = [];
    const keywords: Keyword[] = [];
    while (!this.isOp(")")) {
      const token = this.peek();
      if (this.isOp("**")) {
        this.next();
        const value = this.expression();
        keywords.push({ arg: null, value, start: token.start, end: value.end });
      } else if (token.kind === "name" && this.isOp("=", 1) && !KEYWORDS.has(token.text)) {
        this.next();
        this.next();
        const value = this.expression();
        keywords.push({ arg: token.text, value, start: token.start, end: value.end });
      } else {
        const arg = this.element();
        if (this.isKeyword("for") || this.isKeyword("async")) {
          const generators = this.comprehensions();
          const close = this.peek();
          const only = args.length === 0 && keywords.length === 0 && close.kind === "op" && close.text === ")";
          if (!only) this.fail("Generator expression must be parenthesized", arg.start);
          // Python's node for a lone generator argument spans the call's parentheses.
          const open = this.tokens.findLast((t) => t.kind === "op" && t.text === "(" && t.start < arg.start)!;
          args.push({ kind: "GeneratorExp", elt: arg, generators, start: open.start, end: close.end });
          break;
        }
        if (keywords.length > 0 && arg.kind !== "Starred") {
          this.fail("positional argument follows keyword argument", arg.start);
        }
        args.push(arg);
      }
      if (!this.isOp(",")) break;
      this.next();
    }
    const close = this.expect(")");
    return { kind: "Call", func, args, keywords, start: func.start, end: close.end };
  }

  private subscript(): Node {
    const first = this.sliceItem();
    if (!this.isOp(",")) return first;
    const elts = [first];
    while (this.isOp(",")) {
      this.next();
      if (this.isOp("]")) break;
      elts.push(this.sliceItem());
    }
    return { kind: "Tuple", elts, start: first.start, end: elts[elts.length - 1]!.end };
  }

  private sliceItem(): Node {
    const start = this.peek().start;
    let lower: Node | null = null;
    if (!this.isOp(":")) {
      lower = this.namedExpression();
      if (!this.isOp(":")) return lower;
    }
    this.next();
    let upper: Node | null = null;
    let step: Node | null = null;
    if (!this.isOp(":") && !this.isOp("]") && !this.isOp(",")) upper = this.expression();
    let end = upper?.end ?? this.tokens[this.index - 1]!.end;
    if (this.isOp(":")) {
      end = this.next().end;
      if (!this.isOp("]") && !this.isOp(",")) {
        step = this.expression();
        end = step.end;
      }
    }
    return { kind: "Slice", lower, upper, step, start, end };
  }

  private comprehensions(): Comprehension[] {
    const generators: Comprehension[] = [];
    while (this.isKeyword("for") || this.isKeyword("async")) {
      let isAsync = false;
      if (this.isKeyword("async")) {
        this.next();
        isAsync = true;
      }
      if (!this.isKeyword("for")) this.fail("invalid syntax", this.peek().start);
      this.next();
      const target = this.targets();
      if (!this.isKeyword("in")) this.fail("invalid syntax", this.peek().start);
      this.next();
      const iter = this.disjunction();
      const ifs: Node[] = [];
      while (this.isKeyword("if")) {
        this.next();
        ifs.push(this.disjunction());
      }
      generators.push({ target, iter, ifs, isAsync });
    }
    return generators;
  }

  private targets(): Node {
    const first = this.bitOr();
    if (!this.isOp(",")) return first;
    const elts = [first];
    while (this.isOp(",")) {
      this.next();
      if (this.isKeyword("in")) break;
      elts.push(this.bitOr());
    }
    return { kind: "Tuple", elts, start: first.start, end: elts[elts.length - 1]!.end };
  }

  private atom(): Node {
    const token = this.peek();
    if (token.kind === "name") {
      if (token.text === "True" || token.text === "False" || token.text === "None") {
        this.next();
        const value = token.text === "None" ? null : token.text === "True";
        return { kind: "Constant", value, start: token.start, end: token.end };
      }
      if (KEYWORDS.has(token.text)) return this.fail("invalid syntax", token.start);
      this.next();
      return { kind: "Name", id: token.text, start: token.start, end: token.end };
    }
    if (token.kind === "number") {
      this.next();
      return { kind: "Constant", value: token.value!, start: token.start, end: token.end };
    }
    if (token.kind === "string") return this.strings();
    if (token.kind === "op") {
      if (token.text === "(") return this.parenthesized();
      if (token.text === "[") return this.list();
      if (token.text === "{") return this.braces();
      if (token.text === "...") {
        this.next();
        return { kind: "Constant", value: new ForeignConstant("ellipsis"), start: token.start, end: token.end };
      }
    }
    if (token.kind === "end") return this.fail("unexpected EOF while parsing", token.start);
    return this.fail("invalid syntax", token.start);
  }

  private strings(): Node {
    const first = this.peek();
    let text = "";
    let bytes = false;
    let fstring = false;
    let count = 0;
    let end = first.end;
    while (this.peek().kind === "string") {
      const token = this.next();
      if (token.fstring) fstring = true;
      if (token.value instanceof ForeignConstant) bytes = true;
      else text += token.value as string;
      if (count > 0 && bytes !== token.value instanceof ForeignConstant) {
        this.fail("cannot mix bytes and nonbytes literals", token.start);
      }
      count++;
      end = token.end;
    }
    if (fstring) return { kind: "JoinedStr", start: first.start, end };
    return { kind: "Constant", value: bytes ? new ForeignConstant("bytes") : text, start: first.start, end };
  }

  private parenthesized(): Node {
    const open = this.next();
    if (this.isOp(")")) {
      const close = this.next();
      return { kind: "Tuple", elts: [], start: open.start, end: close.end };
    }
    if (this.isKeyword("yield")) {
      this.next();
      let kind: "Yield" | "YieldFrom" = "Yield";
      if (this.isKeyword("from")) {
        this.next();
        kind = "YieldFrom";
      }
      const value = this.isOp(")") ? null : this.expression();
      const close = this.expect(")");
      return { kind, value, start: open.start + 1, end: close.end - 1 };
    }
    const first = this.element();
    if (this.isKeyword("for") || this.isKeyword("async")) {
      const generators = this.comprehensions();
      const close = this.expect(")");
      return { kind: "GeneratorExp", elt: first, generators, start: open.start, end: close.end };
    }
    if (this.isOp(")")) {
      this.next();
      if (first.kind === "Starred") this.fail("cannot use starred expression here", first.start);
      return first; // a parenthesized expression keeps its own position, as in Python
    }
    const elts = [first];
    while (this.isOp(",")) {
      this.next();
      if (this.isOp(")")) break;
      elts.push(this.element());
    }
    const close = this.expect(")");
    return { kind: "Tuple", elts, start: open.start, end: close.end };
  }

  private list(): Node {
    const open = this.next();
    if (this.isOp("]")) {
      const close = this.next();
      return { kind: "List", elts: [], start: open.start, end: close.end };
    }
    const first = this.element();
    if (this.isKeyword("for") || this.isKeyword("async")) {
      const generators = this.comprehensions();
      const close = this.expect("]");
      return { kind: "ListComp", elt: first, generators, start: open.start, end: close.end };
    }
    const elts = [first];
    while (this.isOp(",")) {
      this.next();
      if (this.isOp("]")) break;
      elts.push(this.element());
    }
    const close = this.expect("]");
    return { kind: "List", elts, start: open.start, end: close.end };
  }

  private braces(): Node {
    const open = this.next();
    if (this.isOp("}")) {
      const close = this.next();
      return { kind: "Dict", keys: [], values: [], start: open.start, end: close.end };
    }
    if (this.isOp("**")) return this.dictRest(open, null);
    const first = this.element();
    if (this.isOp(":")) return this.dictRest(open, first);
    if (this.isKeyword("for") || this.isKeyword("async")) {
      const generators = this.comprehensions();
      const close = this.expect("}");
      return { kind: "SetComp", elt: first, generators, start: open.start, end: close.end };
    }
    const elts = [first];
    while (this.isOp(",")) {
      this.next();
      if (this.isOp("}")) break;
      elts.push(this.element());
    }
    const close = this.expect("}");
    return { kind: "Set", elts, start: open.start, end: close.end };
  }

  private dictRest(open: Token, firstKey: Node | null): Node {
    const keys: (Node | null)[] = [];
    const values: Node[] = [];
    const entry = (key: Node | null): void => {
      if (key === null) {
        this.expect("**");
        values.push(this.bitOr());
        keys.push(null);
        return;
      }
      this.expect(":");
      keys.push(key);
      values.push(this.expression());
    };
    entry(firstKey);
    if (firstKey !== null && keys.length === 1 && (this.isKeyword("for") || this.isKeyword("async"))) {
      const generators = this.comprehensions();
      const close = this.expect("}");
      return { kind: "DictComp", key: firstKey, value: values[0]!, generators, start: open.start, end: close.end };
    }
    while (this.isOp(",")) {
      this.next();
      if (this.isOp("}")) break;
      entry(this.isOp("**") ? null : this.expression());
    }
    const close = this.expect("}");
    return { kind: "Dict", keys, values, start: open.start, end: close.end };
  }
}

/** The direct children of a node that are expressions (what Python's `ast.iter_child_nodes` yields, flattened). */
export function children(node: Node): Node[] {
  switch (node.kind) {
    case "Constant":
    case "Name":
    case "Lambda":
    case "JoinedStr":
      return [];
    case "Attribute":
      return [node.value];
    case "Subscript":
      return [node.value, node.slice];
    case "Slice":
      return [node.lower, node.upper, node.step].filter((n): n is Node => n !== null);
    case "List":
    case "Tuple":
    case "Set":
      return node.elts;
    case "Dict":
      return [...node.keys.filter((n): n is Node => n !== null), ...node.values];
    case "UnaryOp":
      return [node.operand];
    case "BinOp":
      return [node.left, node.right];
    case "BoolOp":
      return node.values;
    case "Compare":
      return [node.left, ...node.comparators];
    case "IfExp":
      return [node.test, node.body, node.orelse];
    case "Call":
      return [node.func, ...node.args, ...node.keywords.map((k) => k.value)];
    case "ListComp":
    case "SetComp":
    case "GeneratorExp":
      return [node.elt, ...node.generators.flatMap((g) => [g.target, g.iter, ...g.ifs])];
    case "DictComp":
      return [node.key, node.value, ...node.generators.flatMap((g) => [g.target, g.iter, ...g.ifs])];
    case "NamedExpr":
      return [node.target, node.value];
    case "Await":
    case "Yield":
    case "YieldFrom":
    case "Starred":
      return node.value ? [node.value] : [];
  }
}
