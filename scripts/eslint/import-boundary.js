// perimeter/import-boundary: each folder of src/ is a capability whose index.ts is its public API; product code in
// another folder imports only that. A deep import ("../sandbox/bubblewrap.ts") couples two capabilities through an
// internal that its owner may change at will — the rule makes that a lint error instead of a surprise.
// Not checked: tests and test support (*.test.ts, testing.ts, test-support.ts, test-helpers.ts), which reach into
// internals on purpose; dynamic import(), which the CLI uses to load one command module lazily; and the light modules
// the CLI's fast path loads without their folder's index (that would load zod or pino for `perimeter --version`).
import { dirname, relative, resolve, sep } from "node:path";

const TEST_SUPPORT = /(\.test|[/\\]testing|[/\\]test-support|[/\\]test-helpers)\.ts$/;
const LIGHT_MODULES = new Set(["shared/errors.ts", "config/errors.ts", "config/secrets.ts"]);

/** @type {import("eslint").Rule.RuleModule} */
const rule = {
  meta: {
    type: "problem",
    docs: { description: "Import another folder of src/ only through its index.ts" },
    schema: [],
    messages: {
      deep: "Import {{folder}}/ through its public API (../{{folder}}/index.ts), not {{target}}; if it lacks what you need, export it there.",
    },
  },
  create(context) {
    const file = context.filename;
    const srcRoot = resolve(context.cwd, "src");
    const fromSrc = relative(srcRoot, file);
    if (fromSrc.startsWith("..") || TEST_SUPPORT.test(file)) return {};
    const ownFolder = fromSrc.split(sep)[0];
    const check = (node) => {
      const source = node.source?.value;
      if (typeof source !== "string" || !source.startsWith(".")) return;
      const target = relative(srcRoot, resolve(dirname(file), source));
      if (target.startsWith("..")) return;
      const parts = target.split(sep);
      const folder = parts[0];
      if (folder === ownFolder || parts.length < 2) return;
      const inFolder = parts.slice(1).join("/");
      if (inFolder === "index.ts" || LIGHT_MODULES.has(`${folder}/${inFolder}`)) return;
      context.report({ node: node.source, messageId: "deep", data: { folder, target: `${folder}/${inFolder}` } });
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check };
  },
};

export default { rules: { "import-boundary": rule } };
