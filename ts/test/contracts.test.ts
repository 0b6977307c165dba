import assert from "node:assert/strict";
import { test } from "node:test";

import { z } from "zod";

import { contract, opaque, resolveType } from "../src/contract.js";
import { DefinitionError } from "../src/errors.js";
import { outputSchema } from "../src/schema.js";
import { vectors } from "./paths.js";

interface Vectors {
  contracts: Record<string, { schema: unknown; hash: string }>;
  outputs: Record<string, { schema: unknown; wrapped: boolean; contract_hash: string }>;
}

const expected = vectors<Vectors>("contracts.json");

// The contracts of tests/vectors/vector_cases.py (CONTRACTS_PLAN), written with Zod.
const Sentiment = contract(
  "Sentiment",
  z.object({
    label: z.enum(["positive", "negative", "neutral"]),
    confidence: z.number().min(0).max(1),
    reasoning: z.string().describe("Why, in a sentence"),
  }),
);
const Customer = contract(
  "Customer",
  z.object({ name: z.string().min(1).describe("As the customer signs"), plan: z.enum(["free", "team"]) }),
);
const Ticket = contract(
  "Ticket",
  z.object({
    text: z.string().min(1).max(2000),
    customer: Customer.zod,
    note: opaque(z.string()).optional(),
    tags: z.array(z.string()).max(5).optional(),
    priority: z.int().min(1).max(5).default(3),
    meta: z.object({ channel: z.enum(["email", "chat"]), score: z.number().gt(0).lt(10) }).optional(),
  }),
);
const Report = contract(
  "Report",
  z.object({
    tickets: z.array(Ticket.zod).min(1),
    summary: z.string().regex(/^[A-Z]/),
    extra: z.record(z.string(), z.unknown()).optional(),
    anything: z.any().optional(),
    done: z.boolean(),
  }),
);

test("a Zod contract compiles to the JSON Schema and content hash Python computes for the same plan contract", () => {
  for (const made of [Sentiment, Customer, Ticket, Report]) {
    assert.deepEqual(made.schema, expected.contracts[made.name]!.schema, made.name);
    assert.equal(made.contentHash, expected.contracts[made.name]!.hash, made.name);
  }
});

test("an infer output's schema and contract hash match Python's, wrapped as {value} when not an object", () => {
  const outputs = {
    classify: Sentiment,
    count: z.int().min(0),
    labels: z.array(Sentiment.zod),
    shout: z.string(),
  };
  for (const [name, type] of Object.entries(outputs)) {
    const resolved = resolveType(type, name);
    const output = outputSchema(name, resolved.spec, resolved.contracts);
    assert.deepEqual(output.schema, expected.outputs[name]!.schema, name);
    assert.equal(output.wrapped, expected.outputs[name]!.wrapped, name);
    assert.equal(output.contractHash, expected.outputs[name]!.contract_hash, name);
  }
});

test("a Zod schema with no plan form is refused where it is defined, with the field's path", () => {
  assert.throws(() => contract("Bad", z.object({ when: z.string().nullable() })), (error: unknown) => {
    assert.ok(error instanceof DefinitionError);
    assert.equal(error.message, "contracts.Bad.when: nullable values have no plan form (use .optional())");
    return true;
  });
  assert.throws(() => contract("Bad", z.object({ x: z.union([z.string(), z.number()]) })), /contracts\.Bad\.x: a Zod union has no plan form/);
  assert.throws(() => contract("Bad", z.object({ x: z.string().startsWith("a") })), /the Zod check 'starts_with' has no plan form/);
});
