// Lint: typescript-eslint's recommended rules plus the habits in STYLE.md that a linter can hold us to.
import tseslint from "typescript-eslint";
import perimeter from "./scripts/eslint/import-boundary.js";

export default tseslint.config(
  { ignores: ["node_modules/**", "out/**", "**/golden/**", ".ci/**"] },
  ...tseslint.configs.recommended,
  {
    plugins: { perimeter },
    rules: {
      // Each folder of src/ is used by the others only through its index.ts (scripts/eslint/import-boundary.js).
      "perimeter/import-boundary": "error",
      // Only the CLI entry point may end the process (STYLE.md); everything else returns or throws.
      "no-restricted-properties": ["error", { object: "process", property: "exit", message: "Only src/cli/main.ts may call process.exit; return an exit code instead." }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-restricted-syntax": ["error", { selector: "ExportAllDeclaration", message: "Name what a module exports (no export *)." }],
      eqeqeq: ["error", "always"],
    },
  },
  {
    // A reader changing one stage reads one file of a few hundred lines (issue 15): a service is a typed state and
    // top-level stages, not one closure. Blank lines and comments do not count; tests are exempt.
    files: ["src/**/*.ts", "bench/**/*.ts", "scripts/**/*.ts"],
    ignores: ["**/*.test.ts"],
    rules: {
      "max-lines-per-function": ["error", { max: 120, skipBlankLines: true, skipComments: true }],
      "max-lines": ["error", { max: 500, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    files: ["src/cli/main.ts", "bin/**", "bench/**", "scripts/**", "test/**", "**/*.test.ts"],
    rules: { "no-restricted-properties": "off" },
  },
);
