// Prints the perimeter.yaml reference table, or with --write replaces the block in README.md.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configReferenceMarkdown, REFERENCE_END, REFERENCE_START } from "../src/config/reference.ts";

const table = configReferenceMarkdown();
if (process.argv.includes("--write")) {
  const readme = join(import.meta.dirname, "..", "README.md");
  const text = readFileSync(readme, "utf8");
  const start = text.indexOf(REFERENCE_START);
  const end = text.indexOf(REFERENCE_END);
  if (start === -1 || end === -1) throw new Error("README.md lacks the config-reference markers");
  writeFileSync(readme, `${text.slice(0, start + REFERENCE_START.length)}\n${table}\n${text.slice(end)}`);
} else {
  console.log(table);
}
