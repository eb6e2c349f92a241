import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawClient, type Tx } from "../../src/db/client.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { silentLogger } from "../../src/engine/context.js";
import {
  after,
  decodeCursor,
  EventHub,
  type EventRow,
  encodeCursor,
  IDLE_READ_MS,
} from "../../src/engine/event-hub.js";
import { appendEvents } from "../../src/engine/events.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

// The hub's ordering contract (ARCHITECTURE "Events are the spine"): rows are delivered in
// (tx_id, id) order and only once no older transaction can still add one before them, so
// a subscriber never misses an event that commits late and never sees one twice.
let d: TestDatabase;
let hub: EventHub;
let tenantId: string;

beforeAll(async () => {
  d = await createTestDatabase();
  ({ tenantId } = await createTenantWithAdmin(d.db, { tenantName: "Hub", adminEmail: "admin@hub.test" }));
  hub = new EventHub(d.sql, silentLogger);
  await hub.start();
});
afterAll(async () => {
  await hub?.stop();
  await d?.drop();
});

const ev = (type: string) => ({ tenantId, type, occurredAt: new Date(), payload: { type } });

/** A transaction held open until `commit()` is called. */
function openTransaction(body: (tx: Tx) => Promise<unknown>) {
  let commit!: () => void;
  const released = new Promise<void>((r) => {
    commit = r;
  });
  let ready!: () => void;
  const started = new Promise<void>((r) => {
    ready = r;
  });
  const done = d.db.transaction(async (tx) => {
    await body(tx);
    ready();
    await released;
  });
  return {
    started,
    commit: async () => {
      commit();
      await done;
    },
  };
}

const takeXid = (tx: Tx) => rawClient(tx)`SELECT pg_current_xact_id()`;

async function take(it: AsyncIterator<EventRow>, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(((await it.next()).value as EventRow).type);
  return out;
}

describe("EventHub", () => {
  it("holds back a row committed behind an older open transaction, then delivers both in (tx_id, id) order", async () => {
    const from = await hub.head(tenantId);
    const live = hub.subscribe(tenantId, () => true, { from });
    // A takes its transaction id first and inserts later; B inserts and commits meanwhile.
    const a = openTransaction(async (tx) => {
      await takeXid(tx);
      await appendEvents(tx, [ev("a")]);
    });
    await a.started;
    await appendEvents(d.db, [ev("b")]);
    // b is committed but not final: A could still (and does) add a row ordered before it.
    const page = await hub.readPage(from, tenantId, 100);
    expect(page.rows).toEqual([]);
    expect(page.pending).toBe(true);
    await a.commit();
    expect(await take(live, 2)).toEqual(["a", "b"]);
    await live.return?.();
  });

  it("delivers a row held back by a transaction that ends without events (no NOTIFY): the pending retry", async () => {
    const from = await hub.head(tenantId);
    const live = hub.subscribe(tenantId, () => true, { from });
    const blocker = openTransaction(takeXid);
    await blocker.started;
    await appendEvents(d.db, [ev("c")]);
    expect((await hub.readPage(from, tenantId, 100)).pending).toBe(true);
    await blocker.commit();
    expect(await take(live, 1)).toEqual(["c"]);
    await live.return?.();
  });

  it("resumes from a cursor without repeats, and batches what arrived together", async () => {
    const from = await hub.head(tenantId);
    await appendEvents(d.db, [ev("d1"), ev("d2"), ev("d3")]);
    const first = hub.subscribe(tenantId, (e) => e.type.startsWith("d"), { from });
    const [d1] = [(await first.next()).value as EventRow];
    await first.return?.();
    const cursor = decodeCursor(encodeCursor(d1!))!;
    const batches = hub.subscribeBatches(tenantId, (e) => e.type.startsWith("d"), { from: cursor });
    const batch = (await batches.next()).value as EventRow[];
    expect(batch.map((e) => e.type)).toEqual(["d2", "d3"]);
    await appendEvents(d.db, [ev("d4")]);
    expect(((await batches.next()).value as EventRow[]).map((e) => e.type)).toEqual(["d4"]);
    await batches.return?.();
  });

  it("reads the log at most once per IDLE_READ_MS while nobody is subscribed; a later subscriber still gets exactly what follows its cursor", async () => {
    expect(hub.subscriberCount).toBe(0);
    let reads = 0;
    const readPage = hub.readPage.bind(hub);
    // The hub's own reads (all tenants); a subscriber's replay passes its tenant.
    hub.readPage = (from, t, limit) => {
      if (t === null) reads++;
      return readPage(from, t, limit);
    };
    try {
      const t0 = Date.now();
      for (let i = 0; i < 20; i++) {
        await appendEvents(d.db, [ev(`idle${i}`)]);
        hub.wake(); // what a local commit does; each append's NOTIFY wakes it too
      }
      expect(reads).toBeLessThanOrEqual(1 + Math.floor((Date.now() - t0) / IDLE_READ_MS));
      // The hub's cursor may lag behind idle19 now: a subscriber from here on must get
      // nothing at or before its cursor and miss nothing after it. (An idle row still
      // behind another test's open transaction was not readable for head(), so it is after
      // the cursor and comes first.)
      const from = await hub.head(tenantId);
      const live = hub.subscribe(tenantId, () => true, { from });
      await appendEvents(d.db, [ev("after")]);
      const got: EventRow[] = [];
      while (got.at(-1)?.type !== "after") got.push((await live.next()).value as EventRow);
      for (const e of got) expect(after(e, from)).toBe(true);
      await live.return?.();
    } finally {
      hub.readPage = readPage;
    }
  });
});
