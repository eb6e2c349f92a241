import { readFileSync } from "node:fs";
import { parse, validate } from "graphql";
import { describe, expect, it } from "vitest";
import { schema } from "../../src/schema/index.js";

const doc = readFileSync(new URL("../../docs/api/people.md", import.meta.url), "utf8");
const blocks = (lang: string) =>
  [...doc.matchAll(new RegExp("```" + lang + "\\n([\\s\\S]*?)```", "g"))].map((m) => m[1]!);

// The examples are meant to be pasted into GraphiQL: they must stay valid as the schema moves.
describe("docs/api/people.md", () => {
  const operations = blocks("graphql");

  it("has examples", () => {
    expect(operations.length).toBeGreaterThan(15);
  });

  it.each(operations.map((op) => [op.split("\n")[0]!, op]))(
    "%s validates against the schema",
    (_name, op) => {
      expect(validate(schema, parse(op)).map((e) => e.message)).toEqual([]);
    },
  );

  it("has variables that are valid JSON", () => {
    for (const json of blocks("json")) expect(() => JSON.parse(json)).not.toThrow();
  });

  it("shows every people operation it documents", () => {
    for (const name of [
      "users",
      "user(",
      "createUser",
      "updateUser",
      "archiveUser",
      "restoreUser",
      "setAgentSkills",
      "skills",
      "createSkill",
      "updateSkill",
      "archiveSkill",
      "accessProfiles",
      "createAccessProfile",
      "updateAccessProfile",
      "archiveAccessProfile",
      "tenantSettings",
      "updateTenantSettings",
      "createApiKey",
      "apiKeys",
      "revokeApiKey",
      "queueIds",
    ]) {
      expect(
        operations.some((op) => op.includes(name)),
        name,
      ).toBe(true);
    }
  });
});
