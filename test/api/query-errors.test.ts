import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.js";

// Bad arguments to queries get a coded error or an empty answer, never "Unexpected error."
// (the masked answer to a bug): found by probing every argument with hostile values.
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const b64 = (s: string) => Buffer.from(s).toString("base64");
const CONVERSATIONS = `query($f: ConversationFilter, $after: String, $first: Int) {
  conversations(filter: $f, after: $after, first: $first) { edges { node { id } } } }`;

function codes(r: { errors?: { message: string; extensions?: { code?: string } }[] }) {
  return (r.errors ?? []).map((e) => e.extensions?.code ?? `no code: ${e.message}`);
}

describe("query arguments", () => {
  it("conversations: a malformed ID in the filter or a bad cursor is a coded error", async () => {
    for (const [vars, code] of [
      [{ f: { queueIds: ["garbage"] } }, "NOT_FOUND"],
      [{ f: { queueIds: [b64("User:00000000-0000-0000-0000-000000000000")] } }, "NOT_FOUND"],
      [{ f: { assigneeId: "%%%" } }, "NOT_FOUND"],
      [{ f: { contactId: b64("Queue:x") } }, "NOT_FOUND"],
      [{ after: "not a cursor" }, "VALIDATION"],
    ] as const) {
      const r = await t.gql(CONVERSATIONS, vars);
      expect(codes(r), JSON.stringify(vars)).toEqual([code]);
    }
  });

  it("a NUL in a search, a text filter or a tag matches nothing extra and fails nothing", async () => {
    const r = await t.gql(CONVERSATIONS, { f: { text: "kettle\u0000", tags: ["vip\u0000"] } });
    expect(r.errors).toBeUndefined();
    for (const list of ["contacts", "queues", "users", "teams", "skills"]) {
      const q = await t.gql(`query($s: String) { ${list}(search: $s) { edges { node { id } } } }`, {
        s: "a\u0000b",
      });
      expect(q.errors, list).toBeUndefined();
    }
  });

  it("node: a global ID of a real type around something that is no UUID is null", async () => {
    const r = await t.gql(`query($id: ID!) { node(id: $id) { id } }`, { id: b64("Queue:not-a-uuid") });
    expect(r.errors).toBeUndefined();
    expect(r.data).toEqual({ node: null });
  });

  it("offset cursors far past the end, or negative, give a page instead of an overflow", async () => {
    for (const list of ["queues", "contacts", "users"]) {
      for (const n of ["99999999999999999999", "-5"]) {
        const r = await t.gql(`query($a: String) { ${list}(after: $a) { edges { node { id } } } }`, {
          a: b64(`OffsetConnection:${n}`),
        });
        expect(r.errors, `${list} ${n}`).toBeUndefined();
      }
    }
    const far = await t.ok(`query($a: String) { queues(after: $a) { edges { node { id } } } }`, {
      a: b64("OffsetConnection:99999999999999999999"),
    });
    expect(far.queues.edges).toEqual([]);
  });

  it("graphql-js and Pothos argument errors carry BAD_USER_INPUT", async () => {
    const overflow = await t.gql(CONVERSATIONS, { first: 2147483648 });
    expect(codes(overflow)).toEqual(["BAD_USER_INPUT"]);
    const negative = await t.gql(`query { queues(first: -1) { edges { node { id } } } }`);
    expect(codes(negative)).toEqual(["BAD_USER_INPUT"]);
    const badId = await t.gql(`query { node(id: "%%%") { id } }`);
    expect(codes(badId)).toEqual(["BAD_USER_INPUT"]);
    // Errors we raise keep their own code; a syntax error keeps graphql-yoga's.
    const unauth = await t.gql(`query { conversations { edges { node { id } } } }`, {}, null);
    expect(codes(unauth)).not.toContain("BAD_USER_INPUT");
  });
});
