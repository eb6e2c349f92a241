/**
 * `npm run bench -- <name> [args]` runs bench/<name>.ts. Each bench prints human-readable
 * lines and, last, one JSON line `{"bench":…,"metrics":{…}}` (figures go to
 * docs/benchmarks.md with the machine and date).
 */
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const name = process.argv[2];
const dir = fileURLToPath(new URL(".", import.meta.url));
if (!name || !/^[a-z0-9-]+$/.test(name) || !existsSync(`${dir}${name}.ts`)) {
  console.error("usage: npm run bench -- <name>   (a file bench/<name>.ts)");
  process.exit(2);
}
process.argv.splice(2, 1);
await import(pathToFileURL(`${dir}${name}.ts`).href);
