import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiKey } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { appendEvents } from "../../src/engine/events.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createUserWithKey } from "../helpers/fixtures.js";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const CREATE_TEAM = `mutation($input: TeamInput!) { createTeam(input: $input) {
  __typename
  ... on Team { id name inboxLimit { mode value } }
  ... on ValidationError { field problems { field message } }
} }`;

describe("server basics", () => {
  it("answers health and readiness without a key", async () => {
    const base = t.url.replace("/graphql", "");
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready" });
  });

  it("refuses anonymous and bad keys", async () => {
    for (const key of [null, "sb_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "garbage"]) {
      const r = await t.gql("{ viewer { role } }", {}, key);
      expect(r.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      expect(r.data ?? null).toBeNull();
    }
  });

  it("identifies the viewer", async () => {
    const d = await t.ok("{ viewer { role permissions user { email } tenant { name } } }");
    expect(d.viewer).toMatchObject({
      role: "ADMIN",
      user: { email: "admin@acme.test" },
      tenant: { name: "Acme" },
    });
    expect(d.viewer.permissions).toContain("START_OUTBOUND");
  });
});

describe("teams", () => {
  it("creates, lists, updates and archives", async () => {
    const c = await t.ok(CREATE_TEAM, {
      input: { name: "Billing", inboxLimit: { mode: "LIMIT", value: 5 } },
    });
    expect(c.createTeam).toMatchObject({
      __typename: "Team",
      name: "Billing",
      inboxLimit: { mode: "LIMIT", value: 5 },
    });
    const id = c.createTeam.id;
    const u = await t.ok(
      `mutation($id: ID!) { updateTeam(id: $id, input: { inboxLimit: { mode: OFF } }) { ... on Team { inboxLimit { mode value } } } }`,
      { id },
    );
    expect(u.updateTeam.inboxLimit).toEqual({ mode: "OFF", value: null });
    const l = await t.ok(`{ teams { edges { node { id name } } } }`);
    expect(l.teams.edges.map((e: { node: { id: string } }) => e.node.id)).toContain(id);
    await t.ok(`mutation($id: ID!) { archiveTeam(id: $id) { ... on Team { archivedAt } } }`, { id });
    const after = await t.ok(
      `{ teams { edges { node { id } } } all: teams(includeArchived: true) { edges { node { id } } } }`,
    );
    expect(after.teams.edges).toHaveLength(0);
    expect(after.all.edges).toHaveLength(1);
  });

  it.each([
    [{ name: "" }, "name"],
    [{ name: "x".repeat(101) }, "name"],
    [{ name: "ok", inboxLimit: { mode: "LIMIT", value: 1001 } }, "inboxLimit"],
    [{ name: "ok", inboxLimit: { mode: "LIMIT" } }, "inboxLimit"],
  ])("rejects %j naming the field", async (input, field) => {
    const r = await t.ok(CREATE_TEAM, { input });
    expect(r.createTeam).toMatchObject({ __typename: "ValidationError", field });
  });

  it("rejects a duplicate name case-insensitively", async () => {
    await t.ok(CREATE_TEAM, { input: { name: "Support" } });
    const r = await t.ok(CREATE_TEAM, { input: { name: "support" } });
    expect(r.createTeam).toMatchObject({ __typename: "ValidationError", field: "name" });
  });

  it("treats unknown, malformed and foreign IDs as not found", async () => {
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "x@other.test" });
    const foreign = await t.ok(CREATE_TEAM, { input: { name: "Theirs" } }, other.apiKey);
    const q = `mutation($id: ID!) { updateTeam(id: $id, input: { name: "Mine" }) { __typename ... on NotFoundError { entity } } }`;
    for (const id of [
      foreign.createTeam.id,
      "nonsense",
      Buffer.from("User:00000000-0000-0000-0000-000000000000").toString("base64"),
    ]) {
      const r = await t.ok(q, { id });
      expect(r.updateTeam).toMatchObject({ __typename: "NotFoundError", entity: "Team" });
    }
    const node = await t.ok(`query($id: ID!) { node(id: $id) { id } }`, { id: foreign.createTeam.id });
    expect(node.node).toBeNull();
    const mine = await t.ok(`{ teams { edges { node { name } } } }`);
    expect(mine.teams.edges.map((e: { node: { name: string } }) => e.node.name)).not.toContain("Theirs");
  });

  it("forbids configuration to agents and supervisors", async () => {
    for (const role of ["AGENT", "SUPERVISOR"] as const) {
      const u = await createUserWithKey(t.db.db, t.tenantId, role);
      const r = await t.gql(CREATE_TEAM, { input: { name: `by ${role}` } }, u.key);
      expect(r.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    }
  });
});

describe("graphql-ws", () => {
  it("closes an unauthenticated connection with 4403", async () => {
    const client = t.ws(null);
    const err = await new Promise<unknown>((resolve) => {
      client.subscribe(
        { query: "subscription { tenantEvents { type } }" },
        { next: () => {}, error: resolve, complete: () => resolve(null) },
      );
    });
    expect((err as { code?: number }).code).toBe(4403);
  });

  it("re-checks the key on every subscribe: a revoked key cannot start new subscriptions", async () => {
    const sup = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    const client = t.ws(sup.key);
    const first = await new Promise<unknown>((resolve) => {
      const stop = client.subscribe(
        { query: "subscription { tenantEvents { type } }" },
        { next: () => {}, error: resolve, complete: () => resolve("complete") },
      );
      setTimeout(() => {
        stop();
        resolve("ok");
      }, 300);
    });
    expect(first).toBe("ok");
    await t.db.db.update(apiKey).set({ revokedAt: new Date() }).where(eq(apiKey.userId, sup.id));
    const second = await new Promise<unknown>((resolve) => {
      client.subscribe(
        { query: "subscription { tenantEvents { type } }" },
        { next: resolve, error: resolve, complete: () => resolve(null) },
      );
    });
    // Either the connection is refused at init or the subscribe is: both are 4403 Forbidden.
    expect((second as { code?: number }).code).toBe(4403);
  });

  it("forbids the tenant stream to agents", async () => {
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const client = t.ws(agent.key);
    const result = await new Promise<unknown>((resolve) => {
      client.subscribe(
        { query: "subscription { tenantEvents { type } }" },
        { next: resolve, error: resolve, complete: () => resolve(null) },
      );
    });
    expect(JSON.stringify(result)).toContain("FORBIDDEN");
  });

  it("streams tenant events and resumes from a cursor without gaps or repeats", async () => {
    const received: { type: string; cursor: string }[] = [];
    const client = t.ws(t.adminKey);
    let first: () => void = () => {};
    let live = false;
    const unsubscribe = client.subscribe<{ tenantEvents: { type: string; cursor: string } }>(
      { query: "subscription { tenantEvents { type cursor } }" },
      {
        next: (m) => {
          if (m.data!.tenantEvents.type === "test.warmup") {
            live = true;
            return;
          }
          received.push(m.data!.tenantEvents);
          if (received.length === 2) first();
        },
        error: () => {},
        complete: () => {},
      },
    );
    // Live from now: wait until the subscription receives an event before the ones it is
    // tested on commit (a fixed 300 ms was too short on a loaded machine).
    for (let i = 0; i < 100 && !live; i++) {
      await appendEvents(t.db.db, [{ tenantId: t.tenantId, type: "test.warmup", occurredAt: new Date() }]);
      await new Promise((r) => setTimeout(r, 100));
    }
    const done = new Promise<void>((r) => {
      first = r;
    });
    const at = new Date();
    await appendEvents(t.db.db, [
      { tenantId: t.tenantId, type: "test.one", occurredAt: at },
      { tenantId: t.tenantId, type: "test.two", occurredAt: at },
    ]);
    await done;
    unsubscribe();
    expect(received.map((e) => e.type)).toEqual(["test.one", "test.two"]);

    // Events committed while disconnected arrive on resume, exactly once, in order.
    await appendEvents(t.db.db, [{ tenantId: t.tenantId, type: "test.three", occurredAt: at }]);
    await appendEvents(t.db.db, [{ tenantId: t.tenantId, type: "test.four", occurredAt: at }]);
    const resumed: string[] = [];
    await new Promise<void>((resolve) => {
      const stop = client.subscribe<{ tenantEvents: { type: string } }>(
        {
          query: "subscription($after: String) { tenantEvents(after: $after) { type } }",
          variables: { after: received[0]!.cursor },
        },
        {
          next: (m) => {
            resumed.push(m.data!.tenantEvents.type);
            if (resumed.length === 3) {
              stop();
              resolve();
            }
          },
          error: () => {},
          complete: () => {},
        },
      );
    });
    expect(resumed).toEqual(["test.two", "test.three", "test.four"]);
  });
});
