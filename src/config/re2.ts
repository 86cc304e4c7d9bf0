// RE2 (linear-time regular expressions; a WebAssembly module) is loaded on first use, not on import: instantiating it
// takes ~16 MiB and ~40 ms, which a config without argument patterns or globs never needs — and every service of
// `perimeter up` shares one process by default. createRequire keeps the first use synchronous (zod refinements and
// policy compilation are), which a dynamic import() could not.
import { createRequire } from "node:module";
import type { RE2 } from "re2-wasm";

let constructor: typeof RE2 | undefined;

/** new RE2(pattern, flags), loading the module the first time. Throws SyntaxError for what RE2 cannot compile. */
export function compileRe2(pattern: string, flags: string): RE2 {
  constructor ??= (createRequire(import.meta.url)("re2-wasm") as { RE2: typeof RE2 }).RE2;
  return new constructor(pattern, flags);
}
