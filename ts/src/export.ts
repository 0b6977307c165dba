/**
 * Export a module's contracts, functions and flows as a `.stratum.yaml` plan (version "1") that `stratum validate`
 * accepts and `stratum serve` runs: every flow becomes an MCP tool. What has no plan form (a TypeScript function
 * as a condition or as a compute implementation) is reported, every problem at once with its path, and nothing is
 * written.
 */

import { Document, isScalar, isSeq, visit } from "yaml";

import { DefinitionError } from "./errors.js";
import type { CallStep, FlowDef, FlowStep } from "./flow.js";
import { RefPath } from "./flow.js";
import type { Condition, Feedback, StratumFunction } from "./functions.js";
import type { ContractSpec, FieldSpec } from "./schema.js";
import { isContractType } from "./schema.js";

type Exportable = StratumFunction | FlowDef;

const FIELD_ORDER = [
  "type", "description", "enum", "const", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
  "minLength", "maxLength", "pattern", "format", "items", "minItems", "maxItems", "uniqueItems", "properties",
  "required", "opaque",
] as const;

function specData(spec: FieldSpec, short = false): unknown {
  const data: Record<string, unknown> = {};
  for (const key of FIELD_ORDER) {
    const value = spec[key];
    if (value === undefined) continue;
    if (key === "required") {
      if (value === false) data[key] = false;
    } else if (key === "opaque") {
      if (value === true) data[key] = true;
    } else if (key === "items") data[key] = specData(value as FieldSpec);
    else if (key === "properties") data[key] = fieldsData(value as Record<string, FieldSpec>);
    else data[key] = value;
  }
  if (short && Object.keys(data).length === 1 && isContractType(spec)) return spec.type;
  return data;
}

function fieldsData(fields: Record<string, FieldSpec>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) out[key] = specData(value);
  return out;
}

function modelName(model: string): string {
  return model.includes("/") ? model : `anthropic/${model}`;
}

class Exporter {
  readonly problems: string[] = [];
  readonly contracts = new Map<string, ContractSpec>();
  readonly functions = new Map<string, StratumFunction>();
  readonly flows = new Map<string, FlowDef>();

  add(item: Exportable, where: string): void {
    if (item.kind === "flow") {
      const existing = this.flows.get(item.name);
      if (existing === item) return;
      if (existing) {
        this.problems.push(`flows.${item.name}: two different flows are named '${item.name}' (${where})`);
        return;
      }
      this.flows.set(item.name, item);
      this.addContracts(item.contracts);
      for (const step of item.steps) for (const call of step.kind === "call" ? [step] : step.branches) this.add(call.target, `flows.${item.name}`);
      return;
    }
    const existing = this.functions.get(item.name);
    if (existing === item) return;
    if (existing) {
      this.problems.push(`functions.${item.name}: two different functions are named '${item.name}' (${where})`);
      return;
    }
    this.functions.set(item.name, item);
    this.addContracts(item.contracts);
  }

  addContracts(contracts: ReadonlyMap<string, ContractSpec>): void {
    for (const [name, spec] of contracts) {
      const existing = this.contracts.get(name);
      if (existing && JSON.stringify(existing) !== JSON.stringify(spec)) {
        this.problems.push(`contracts.${name}: two different contracts are named '${name}'`);
      }
      this.contracts.set(name, spec);
    }
  }

  condition(condition: Condition | Feedback | undefined, path: string): string | undefined {
    if (condition === undefined) return undefined;
    if (typeof condition === "string") return condition;
    const text = condition.toString().split(/\s+/).join(" ");
    this.problems.push(`${path}: a TypeScript function (${text.length > 80 ? text.slice(0, 77) + "..." : text}) cannot be exported (write it as an expression string)`);
    return undefined;
  }

  conditions(conditions: readonly Condition[], path: string): string[] | undefined {
    if (!conditions.length) return undefined;
    return conditions.map((c, i) => this.condition(c, `${path}[${i}]`) ?? "");
  }

  functionData(fn: StratumFunction): Record<string, unknown> {
    const path = `functions.${fn.name}`;
    const data: Record<string, unknown> = { mode: fn.kind };
    if (fn.options.description) data["description"] = fn.options.description;
    if (fn.kind === "infer") {
      const o = fn.options;
      data["intent"] = o.intent;
      if (fn.context.length) data["context"] = [...fn.context];
      data["input"] = fieldsData(fn.inputSpecs);
      data["output"] = specData(fn.outputSpec, true);
      const given = this.conditions(fn.given, `${path}.given`);
      if (given) data["given"] = given;
      const ensure = this.conditions(fn.ensure, `${path}.ensure`);
      if (ensure) data["ensure"] = ensure;
      if (fn.retries !== 2) data["retries"] = fn.retries;
      if (o.model) data["model"] = modelName(o.model);
      if (o.temperature !== undefined) data["temperature"] = o.temperature;
      if (o.maxTokens !== undefined) data["max_tokens"] = o.maxTokens;
      if (o.budget) data["budget"] = { ...o.budget };
      if (o.refine) {
        const refine: Record<string, unknown> = { until: this.condition(o.refine.until, `${path}.refine.until`) };
        if (o.refine.feedback !== undefined) refine["feedback"] = this.condition(o.refine.feedback, `${path}.refine.feedback`);
        refine["max_iterations"] = o.refine.maxIterations ?? 3;
        data["refine"] = refine;
      }
    } else if (fn.kind === "compute") {
      data["input"] = fieldsData(fn.inputSpecs);
      data["output"] = specData(fn.outputSpec, true);
      const given = this.conditions(fn.given, `${path}.given`);
      if (given) data["given"] = given;
      const ensure = this.conditions(fn.ensure, `${path}.ensure`);
      if (ensure) data["ensure"] = ensure;
      if (fn.options.budget) data["budget"] = { ...fn.options.budget };
      if (fn.options.expr !== undefined) data["expr"] = fn.options.expr;
      else this.problems.push(`${path}: a compute function written in TypeScript (fn) cannot be exported (write it as an expression: expr)`);
    } else {
      const o = fn.options;
      data["question"] = o.question;
      if (Object.keys(fn.inputSpecs).length) data["input"] = fieldsData(fn.inputSpecs);
      data["output"] = specData(fn.outputSpec, true);
      if (o.options) data["options"] = [...o.options];
      if (o.timeout !== undefined) data["timeout"] = o.timeout;
      if (o.onTimeout !== undefined) data["on_timeout"] = o.onTimeout;
    }
    return data;
  }

  inputs(value: unknown, path: string): unknown {
    if (value instanceof RefPath) return String(value);
    if (typeof value === "string" && value.startsWith("$.")) {
      this.problems.push(`${path}: the literal '${value}' would read as a reference in a plan`);
    }
    if (Array.isArray(value)) return value.map((item, i) => this.inputs(item, `${path}[${i}]`));
    if (typeof value === "object" && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) out[key] = this.inputs(item, `${path}.${key}`);
      return out;
    }
    return value;
  }

  callData(step: CallStep, path: string): Record<string, unknown> {
    const data: Record<string, unknown> = { id: step.id };
    if (step.description) data["description"] = step.description;
    data[step.target.kind === "flow" ? "flow" : "function"] = step.target.name;
    data["inputs"] = this.inputs(step.inputs, `${path}.inputs`);
    this.common(step, data, path);
    if (step.budget) data["budget"] = { ...step.budget };
    return data;
  }

  common(step: FlowStep, data: Record<string, unknown>, path: string): void {
    const when = this.condition(step.when, `${path}.when`);
    if (when !== undefined) data["when"] = when;
    const skipIf = this.condition(step.skipIf, `${path}.skip_if`);
    if (skipIf !== undefined) data["skip_if"] = skipIf;
    if (step.dependsOn.length) data["depends_on"] = [...step.dependsOn];
  }

  flowData(flow: FlowDef): Record<string, unknown> {
    const path = `flows.${flow.name}`;
    const data: Record<string, unknown> = {};
    if (flow.options.description) data["description"] = flow.options.description;
    data["input"] = fieldsData(flow.inputSpecs);
    if (flow.outputSpec) data["output"] = specData(flow.outputSpec, true);
    if (flow.options.budget) data["budget"] = { ...flow.options.budget };
    if (flow.options.maxConcurrency !== undefined) data["max_concurrency"] = flow.options.maxConcurrency;
    data["steps"] = flow.steps.map((step, index) => {
      const where = `${path}.steps[${index}]`;
      if (step.kind === "call") return this.callData(step, where);
      const branches = step.branches.map((branch, i) => this.callData(branch, `${where}.${step.kind}.steps[${i}]`));
      const out: Record<string, unknown> = { id: step.id };
      if (step.description) out["description"] = step.description;
      if (step.kind === "race") out["race"] = branches;
      else {
        const group: Record<string, unknown> = {};
        if (step.require !== "all") group["require"] = step.require;
        const validate = this.condition(step.validate, `${where}.parallel.validate`);
        if (validate !== undefined) group["validate"] = validate;
        group["steps"] = branches;
        out["parallel"] = group;
      }
      this.common(step, out, where);
      return out;
    });
    if (flow.result.length === 1) data["result"] = String(flow.result[0]);
    else if (flow.result.length > 1) data["result"] = flow.result.map(String);
    return data;
  }
}

/**
 * A module (an object of exports, e.g. `import * as triage from "./triage.js"`) as `.stratum.yaml` text: its
 * contracts, functions and flows, with everything the flows use. Throws DefinitionError listing every part that has
 * no plan form.
 */
export function exportPlan(module: Record<string, unknown>, options: { description?: string } = {}): string {
  const exporter = new Exporter();
  for (const [name, value] of Object.entries(module)) {
    const kind = (value as { kind?: unknown } | null)?.kind;
    if (kind === "flow" || kind === "infer" || kind === "compute" || kind === "human") exporter.add(value as Exportable, `export ${name}`);
    else if (kind === "contract") exporter.addContracts((value as { contracts: ReadonlyMap<string, ContractSpec> }).contracts);
  }
  const plan: Record<string, unknown> = { version: "1" };
  if (options.description) plan["description"] = options.description;
  if (exporter.contracts.size) {
    const contracts: Record<string, unknown> = {};
    for (const [name, spec] of exporter.contracts) contracts[name] = fieldsData(spec.fields);
    plan["contracts"] = contracts;
  }
  const functions: Record<string, unknown> = {};
  for (const [name, fn] of exporter.functions) functions[name] = exporter.functionData(fn);
  if (exporter.functions.size) plan["functions"] = functions;
  const flows: Record<string, unknown> = {};
  for (const [name, flow] of exporter.flows) flows[name] = exporter.flowData(flow);
  if (exporter.flows.size) plan["flows"] = flows;
  if (exporter.problems.length) {
    const count = exporter.problems.length;
    throw new DefinitionError(`cannot export (${count} problem${count !== 1 ? "s" : ""}):\n${exporter.problems.join("\n")}`);
  }
  const doc = new Document(plan, { aliasDuplicateObjects: false });
  // Small leaf mappings and lists of scalars in flow style (`{type: string}`), as plans are written by hand.
  const short = (node: { toJSON(): unknown }): boolean => JSON.stringify(node.toJSON()).length <= 90;
  visit(doc, {
    Map(_, node) {
      const leaf = node.items.every((pair) => isScalar(pair.value) || (isSeq(pair.value) && pair.value.items.every(isScalar)));
      if (leaf && short(node)) node.flow = true;
    },
    Seq(_, node) {
      if (node.items.every(isScalar) && short(node)) node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}
