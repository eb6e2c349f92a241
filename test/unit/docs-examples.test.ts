import { readdirSync, readFileSync } from "node:fs";
import { type DocumentNode, Kind, parse, validate } from "graphql";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { queryCostErrors } from "../../src/query-cost.js";
import { schema } from "../../src/schema/index.js";

// Every GraphQL example a newcomer may copy from the README and docs/ is valid against the
// schema and passes the server's default query limits (session 16: the conversation list
// of docs/api.md, with its messages and timelines, cost 80,833 against the limit of 20,000
// then, and was refused as soon as a client sent it; an example in docs/api/outbound.md
// asked for two fields `id` of different types and was refused as invalid).

const root = new URL("../../", import.meta.url);
const files = [
  "README.md",
  ...readdirSync(new URL("docs/", root))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
  ...readdirSync(new URL("docs/api/", root))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/api/${f}`),
];
// Blocks of operations; a block of input values only (rules.md's conditions) is a snippet.
const OPERATION = /^\s*(#[^\n]*\n\s*)*(query|mutation|subscription|fragment|\{\s*\w+(?!\w)(?!\s*:))/;
const examples = files.flatMap((file) =>
  [...readFileSync(new URL(file, root), "utf8").matchAll(/```graphql\n([\s\S]*?)```/g)]
    .map((m, i) => [`${file} #${i + 1}`, m[1]!] as const)
    .filter(([, source]) => OPERATION.test(source)),
);

/** Each operation of a block as a document of its own, with the block's fragments. */
function operations(source: string): DocumentNode[] {
  const doc = parse(source);
  const fragments = doc.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION);
  return doc.definitions
    .filter((d) => d.kind === Kind.OPERATION_DEFINITION)
    .map((op) => ({ kind: Kind.DOCUMENT, definitions: [op, ...fragments] }));
}
const { maxCost } = loadConfig({ NODE_ENV: "test" }).graphql;

describe("the GraphQL examples in the README and docs/", () => {
  it("are there", () => {
    expect(examples.length).toBeGreaterThanOrEqual(30);
  });

  it.each(examples)("%s is valid and within the default cost limit", (_name, source) => {
    for (const document of operations(source)) {
      expect(validate(schema, document).map((e) => e.message)).toEqual([]);
      expect(queryCostErrors(schema, document, {}, maxCost).map((e) => e.message)).toEqual([]);
    }
  });
});
