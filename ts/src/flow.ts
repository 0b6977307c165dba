/**
 * Flows: typed functions made of steps, built once, when defined, into the same graph a plan declares. The builder
 * callback receives references (`input.text`, a step's result and its fields) rather than values: a step's inputs
 * are references, literals, or literals holding references, so the graph is known before anything runs. The
 * runtime runs it as the plan engine does (independent steps overlap), and `exportPlan` writes it as is.
 */

import type { Budget } from "./budget.js";
import { type Infer, resolveFields, resolveType, type TypeLike } from "./contract.js";
import { DefinitionError } from "./errors.js";
import { compileExpression } from "./expressions/index.js";
import type { Condition, InputValues, StratumFunction } from "./functions.js";
import type { ContractSpec, FieldSpec } from "./schema.js";

const REF = Symbol.for("stratum.ref");

/** Where a reference points: `["input", "text"]`, `["steps", "classify", "output", "label"]`. */
export class RefPath {
  constructor(readonly parts: readonly (string | number)[]) {}

  get step(): string | undefined {
    return this.parts[0] === "steps" ? String(this.parts[1]) : undefined;
  }

  /** The plan's spelling: `$.steps.classify.output.label`, `$.input.items[0]`. */
  toString(): string {
    return "$" + this.parts.map((part) => (typeof part === "number" ? `[${part}]` : `.${part}`)).join("");
  }
}

/** A reference to a value of type T while the flow is built: its fields are references too. */
export type Ref<T> = { readonly [REF]: RefPath } & (T extends readonly (infer E)[]
  ? { readonly [index: number]: Ref<E> }
  : T extends object
    ? { readonly [K in keyof T]-?: Ref<T[K]> }
    : unknown);

/** What a step input may be bound to: a value, a reference, or a literal holding references. */
export type Bind<T> = T | Ref<T> | (T extends object ? { [K in keyof T]: Bind<T[K]> } : never);

export function refPath(value: unknown): RefPath | undefined {
  if ((typeof value === "object" || typeof value === "function") && value !== null) {
    const path = (value as Record<symbol, unknown>)[REF];
    if (path instanceof RefPath) return path;
  }
  return undefined;
}

function misuse(path: RefPath): DefinitionError {
  return new DefinitionError(
    `${path} is a reference while the flow is built, not a value: pass it as a step input, and test values with ` +
      "`when:` expressions (a flow's steps are declared, not computed)",
  );
}

export function makeRef<T>(path: RefPath): Ref<T> {
  const target = function () {} as unknown as object;
  return new Proxy(target, {
    get(_, key) {
      if (key === REF) return path;
      if (key === "then") return undefined; // awaiting a reference by mistake must not hang
      if (typeof key === "symbol") {
        if (key === Symbol.toPrimitive) return () => { throw misuse(path); };
        return undefined;
      }
      if (key === "toJSON" || key === "valueOf" || key === "toString") return () => { throw misuse(path); };
      const index = /^(0|[1-9]\d*)$/.test(key) ? Number(key) : key;
      return makeRef(new RefPath([...path.parts, index]));
    },
    apply() {
      throw misuse(path);
    },
    has() {
      throw misuse(path);
    },
    ownKeys() {
      throw misuse(path);
    },
    set() {
      throw misuse(path);
    },
  }) as Ref<T>;
}

export interface StepOptions {
  /** Run only when this condition over `input` and `steps` holds. */
  when?: Condition;
  /** Skip when this condition holds (the 0.1 spelling). */
  skipIf?: Condition;
  /** Steps that must finish first though no data says so. */
  dependsOn?: string[];
  budget?: Budget;
  description?: string;
}

export interface CallStep {
  kind: "call";
  id: string;
  target: StratumFunction | FlowDef;
  /** Input values with references as RefPath objects. */
  inputs: Record<string, unknown>;
  when?: Condition | undefined;
  skipIf?: Condition | undefined;
  dependsOn: string[];
  budget?: Budget | undefined;
  description?: string | undefined;
}

export type Require = "all" | "any" | number;

export interface GroupStep {
  kind: "parallel" | "race";
  id: string;
  branches: CallStep[];
  require: Require;
  validate?: Condition | undefined;
  when?: Condition | undefined;
  skipIf?: Condition | undefined;
  dependsOn: string[];
  description?: string | undefined;
}

export type FlowStep = CallStep | GroupStep;

/** A branch of a parallel group or a race: a call not yet placed in the flow. */
export interface Branch {
  readonly kind: "branch";
  readonly id: string;
  readonly target: StratumFunction | FlowDef;
  readonly inputs: Record<string, unknown>;
  readonly options: StepOptions;
}

type Target = StratumFunction | FlowDef;
type TargetInput<F> = F extends { __types?: { input: infer I } } ? I : F extends FlowDef<infer I, any> ? I : Record<string, unknown>;
type TargetOutput<F> = F extends { __types?: { output: infer O } } ? O : F extends FlowDef<any, infer O> ? O : unknown;
type Bindings<F> = { [K in keyof TargetInput<F>]: Bind<TargetInput<F>[K]> };

export interface FlowBuilder<I> {
  /** The flow's inputs, as references. */
  readonly input: Ref<I>;
  /** A call step: a function or a sub-flow, with inputs bound to references and literals. Returns its output's reference. */
  step<F extends Target>(id: string, target: F, inputs: Bindings<F>, options?: StepOptions): Ref<TargetOutput<F>>;
  /** A branch for `parallel` or `race`. */
  branch<F extends Target>(id: string, target: F, inputs: Bindings<F>): Branch;
  /**
   * Branches run at once; `require`: "all" (default; a list of outputs), "any" (the first success), N (at least N
   * succeed; the successes in order) or 0 (a list of `{ok, output}` / `{ok, error}`). `validate` sees `outputs`.
   */
  parallel<T = unknown>(id: string, branches: Branch[], options?: StepOptions & { require?: Require; validate?: Condition }): Ref<T>;
  /** Branches run at once; the first success wins and the others are cancelled. */
  race<T = unknown>(id: string, branches: Branch[], options?: StepOptions): Ref<T>;
}

export interface FlowOptions<I extends Record<string, TypeLike>, O extends TypeLike> {
  name: string;
  description?: string;
  input: I;
  output?: O;
  budget?: Budget;
  maxConcurrency?: number;
}

export interface FlowDef<I = any, O = any> {
  readonly kind: "flow";
  readonly name: string;
  readonly options: FlowOptions<any, any>;
  readonly steps: readonly FlowStep[];
  /** References tried in order for the result (the first whose step ran); empty: the last step's output. */
  readonly result: readonly RefPath[];
  readonly inputSpecs: Record<string, FieldSpec>;
  readonly outputSpec: FieldSpec | undefined;
  readonly contracts: Map<string, ContractSpec>;
  readonly __types?: { input: I; output: O };
}

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function bindings(value: unknown, path: string, depth = 0): unknown {
  if (depth > 64) throw new DefinitionError("a step input nests more than 64 levels", path);
  const ref = refPath(value);
  if (ref) return ref;
  if (Array.isArray(value)) return value.map((item, i) => bindings(item, `${path}[${i}]`, depth + 1));
  if (typeof value === "function") throw new DefinitionError("a function is not a step input", path);
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = bindings(item, `${path}.${key}`, depth + 1);
    return out;
  }
  if (typeof value === "number" && !Number.isFinite(value)) throw new DefinitionError("a step input must be JSON", path);
  return value;
}

function checkCondition(condition: Condition | undefined, path: string): void {
  if (typeof condition !== "string") return;
  try {
    compileExpression(condition);
  } catch (error) {
    throw new DefinitionError(`${condition}: ${(error as Error).message}`, path);
  }
}

/** Define a flow: `build` declares its steps once, with references; the flow runs as a graph of those steps. */
export function flow<I extends Record<string, TypeLike>, O extends TypeLike>(
  options: FlowOptions<I, O>,
  build: (flow: FlowBuilder<InputValues<I>>) => Ref<unknown> | Ref<unknown>[] | void,
): FlowDef<InputValues<I>, O extends TypeLike ? Infer<O> : unknown> {
  const name = options.name;
  if (!NAME.test(name)) throw new DefinitionError(`'${name}' is not a valid flow name`, `flows.${name}`);
  const where = `flows.${name}`;
  const steps: FlowStep[] = [];
  const ids = new Set<string>();
  const claim = (id: string, path: string): void => {
    if (!NAME.test(id)) throw new DefinitionError(`'${id}' is not a valid step id`, path);
    if (ids.has(id)) throw new DefinitionError(`duplicate step id '${id}'`, path);
    ids.add(id);
  };
  const call = (id: string, target: Target, inputs: Record<string, unknown>, stepOptions: StepOptions, path: string): CallStep => {
    if (!target || !["infer", "compute", "human", "flow"].includes((target as { kind: string }).kind)) {
      throw new DefinitionError(`step '${id}' calls something that is not a Stratum function or flow`, path);
    }
    checkCondition(stepOptions.when, `${path}.when`);
    checkCondition(stepOptions.skipIf, `${path}.skip_if`);
    return {
      kind: "call",
      id,
      target,
      inputs: bindings(inputs, `${path}.inputs`) as Record<string, unknown>,
      when: stepOptions.when,
      skipIf: stepOptions.skipIf,
      dependsOn: stepOptions.dependsOn ?? [],
      budget: stepOptions.budget,
      description: stepOptions.description,
    };
  };
  const builder: FlowBuilder<InputValues<I>> = {
    input: makeRef(new RefPath(["input"])),
    step(id, target, inputs, stepOptions = {}) {
      const path = `${where}.steps[${steps.length}]`;
      claim(id, path);
      steps.push(call(id, target, inputs as Record<string, unknown>, stepOptions, path));
      return makeRef(new RefPath(["steps", id, "output"]));
    },
    branch(id, target, inputs) {
      return { kind: "branch", id, target, inputs: inputs as Record<string, unknown>, options: {} };
    },
    parallel(id, branches, groupOptions = {}) {
      return group("parallel", id, branches, groupOptions);
    },
    race(id, branches, groupOptions = {}) {
      return group("race", id, branches, groupOptions);
    },
  };
  function group<T>(kind: "parallel" | "race", id: string, branches: Branch[], groupOptions: StepOptions & { require?: Require; validate?: Condition }): Ref<T> {
    const path = `${where}.steps[${steps.length}]`;
    claim(id, path);
    if (!branches.length) throw new DefinitionError(`a ${kind} group needs at least one branch`, path);
    const require = groupOptions.require ?? "all";
    if (typeof require === "number" && !(Number.isInteger(require) && require >= 0 && require <= branches.length)) {
      throw new DefinitionError(`require: ${require} but the group has ${branches.length} steps`, `${path}.${kind}.require`);
    }
    checkCondition(groupOptions.validate, `${path}.${kind}.validate`);
    checkCondition(groupOptions.when, `${path}.when`);
    const calls = branches.map((branch, i) => {
      claim(branch.id, `${path}.${kind}.steps[${i}]`);
      return call(branch.id, branch.target, branch.inputs, branch.options, `${path}.${kind}.steps[${i}]`);
    });
    steps.push({
      kind,
      id,
      branches: calls,
      require: kind === "race" ? "any" : require,
      validate: groupOptions.validate,
      when: groupOptions.when,
      skipIf: groupOptions.skipIf,
      dependsOn: groupOptions.dependsOn ?? [],
      description: groupOptions.description,
    });
    return makeRef(new RefPath(["steps", id, "output"]));
  }
  const returned = build(builder);
  const result = (returned === undefined ? [] : Array.isArray(returned) ? returned : [returned]).map((item) => {
    const path = refPath(item);
    if (!path) throw new DefinitionError("a flow returns a reference (an input, a step's result or a field of one), or a list of them", `${where}.result`);
    return path;
  });
  if (!steps.length) throw new DefinitionError("a flow needs at least one step", `${where}.steps`);
  const inputs = resolveFields(options.input, `${where}.input`);
  const output = options.output !== undefined ? resolveType(options.output, `${where}.output`) : undefined;
  const contracts = new Map([...inputs.contracts, ...(output?.contracts ?? [])]);
  return Object.freeze({
    kind: "flow" as const,
    name,
    options,
    steps,
    result,
    inputSpecs: inputs.specs,
    outputSpec: output?.spec,
    contracts,
  }) as FlowDef<InputValues<I>, O extends TypeLike ? Infer<O> : unknown>;
}
