/**
 * Functions, as a plan declares them: `infer` (a model call held to a contract), `compute` (code: a sandboxed
 * expression, or a TypeScript function), and `awaitHuman` (a person's typed decision). Each is a definition: it runs
 * as a step of a flow (`step("id", fn, inputs)`) or on its own (`stratum.run(fn, inputs)`), and exports to a plan.
 */

import type { z } from "zod";

import type { Budget } from "./budget.js";
import { type Contract, type Infer, resolveFields, resolveType, type TypeLike } from "./contract.js";
import { DefinitionError } from "./errors.js";
import { compileExpression } from "./expressions/index.js";
import type { ContractSpec, FieldSpec } from "./schema.js";

/**
 * A condition: an expression string of the plan language (sandboxed, exportable), or a function of the names an
 * expression would see (`result` and the inputs), which runs only in TypeScript and cannot be exported.
 */
export type Condition = string | ((names: Record<string, any>) => unknown);

/** Refine feedback: an expression (its text, or JSON of its value, is fed back) or a function returning text. */
export type Feedback = string | ((names: Record<string, any>) => string);

export interface RefineOptions {
  until: Condition;
  feedback?: Feedback;
  /** At most this many answers (default 3). */
  maxIterations?: number;
}

type Inputs = Record<string, TypeLike>;
export type InputValues<I extends Inputs> = { [K in keyof I]: Infer<I[K]> };

interface Common<I extends Inputs, O extends TypeLike> {
  name: string;
  description?: string;
  input: I;
  output: O;
  given?: Condition | Condition[];
  ensure?: Condition | Condition[];
  /** How many times a violated `ensure` (or contract) is retried (default 2). */
  retries?: number;
  budget?: Budget;
}

export interface InferOptions<I extends Inputs, O extends TypeLike> extends Common<I, O> {
  intent: string;
  context?: string | string[];
  /** An Anthropic model (`claude-haiku-4-5`, or the plan spelling `anthropic/claude-haiku-4-5`). */
  model?: string;
  temperature?: number;
  maxTokens?: number;
  refine?: RefineOptions;
}

export interface ComputeOptions<I extends Inputs, O extends TypeLike> extends Common<I, O> {
  /** A sandboxed expression over the inputs (exportable). */
  expr?: string;
  /** A TypeScript function of the inputs (runs only in TypeScript). */
  fn?: (inputs: InputValues<I>) => Infer<O> | Promise<Infer<O>>;
}

export interface HumanOptions<I extends Inputs, O extends TypeLike> {
  name: string;
  description?: string;
  question: string;
  input?: I;
  /** The decision's type: a contract of flat fields, or a string, number, integer or boolean. */
  output: O;
  /** The allowed answers: the enum of the decision's first required field (or of the value itself). */
  options?: unknown[];
  /** Seconds, or `30s`, `5m`, `24h`, `2d`. */
  timeout?: number | string;
  /** `raise` (HITLTimeoutError, the default) or the decision to use when nobody answers in time. */
  onTimeout?: "raise" | Infer<O>;
  budget?: Budget;
}

interface Resolved {
  inputSpecs: Record<string, FieldSpec>;
  outputSpec: FieldSpec;
  inputZod: Record<string, z.ZodType>;
  outputZod: z.ZodType;
  contracts: Map<string, ContractSpec>;
  given: Condition[];
  ensure: Condition[];
}

export interface InferFn<I extends Inputs = Inputs, O extends TypeLike = TypeLike> extends Resolved {
  readonly kind: "infer";
  readonly options: InferOptions<I, O>;
  readonly name: string;
  readonly context: string[];
  readonly retries: number;
  readonly __types?: { input: InputValues<I>; output: Infer<O> };
}

export interface ComputeFn<I extends Inputs = Inputs, O extends TypeLike = TypeLike> extends Resolved {
  readonly kind: "compute";
  readonly options: ComputeOptions<I, O>;
  readonly name: string;
  readonly __types?: { input: InputValues<I>; output: Infer<O> };
}

export interface HumanFn<I extends Inputs = Inputs, O extends TypeLike = TypeLike> extends Resolved {
  readonly kind: "human";
  readonly options: HumanOptions<I, O>;
  readonly name: string;
  readonly timeoutSeconds: number | undefined;
  readonly __types?: { input: InputValues<I>; output: Infer<O> };
}

export type StratumFunction = InferFn<any, any> | ComputeFn<any, any> | HumanFn<any, any>;

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function list<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function checkConditions(conditions: (Condition | Feedback)[], path: string): void {
  conditions.forEach((condition, index) => {
    if (typeof condition === "string") {
      try {
        compileExpression(condition);
      } catch (error) {
        throw new DefinitionError(`${condition}: ${(error as Error).message}`, `${path}[${index}]`);
      }
    }
  });
}

function resolve(kind: string, name: string, input: Inputs, output: TypeLike, given: Condition[], ensure: Condition[]): Resolved {
  if (!NAME.test(name)) throw new DefinitionError(`'${name}' is not a valid function name`, `functions.${name}`);
  const path = `functions.${name}`;
  const inputs = resolveFields(input, `${path}.input`);
  const out = resolveType(output, `${path}.output`);
  const contracts = new Map([...inputs.contracts, ...out.contracts]);
  const inputZod: Record<string, z.ZodType> = {};
  for (const [key, type] of Object.entries(input)) inputZod[key] = isContractLike(type) ? type.zod : type;
  checkConditions(given, `${path}.given`);
  checkConditions(ensure, `${path}.ensure`);
  void kind;
  return { inputSpecs: inputs.specs, outputSpec: out.spec, inputZod, outputZod: out.zod, contracts, given, ensure };
}

function isContractLike(type: TypeLike): type is Contract {
  return (type as { kind?: unknown }).kind === "contract";
}

/** A function done by a model: the answer must match `output` and `ensure`, or is retried with the violations. */
export function infer<I extends Inputs, O extends TypeLike>(options: InferOptions<I, O>): InferFn<I, O> {
  const given = list(options.given);
  const ensure = list(options.ensure);
  const resolved = resolve("infer", options.name, options.input, options.output, given, ensure);
  if (!options.intent || !options.intent.trim()) throw new DefinitionError("an infer function needs an intent", `functions.${options.name}.intent`);
  const retries = options.retries ?? 2;
  if (!(Number.isInteger(retries) && retries >= 0 && retries <= 20)) {
    throw new DefinitionError(`retries must be an integer from 0 to 20, got ${retries}`, `functions.${options.name}.retries`);
  }
  if (options.temperature !== undefined && !(options.temperature >= 0 && options.temperature <= 2)) {
    throw new DefinitionError(`temperature must be from 0 to 2, got ${options.temperature}`, `functions.${options.name}.temperature`);
  }
  if (options.refine) {
    checkConditions([options.refine.until], `functions.${options.name}.refine.until`);
    if (options.refine.feedback !== undefined) checkConditions([options.refine.feedback], `functions.${options.name}.refine.feedback`);
    const max = options.refine.maxIterations ?? 3;
    if (!(Number.isInteger(max) && max >= 1 && max <= 100)) {
      throw new DefinitionError(`maxIterations must be an integer from 1 to 100, got ${max}`, `functions.${options.name}.refine.max_iterations`);
    }
  }
  return Object.freeze({
    kind: "infer" as const,
    name: options.name,
    options,
    context: list(options.context),
    retries,
    ...resolved,
  });
}

/** The same infer function, asked again with feedback until `until` holds (at most `maxIterations` answers). */
export function refine<I extends Inputs, O extends TypeLike>(fn: InferFn<I, O>, options: RefineOptions & { name?: string }): InferFn<I, O> {
  const { name, ...rest } = options;
  return infer({ ...fn.options, name: name ?? fn.name, refine: rest });
}

/** A function done by code: a sandboxed expression (`expr`) or a TypeScript function (`fn`). */
export function compute<I extends Inputs, O extends TypeLike>(options: ComputeOptions<I, O>): ComputeFn<I, O> {
  if ((options.expr === undefined) === (options.fn === undefined)) {
    throw new DefinitionError("a compute function needs exactly one of `expr` or `fn`", `functions.${options.name}`);
  }
  const resolved = resolve("compute", options.name, options.input, options.output, list(options.given), list(options.ensure));
  if (options.expr !== undefined) checkConditions([options.expr], `functions.${options.name}.expr`);
  return Object.freeze({ kind: "compute" as const, name: options.name, options, ...resolved });
}

const DURATION = /^(\d+(?:\.\d+)?)\s*([smhd])$/;

export function durationSeconds(value: number | string | undefined, path: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "number") {
    if (!(value > 0)) throw new DefinitionError(`a timeout must be greater than 0, got ${value}`, path);
    return value;
  }
  const match = DURATION.exec(value.trim());
  if (!match) throw new DefinitionError(`'${value}' is not a duration (seconds, or 30s, 5m, 24h, 2d)`, path);
  return Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[match[2] as "s" | "m" | "h" | "d"];
}

/** A decision asked of a person, through the runtime's review sink; typed by `output`. */
export function awaitHuman<I extends Inputs, O extends TypeLike>(options: HumanOptions<I, O>): HumanFn<I, O> {
  const resolved = resolve("human", options.name, options.input ?? ({} as I), options.output, [], []);
  if (!options.question?.trim()) throw new DefinitionError("a human step needs a question", `functions.${options.name}.question`);
  return Object.freeze({
    kind: "human" as const,
    name: options.name,
    options,
    timeoutSeconds: durationSeconds(options.timeout, `functions.${options.name}.timeout`),
    ...resolved,
  });
}
