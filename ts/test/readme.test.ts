import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { FakeAnthropic } from "../src/testing/index.js";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf-8");
const example = /```ts\n([\s\S]*?)```/.exec(README)![1]!;

const fake = new FakeAnthropic();
before(() => fake.start());
after(() => fake.stop());

function run(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], {
      env: { ...process.env, ANTHROPIC_BASE_URL: fake.url, ANTHROPIC_API_KEY: "test" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

test("the README's example is 15 lines of code", () => {
  assert.ok(example.trim().split("\n").filter((line) => line.trim()).length <= 15);
});

test("the README's example runs as written: the low-confidence answer is retried and the confident one printed", async () => {
  fake.enqueue({ label: "negative", confidence: 0.42 }, { label: "negative", confidence: 0.93 });
  // beside the package's own files, so `zod` and `@stratum-ai/core` resolve as they do for a user of the package
  const file = fileURLToPath(new URL("../readme-example.mjs", import.meta.url));
  writeFileSync(file, example, "utf-8");
  const result = await run(file);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /label: 'negative', confidence: 0\.93/);
  assert.equal(fake.requests.length, 2);
  assert.match(fake.requests[1]!.messages[0].content[0].text, /ensure: result\.confidence > 0\.7 \(actual: result\.confidence = 0\.42\)/);
});
