/**
 * JSON text exactly as Python's `json.dumps` writes it, so both implementations hash and show the same bytes:
 * canonical JSON (`sort_keys=True, separators=(",", ":"), ensure_ascii=False`) for content hashes, and the default
 * layout (`", "`, `": "`) for values shown in prompts and violations.
 */

import { createHash } from "node:crypto";

import { compareStrings, floatRepr } from "./expressions/values.js";

export interface DumpOptions {
  /** Sort object keys by code point (Python's `sort_keys=True`). */
  sortKeys?: boolean;
  /** No spaces after `,` and `:` (Python's `separators=(",", ":")`). */
  compact?: boolean;
}

/** A JSON number as Python writes it: whole numbers as ints, others as Python's float repr (`1e-05`, `1e+16`). */
export function pythonNumber(value: number): string {
  if (Number.isSafeInteger(value)) return String(value);
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "Infinity" : "-Infinity";
  return floatRepr(value);
}

/** Python's `json.dumps(value, ensure_ascii=False, ...)`. */
export function pyJsonDumps(value: unknown, options: DumpOptions = {}): string {
  const comma = options.compact ? "," : ", ";
  const colon = options.compact ? ":" : ": ";
  const dump = (item: unknown): string => {
    if (item === null || item === undefined) return "null";
    switch (typeof item) {
      case "boolean":
        return item ? "true" : "false";
      case "number":
        return pythonNumber(item);
      case "bigint":
        return item.toString();
      case "string":
        return JSON.stringify(item);
    }
    if (Array.isArray(item)) return `[${item.map(dump).join(comma)}]`;
    if (item instanceof Date) return JSON.stringify(item.toISOString());
    if (typeof item === "object") {
      let entries = Object.entries(item as Record<string, unknown>).filter(([, v]) => v !== undefined);
      if (options.sortKeys) entries = entries.sort(([a], [b]) => compareStrings(a, b));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}${colon}${dump(v)}`).join(comma)}}`;
    }
    return JSON.stringify(String(item));
  };
  return dump(value);
}

/** JSON with sorted keys and no whitespace: the form that is hashed (Python's `canonical_json`). */
export function canonicalJson(value: unknown): string {
  return pyJsonDumps(value, { sortKeys: true, compact: true });
}

/** sha256 of the canonical JSON of `value`, 12 hex characters (Python's `content_hash`). */
export function contentHash(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value), "utf8").digest("hex").slice(0, 12);
}
