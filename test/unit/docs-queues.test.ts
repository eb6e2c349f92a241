import { readFileSync } from "node:fs";
import { parse, validate } from "graphql";
import { describe, expect, it } from "vitest";
import { schema } from "../../src/schema/index.js";

const doc = readFileSync(new URL("../../docs/api/queues.md", import.meta.url), "utf8");
const blocks = [...doc.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]!);
const json = [...doc.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe("docs/api/queues.md", () => {
  it("has examples", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(12);
  });

  it.each(blocks.map((b) => [b.split("\n")[0], b]))("%s is valid against the schema", (_name, source) => {
    expect(validate(schema, parse(source!)).map((e) => e.message)).toEqual([]);
  });

  it("has variables that parse as JSON", () => {
    for (const j of json) expect(() => JSON.parse(j)).not.toThrow();
  });
});
