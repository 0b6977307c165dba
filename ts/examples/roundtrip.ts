/**
 * The TypeScript half of the round-trip test (tests/typescript/test_roundtrip.py):
 *
 *     node dist/examples/roundtrip.js export                          # the support flow as a plan, on stdout
 *     node dist/examples/roundtrip.js run BASE_URL INPUT DECISION     # run it on the Anthropic API at BASE_URL
 *
 * `run` prints the output and the trace's attempts (prompt and contract hashes) as JSON.
 */

import { exportPlan, Stratum } from "../src/index.js";
import * as example from "./support.js";

async function main(argv: string[]): Promise<void> {
  const [command, baseURL, input, decision] = argv;
  if (command === "export") {
    process.stdout.write(exportPlan(example, { description: "The support flow, exported from TypeScript." }));
    return;
  }
  if (command !== "run" || !baseURL || !input || !decision) throw new Error("usage: roundtrip.js export | run BASE_URL INPUT DECISION");
  const stratum = new Stratum({
    baseURL,
    apiKey: "test",
    reviewSink: { ask: async () => ({ value: JSON.parse(decision), reviewer: "person" }) },
  });
  const result = await stratum.runDetailed(example.support, JSON.parse(input));
  const { trace } = result;
  process.stdout.write(
    JSON.stringify({
      status: result.status,
      error: result.error?.message ?? null,
      output: result.output ?? null,
      steps: trace.steps.map((s) => ({ stepId: s.stepId, status: s.status, output: s.output ?? null })),
      attempts: trace.attempts.map((a) => ({
        stepId: a.stepId,
        number: a.number,
        promptHash: a.promptHash,
        contractHash: a.contractHash,
        rawOutput: a.rawOutput,
        violations: a.violations,
        retryReason: a.retryReason,
      })),
    }),
  );
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? error}\n`);
  process.exit(1);
});
