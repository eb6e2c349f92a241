import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.js";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({
    env: {
      GRAPHQL_INTROSPECTION: "false",
      GRAPHQL_MAX_DEPTH: "4",
      GRAPHQL_MAX_ALIASES: "5",
      NODE_ENV: "production",
    },
  });
});
afterAll(async () => {
  await t?.stop();
});

describe("GraphQL hardening", () => {
  it("rejects queries deeper than the limit", async () => {
    const deep = `{ conversations { edges { node { messages { edges { node { attachments { filename } } } } contact { email } } } } }`;
    const r = await t.gql(`{ a: viewer { user { name } } }`);
    expect(r.errors).toBeUndefined();
    const d = await t.gql(deep);
    expect(JSON.stringify(d.errors ?? [])).toMatch(/depth/i);
  });

  it("rejects alias flooding", async () => {
    const aliases = Array.from({ length: 8 }, (_, i) => `a${i}: viewer { role }`).join(" ");
    const r = await t.gql(`{ ${aliases} }`);
    expect(JSON.stringify(r.errors ?? [])).toMatch(/alias/i);
  });

  it("turns introspection off when configured", async () => {
    const r = await t.gql(`{ __schema { types { name } } }`);
    expect(r.errors?.length).toBeGreaterThan(0);
    expect(r.data?.__schema ?? null).toBeNull();
  });

  it("does not leak internals of unexpected errors", async () => {
    // A malformed cursor reaches a resolver as a typed validation error, never a stack trace.
    const r = await t.gql(`{ conversations(after: "%%%") { edges { node { id } } } }`);
    const text = JSON.stringify(r);
    expect(text).not.toMatch(/at .*\.ts:\d+|stack/i);
  });
});
