/**
 * Contracts over Zod object schemas. `contract("Sentiment", z.object({...}))` names a record type; it compiles at
 * once to the plan's field specs, to JSON Schema 2020-12 and to the content hash Python computes for the same
 * contract. A Zod schema that the plan language cannot express (unions, nullable, transforms, ...) is refused with
 * the field's path and a hint, when the contract is defined.
 */

import type { z } from "zod";

import { DefinitionError } from "./errors.js";
import { contentHash } from "./json.js";
import { type ContractSpec, contractSchema, type FieldSpec, type JsonSchema, typeSchema } from "./schema.js";

/** A named record type: a Zod object schema and its plan form. */
export interface Contract<T extends z.ZodObject = z.ZodObject> {
  readonly kind: "contract";
  readonly name: string;
  readonly zod: T;
  /** The fields as a plan writes them. */
  readonly fields: Record<string, FieldSpec>;
  /** Every contract this one uses (itself included), by name. */
  readonly contracts: ReadonlyMap<string, ContractSpec>;
  /** JSON Schema 2020-12, nested contracts under `$defs`. */
  readonly schema: JsonSchema;
  /** sha256 of the schema's canonical JSON, 12 hex characters: the same hash Python computes. */
  readonly contentHash: string;
}

/** The TypeScript type of a contract's values. */
export type Infer<C> = C extends Contract<infer T> ? z.infer<T> : C extends z.ZodType ? z.infer<C> : never;

const byZod = new WeakMap<object, Contract>();
const byName = new Map<string, Contract>();
const opaqueSchemas = new WeakSet<object>();

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Declare a named record type over a Zod object schema. */
export function contract<T extends z.ZodObject>(name: string, schema: T, options: { description?: string } = {}): Contract<T> {
  if (!NAME.test(name)) throw new DefinitionError(`'${name}' is not a valid contract name (letters, digits, _ and -, not first)`, `contracts.${name}`);
  if (zodDef(schema).type !== "object") throw new DefinitionError("a contract is a Zod object schema (z.object({...}))", `contracts.${name}`);
  const existing = byZod.get(schema);
  if (existing) {
    if (existing.name !== name) throw new DefinitionError(`this schema is already the contract '${existing.name}'`, `contracts.${name}`);
    return existing as Contract<T>;
  }
  const contracts = new Map<string, ContractSpec>();
  const fields = objectFields(schema, `contracts.${name}`, contracts);
  const spec: ContractSpec = { name, fields, ...(options.description ? { description: options.description } : {}) };
  contracts.set(name, spec);
  const schemaJson = contractSchema(name, contracts);
  const made: Contract<T> = Object.freeze({
    kind: "contract" as const,
    name,
    zod: schema,
    fields,
    contracts,
    schema: schemaJson,
    contentHash: contentHash(schemaJson),
  });
  const clash = byName.get(name);
  if (clash && clash.contentHash !== made.contentHash) {
    throw new DefinitionError(`another contract is already named '${name}'`, `contracts.${name}`);
  }
  byZod.set(schema, made);
  byName.set(name, made);
  return made;
}

/** Mark a field opaque: its value reaches the model only as a structured JSON attachment (the injection guard). */
export function opaque<T extends z.ZodType>(schema: T): T {
  const copy = (schema as unknown as { clone(): T }).clone();
  opaqueSchemas.add(copy);
  return copy;
}

export function isContract(value: unknown): value is Contract {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "contract";
}

/** A type as functions and flows declare it: a contract or any Zod schema the plan language can express. */
export type TypeLike = Contract | z.ZodType;

/** The plan form of a type, and the contracts it uses. */
export interface ResolvedType {
  spec: FieldSpec;
  zod: z.ZodType;
  contracts: Map<string, ContractSpec>;
}

export function resolveType(type: TypeLike, path: string): ResolvedType {
  const contracts = new Map<string, ContractSpec>();
  if (isContract(type)) {
    for (const [name, spec] of type.contracts) contracts.set(name, spec);
    return { spec: { type: type.name }, zod: type.zod, contracts };
  }
  return { spec: fieldSpec(type, path, contracts), zod: type, contracts };
}

/** The plan form of named inputs (`{text: z.string()}`). */
export function resolveFields(fields: Record<string, TypeLike>, path: string): { specs: Record<string, FieldSpec>; contracts: Map<string, ContractSpec> } {
  const contracts = new Map<string, ContractSpec>();
  const specs: Record<string, FieldSpec> = {};
  for (const [name, type] of Object.entries(fields)) {
    if (!NAME.test(name)) throw new DefinitionError(`'${name}' is not a valid name`, `${path}.${name}`);
    const resolved = resolveType(type, `${path}.${name}`);
    specs[name] = resolved.spec;
    for (const [key, value] of resolved.contracts) contracts.set(key, value);
  }
  return { specs, contracts };
}

/** JSON Schema of a resolved type (a contract inlined at the root), as Python's `type_schema`. */
export function resolvedSchema(resolved: ResolvedType): JsonSchema {
  return typeSchema(resolved.spec, resolved.contracts);
}

// -- Zod to plan types ----------------------------------------------------------------------------------------------

interface ZodDef {
  type: string;
  checks?: { _zod: { def: Record<string, unknown> } }[];
  [key: string]: unknown;
}

function zodDef(schema: unknown): ZodDef {
  return (schema as { _zod: { def: ZodDef } })._zod.def;
}

function descriptionOf(schema: unknown): string | undefined {
  const text = (schema as { description?: unknown }).description;
  return typeof text === "string" && text ? text : undefined;
}

function objectFields(schema: z.ZodType, path: string, contracts: Map<string, ContractSpec>): Record<string, FieldSpec> {
  const def = zodDef(schema);
  const shape = def["shape"] as Record<string, z.ZodType>;
  const catchall = def["catchall"] as z.ZodType | undefined;
  if (catchall !== undefined && zodDef(catchall).type !== "never") {
    throw new DefinitionError("an object with extra keys (catchall, passthrough, loose) has no plan form", path);
  }
  const fields: Record<string, FieldSpec> = {};
  for (const [key, value] of Object.entries(shape)) {
    if (!NAME.test(key)) throw new DefinitionError(`'${key}' is not a valid field name (letters, digits, _ and -)`, `${path}.${key}`);
    fields[key] = fieldSpec(value, `${path}.${key}`, contracts);
  }
  return fields;
}

function addContract(found: Contract, contracts: Map<string, ContractSpec>): void {
  for (const [name, spec] of found.contracts) contracts.set(name, spec);
}

function sameType(values: unknown[]): string | undefined {
  if (values.every((v) => typeof v === "string")) return "string";
  if (values.every((v) => typeof v === "boolean")) return "boolean";
  if (values.every((v) => typeof v === "number" && Number.isInteger(v))) return "integer";
  if (values.every((v) => typeof v === "number")) return "number";
  return undefined;
}

function fieldSpec(schema: z.ZodType, path: string, contracts: Map<string, ContractSpec>): FieldSpec {
  const def = zodDef(schema);
  const description = descriptionOf(schema);
  const isOpaque = opaqueSchemas.has(schema);
  let spec: FieldSpec;
  switch (def.type) {
    case "optional": {
      spec = { ...fieldSpec(def["innerType"] as z.ZodType, path, contracts), required: false };
      break;
    }
    case "default":
    case "prefault": {
      const inner = fieldSpec(def["innerType"] as z.ZodType, path, contracts);
      const value = def["defaultValue"];
      spec = { ...inner, default: typeof value === "function" ? (value as () => unknown)() : value, required: false };
      break;
    }
    case "object": {
      const found = byZod.get(schema);
      if (found) {
        addContract(found, contracts);
        spec = { type: found.name };
      } else spec = { type: "object", properties: objectFields(schema, path, contracts) };
      break;
    }
    case "record":
      spec = { type: "object" };
      break;
    case "array": {
      spec = { type: "array", items: fieldSpec(def["element"] as z.ZodType, `${path}.items`, contracts) };
      for (const check of checks(def)) {
        if (check["check"] === "min_length") spec.minItems = check["minimum"] as number;
        else if (check["check"] === "max_length") spec.maxItems = check["maximum"] as number;
        else if (check["check"] === "length_equals") spec.minItems = spec.maxItems = check["length"] as number;
        else throw unsupportedCheck(check, path);
      }
      break;
    }
    case "string":
      spec = stringSpec(def, path);
      break;
    case "number":
    case "int":
      spec = numberSpec(def, path);
      break;
    case "boolean":
      spec = { type: "boolean" };
      break;
    case "null":
      spec = { type: "null" };
      break;
    case "any":
    case "unknown":
      spec = { type: "any" };
      break;
    case "enum": {
      const values = Object.values(def["entries"] as Record<string, unknown>);
      const type = sameType(values);
      spec = { ...(type ? { type } : {}), enum: values };
      break;
    }
    case "literal": {
      const values = def["values"] as unknown[];
      const type = sameType(values);
      spec = { ...(type ? { type } : {}), enum: [...values] };
      break;
    }
    case "nullable":
      throw new DefinitionError("nullable values have no plan form (use .optional())", path);
    default:
      throw new DefinitionError(`a Zod ${def.type} has no plan form (contracts use objects, strings, numbers, booleans, enums, arrays)`, path);
  }
  if (description) spec.description = description;
  if (isOpaque) spec.opaque = true;
  return spec;
}

function checks(def: ZodDef): Record<string, unknown>[] {
  return (def.checks ?? []).map((check) => check._zod.def);
}

function unsupportedCheck(check: Record<string, unknown>, path: string): DefinitionError {
  const name = String(check["format"] ?? check["check"]);
  return new DefinitionError(`the Zod check '${name}' has no plan form`, path);
}

const FORMATS: Record<string, string> = {
  email: "email", url: "uri", uuid: "uuid", datetime: "date-time", date: "date", time: "time", ipv4: "ipv4", ipv6: "ipv6",
};

function stringSpec(def: ZodDef, path: string): FieldSpec {
  const spec: FieldSpec = { type: "string" };
  const all = [...(typeof def["format"] === "string" ? [def as Record<string, unknown>] : []), ...checks(def)];
  for (const check of all) {
    switch (check["check"]) {
      case "min_length":
        spec.minLength = check["minimum"] as number;
        break;
      case "max_length":
        spec.maxLength = check["maximum"] as number;
        break;
      case "length_equals":
        spec.minLength = spec.maxLength = check["length"] as number;
        break;
      case "string_format": {
        const format = String(check["format"]);
        if (format === "regex") {
          const pattern = check["pattern"] as RegExp;
          if (pattern.flags.replace("u", "")) throw new DefinitionError(`a regex with flags (/${pattern.flags}) has no plan form`, path);
          spec.pattern = pattern.source;
        } else if (FORMATS[format]) spec.format = FORMATS[format];
        else throw unsupportedCheck(check, path);
        break;
      }
      default:
        throw unsupportedCheck(check, path);
    }
  }
  return spec;
}

function numberSpec(def: ZodDef, path: string): FieldSpec {
  const spec: FieldSpec = { type: "number" };
  const all = [...(typeof def["format"] === "string" ? [def as Record<string, unknown>] : []), ...checks(def)];
  for (const check of all) {
    switch (check["check"]) {
      case "number_format":
        if (["safeint", "int32", "uint32"].includes(String(check["format"]))) spec.type = "integer";
        else throw unsupportedCheck(check, path);
        break;
      case "greater_than":
        if (check["inclusive"]) spec.minimum = check["value"] as number;
        else spec.exclusiveMinimum = check["value"] as number;
        break;
      case "less_than":
        if (check["inclusive"]) spec.maximum = check["value"] as number;
        else spec.exclusiveMaximum = check["value"] as number;
        break;
      default:
        throw unsupportedCheck(check, path);
    }
  }
  return spec;
}
