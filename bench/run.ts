// `npm run bench [-- NAME...]`: runs each benchmark in bench/<name>/index.ts one after another (never in parallel:
// they compare timings against a peer in the same run), on the same Node as this script.
import { readdirSync, existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";

const root = import.meta.dirname;
const available = readdirSync(root, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(root, entry.name, "index.ts")))
  .map((entry) => entry.name)
  .sort();
const requested = process.argv.slice(2);
const unknown = requested.filter((name) => !available.includes(name));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(", ")}; available: ${available.join(", ")}`);
  process.exit(2);
}
let failed = 0;
for (const name of requested.length > 0 ? requested : available) {
  console.log(`\n=== bench/${name} ===`);
  const result = spawnSync(process.execPath, [join(root, name, "index.ts")], { stdio: "inherit" });
  if (result.status !== 0) {
    failed += 1;
    console.error(`bench/${name} exited with ${result.status ?? result.signal}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
