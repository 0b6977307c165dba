/**
 * Plan types and their JSON Schema 2020-12, compiled exactly as Python compiles them (`stratum_core/plan/_schema.py`):
 * a contract is an object schema with nested contracts under `$defs`, and its content hash is the first 12 hex
 * characters of the sha256 of the schema's canonical JSON. A contract defined with Zod is first turned into these
 * field specs (`contract.ts`), so both implementations hash the same schema for the same contract.
 */

import { contentHash } from "./json.js";

export const DIALECT = "https://json-schema.org/draft/2020-12/schema";
export const PRIMITIVE_TYPES: ReadonlySet<string> = new Set(["string", "number", "integer", "boolean", "array", "object", "null", "any"]);

/** A field or input type, as a plan writes it (`{type: string, minLength: 1}`). */
export interface FieldSpec {
  type?: string;
  description?: string;
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  items?: FieldSpec;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  properties?: Record<string, FieldSpec>;
  /** false makes the field optional (fields are required by default). */
  required?: boolean;
  /** The value reaches the model only as a JSON attachment, never inlined into instruction text. */
  opaque?: boolean;
}

/** A named record type in plan form: its fields in declaration order. */
export interface ContractSpec {
  name: string;
  fields: Record<string, FieldSpec>;
  description?: string;
}

export type JsonSchema = Record<string, unknown>;

const KEYWORDS = [
  "description", "enum", "const", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
  "maxLength", "pattern", "format", "minItems", "maxItems", "uniqueItems",
] as const;

export function isContractType(spec: FieldSpec): boolean {
  return spec.type !== undefined && !PRIMITIVE_TYPES.has(spec.type);
}

class Compiler {
  readonly defs = new Map<string, JsonSchema>();
  private readonly compiling = new Set<string>();

  constructor(
    private readonly contracts: ReadonlyMap<string, ContractSpec>,
    private readonly root?: string,
  ) {}

  spec(spec: FieldSpec): JsonSchema {
    const schema: JsonSchema = {};
    const name = spec.type;
    if (name !== undefined && name === this.root) schema["$ref"] = "#";
    else if (name !== undefined && !PRIMITIVE_TYPES.has(name)) {
      this.define(name);
      schema["$ref"] = `#/$defs/${name}`;
    } else if (name !== undefined && name !== "any") schema["type"] = name;
    for (const keyword of KEYWORDS) {
      const value = spec[keyword];
      if (value !== undefined && value !== null) schema[keyword] = Array.isArray(value) ? [...value] : value;
    }
    if (spec.items !== undefined) schema["items"] = this.spec(spec.items);
    if (spec.properties !== undefined) Object.assign(schema, this.fields(spec.properties));
    return schema;
  }

  fields(fields: Record<string, FieldSpec>): JsonSchema {
    const properties: JsonSchema = {};
    for (const [key, value] of Object.entries(fields)) properties[key] = this.spec(value);
    return {
      type: "object",
      properties,
      required: Object.entries(fields)
        .filter(([, value]) => value.required !== false)
        .map(([key]) => key),
      additionalProperties: false,
    };
  }

  define(name: string): void {
    if (this.defs.has(name) || this.compiling.has(name)) return;
    const contract = this.contracts.get(name);
    if (contract === undefined) throw new Error(`unknown contract '${name}'`);
    this.compiling.add(name);
    const body: JsonSchema = { title: name, ...this.fields(contract.fields) };
    if (contract.description) body["description"] = contract.description;
    this.defs.set(name, body);
    this.compiling.delete(name);
  }

  finish(schema: JsonSchema): JsonSchema {
    if (this.defs.size) {
      const defs: JsonSchema = {};
      for (const key of [...this.defs.keys()].sort()) defs[key] = this.defs.get(key);
      schema["$defs"] = defs;
    }
    return schema;
  }
}

/** The JSON Schema of contract `name`: an object at the root, nested contracts under `$defs`. */
export function contractSchema(name: string, contracts: ReadonlyMap<string, ContractSpec>): JsonSchema {
  const compiler = new Compiler(contracts, name);
  compiler.define(name);
  const root = { ...compiler.defs.get(name)! };
  compiler.defs.delete(name);
  return { $schema: DIALECT, ...compiler.finish(root) };
}

/** The JSON Schema of one type; a contract type is inlined at the root. */
export function typeSchema(spec: FieldSpec, contracts: ReadonlyMap<string, ContractSpec>): JsonSchema {
  if (isContractType(spec) && spec.items === undefined) {
    const schema = contractSchema(spec.type!, contracts);
    if (spec.description) schema["description"] = spec.description;
    return schema;
  }
  const compiler = new Compiler(contracts);
  return { $schema: DIALECT, ...compiler.finish(compiler.spec(spec)) };
}

/** An object schema for named fields (a function's or a flow's input). */
export function fieldsSchema(fields: Record<string, FieldSpec>, contracts: ReadonlyMap<string, ContractSpec>, title?: string): JsonSchema {
  const compiler = new Compiler(contracts);
  let schema = compiler.fields(fields);
  if (title) schema = { title, ...schema };
  return { $schema: DIALECT, ...compiler.finish(schema) };
}

/** What an infer step asks the model for (Python's `OutputSchema`). */
export interface OutputSchema {
  /** The object-rooted JSON Schema sent as structured output. */
  schema: JsonSchema;
  /** The schema's name (letters, digits, `_`, `-`). */
  name: string;
  /** True when the output is not an object and the model answers `{"value": ...}`. */
  wrapped: boolean;
  /** The schema of the step's output itself. */
  valueSchema: JsonSchema;
  /** The content hash of `schema`: what traces record as the contract hash. */
  contractHash: string;
}

/** The schema an infer function's answer must match; a non-object output is wrapped as `{"value": ...}`. */
export function outputSchema(functionName: string, spec: FieldSpec, contracts: ReadonlyMap<string, ContractSpec>): OutputSchema {
  const isContract = isContractType(spec) && spec.items === undefined;
  const valueSchema = typeSchema(spec, contracts);
  const name = (isContract ? spec.type! : `${functionName}_output`).replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
  if (valueSchema["type"] === "object") {
    return { schema: valueSchema, name, wrapped: false, valueSchema, contractHash: contentHash(valueSchema) };
  }
  const inner: JsonSchema = {};
  for (const [key, value] of Object.entries(valueSchema)) if (key !== "$schema" && key !== "$defs") inner[key] = value;
  const wrapper: JsonSchema = {
    $schema: DIALECT,
    type: "object",
    properties: { value: inner },
    required: ["value"],
    additionalProperties: false,
  };
  if (valueSchema["$defs"] !== undefined) wrapper["$defs"] = valueSchema["$defs"];
  return { schema: wrapper, name, wrapped: true, valueSchema, contractHash: contentHash(wrapper) };
}
