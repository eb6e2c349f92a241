/**
 * Prints the schema to schema.graphql; with --check fails when the committed file is stale
 * (STYLE 8), so a schema change is always reviewed as SDL.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { lexicographicSortSchema, printSchema } from "graphql";
import { schema } from "../src/schema/index.js";

const path = new URL("../schema.graphql", import.meta.url);
const sdl = `${printSchema(lexicographicSortSchema(schema))}\n`;
if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = readFileSync(path, "utf8");
  } catch {
    // missing file counts as stale
  }
  if (committed !== sdl) {
    console.error("schema.graphql is stale: run `npm run schema:print` and commit it.");
    process.exit(1);
  }
  console.log("schema.graphql is up to date.");
} else {
  writeFileSync(path, sdl);
  console.log(`wrote schema.graphql (${sdl.length} bytes)`);
}
