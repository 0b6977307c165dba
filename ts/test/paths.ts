import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The repository's root (this file runs from ts/dist/test/). */
export const REPO = fileURLToPath(new URL("../../../", import.meta.url));

/** A shared test vector file (tests/vectors/NAME at the repository's root), parsed. */
export function vectors<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../../../tests/vectors/${name}`, import.meta.url), "utf-8")) as T;
}
