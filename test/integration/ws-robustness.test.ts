import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { encodeCursor, MAX_QUEUED_EVENTS } from "../../src/engine/event-hub.js";
import { appendEvents } from "../../src/engine/events.js";
import { encodeId } from "../../src/schema/ids.js";
import { WS_MAX_SUBSCRIPTIONS } from "../../src/server.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createUserWithKey } from "../helpers/fixtures.js";

// What a probe of the WebSocket endpoint found (session 12): each of these crashed the
// process, leaked, or closed a whole connection before.
let t: TestApp;
let agent: { id: string; key: string };
const unhandled: unknown[] = [];
const onUnhandled = (err: unknown) => unhandled.push(err);

beforeAll(async () => {
  t = await startTestApp();
  agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
  process.on("unhandledRejection", onUnhandled);
});
afterAll(async () => {
  process.off("unhandledRejection", onUnhandled);
  await t?.stop();
});

/** A raw graphql-ws connection: frames in, frames out. */
async function raw(key: string) {
  const socket = new WebSocket(t.wsUrl, "graphql-transport-ws");
  const frames: any[] = [];
  socket.on("message", (d) => frames.push(JSON.parse(String(d))));
  await once(socket, "open");
  socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: key } }));
  await waitFor(() => frames.some((f) => f.type === "connection_ack"));
  return { socket, frames, send: (m: unknown) => socket.send(JSON.stringify(m)) };
}

async function waitFor(check: () => boolean, ms = 5000) {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const settle = () => new Promise((r) => setTimeout(r, 300));

/**
 * The first error a subscription got: an `error` frame (refused before it ran) or a `next`
 * frame carrying errors (its subscribe resolver failed).
 */
function errorOf(frames: any[], id: string): { extensions?: { code?: string } } | undefined {
  for (const f of frames) {
    if (f.id !== id) continue;
    if (f.type === "error") return f.payload[0];
    if (f.type === "next" && f.payload.errors) return f.payload.errors[0];
  }
  return undefined;
}

// Before the flood test below: its backlog, still being delivered, would swamp 100 live streams.
describe("subscriptions per connection", () => {
  it(`at most ${WS_MAX_SUBSCRIPTIONS} run at once on one connection; a completed one makes room`, async () => {
    const c = await raw(t.adminKey);
    const query = "subscription($a: String) { tenantEvents(after: $a) { type } }";
    for (let i = 0; i < WS_MAX_SUBSCRIPTIONS; i++)
      c.send({ id: `s${i}`, type: "subscribe", payload: { query } });
    c.send({ id: "over", type: "subscribe", payload: { query } });
    await waitFor(() => errorOf(c.frames, "over") !== undefined, 20_000);
    expect(errorOf(c.frames, "over")?.extensions?.code).toBe("TOO_MANY_SUBSCRIPTIONS");
    expect(c.frames.filter((f) => f.type === "error" && f.id !== "over")).toEqual([]);
    c.send({ id: "s0", type: "complete" });
    await settle();
    // From a cursor taken before the event, so its delivery does not depend on timing.
    const from = encodeCursor(await t.app.engine.hub.head(t.tenantId));
    c.send({ id: "again", type: "subscribe", payload: { query, variables: { a: from } } });
    await appendEvents(t.db.db, [{ tenantId: t.tenantId, type: "test.room", occurredAt: new Date() }]);
    // (A loaded CI machine starts 100 subscriptions slowly: a generous wait.)
    await waitFor(
      () => c.frames.some((f) => f.id === "again" && (f.type === "next" || f.type === "error")),
      20_000,
    );
    expect(errorOf(c.frames, "again")).toBeUndefined();
    c.socket.close();
  });
});

describe("the WebSocket endpoint", () => {
  it("a cursor beyond xid8, subscribed and completed at once, is a BAD_USER_INPUT error and no unhandled rejection", async () => {
    const c = await raw(agent.key);
    const query = "subscription($after: String) { myInbox(after: $after) { event { type } } }";
    c.send({
      id: "a",
      type: "subscribe",
      payload: { query, variables: { after: "99999999999999999999.0" } },
    });
    c.send({ id: "a", type: "complete" });
    c.send({
      id: "b",
      type: "subscribe",
      payload: { query, variables: { after: "99999999999999999999.0" } },
    });
    await waitFor(() => errorOf(c.frames, "b") !== undefined);
    expect(errorOf(c.frames, "b")?.extensions?.code).toBe("BAD_USER_INPUT");
    await settle();
    expect(unhandled).toEqual([]);
    c.socket.close();
  });

  it("subscriptions completed before or while they wait leave no hub subscriber behind", async () => {
    const hub = t.app.engine.hub;
    const base = hub.subscriberCount;
    const c = await raw(agent.key);
    const query = "subscription($after: String) { myInbox(after: $after) { event { type } } }";
    for (let i = 0; i < 5; i++) {
      c.send({ id: `early${i}`, type: "subscribe", payload: { query, variables: { after: "0.0" } } });
      c.send({ id: `early${i}`, type: "complete" });
    }
    c.send({ id: "waiting", type: "subscribe", payload: { query } });
    await settle();
    c.send({ id: "waiting", type: "complete" });
    await waitFor(() => hub.subscriberCount === base);
    c.socket.close();
    expect(unhandled).toEqual([]);
  });

  it("a syntax error or a query over the limits fails that subscription only; the connection and its other subscriptions go on", async () => {
    const c = await raw(t.adminKey);
    c.send({ id: "live", type: "subscribe", payload: { query: "subscription { tenantEvents { type } }" } });
    c.send({ id: "bad", type: "subscribe", payload: { query: "subscription { tenantEvents { type " } });
    const aliases = Array.from({ length: 40 }, (_, i) => `a${i}: type`).join(" ");
    c.send({
      id: "big",
      type: "subscribe",
      payload: { query: `subscription { tenantEvents { ${aliases} } }` },
    });
    await waitFor(() => ["bad", "big"].every((id) => errorOf(c.frames, id) !== undefined));
    for (const id of ["bad", "big"]) {
      expect(errorOf(c.frames, id)?.extensions?.code, id).toMatch(/GRAPHQL_PARSE_FAILED|BAD_USER_INPUT/);
    }
    expect(c.socket.readyState).toBe(WebSocket.OPEN);
    // The live one still delivers.
    await appendEvents(t.db.db, [{ tenantId: t.tenantId, type: "test.ping", occurredAt: new Date() }]);
    await waitFor(() => c.frames.some((f) => f.id === "live" && f.type === "next"));
    c.socket.close();
  });

  it("malformed IDs and cursors in subscriptions are coded errors, not masked ones", async () => {
    const c = await raw(t.adminKey);
    const cases: [string, string, Record<string, unknown>, string][] = [
      [
        "cursor",
        "subscription($a: String) { tenantEvents(after: $a) { type } }",
        { a: "abc" },
        "BAD_USER_INPUT",
      ],
      [
        "conv",
        "subscription($c: ID!) { conversationEvents(conversationId: $c) { type } }",
        { c: "abc" },
        "NOT_FOUND",
      ],
      ["queue", "subscription($q: ID!) { queueStats(queueId: $q) { waiting } }", { q: "abc" }, "NOT_FOUND"],
      [
        "foreign type",
        "subscription($q: ID!) { queueStats(queueId: $q) { waiting } }",
        { q: encodeId("User", agent.id) },
        "NOT_FOUND",
      ],
    ];
    for (const [id, query, variables] of cases)
      c.send({ id, type: "subscribe", payload: { query, variables } });
    await waitFor(() => cases.every(([id]) => errorOf(c.frames, id) !== undefined));
    for (const [id, , , code] of cases) expect(errorOf(c.frames, id)?.extensions?.code, id).toBe(code);
    c.socket.close();
  });

  it("refuses a frame over 1 MiB by closing the socket (1009)", async () => {
    const c = await raw(t.adminKey);
    const closed = once(c.socket, "close");
    c.send({
      id: "huge",
      type: "subscribe",
      payload: {
        query: "subscription { tenantEvents { type } }",
        variables: { x: "x".repeat(2 * 1024 * 1024) },
      },
    });
    const [code] = await closed;
    expect(code).toBe(1009);
  });

  it("a subscriber that stops reading is completed once it is MAX_QUEUED_EVENTS behind, and gives its queue back", async () => {
    const hub = t.app.engine.hub;
    const base = hub.subscriberCount;
    const from = await hub.head(t.tenantId);
    const stream = hub.subscribeBatches(t.tenantId, (e) => e.type === "test.flood", { from });
    expect(hub.subscriberCount).toBe(base + 1);
    // Never read: the events pile up in its queue until it is too far behind.
    await appendEvents(
      t.db.db,
      Array.from({ length: MAX_QUEUED_EVENTS + 100 }, () => ({
        tenantId: t.tenantId,
        type: "test.flood",
        occurredAt: new Date(),
      })),
    );
    hub.wake();
    await waitFor(() => hub.subscriberCount === base, 15_000);
    expect(await stream.next()).toEqual({ value: undefined, done: true });
  });
});
