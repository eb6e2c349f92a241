import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { silentLogger } from "../../src/engine/context.js";
import {
  indexQueuedMessages,
  SEARCH_CAP,
  SEARCH_PROBE,
  SEARCH_TEXT_CHARS,
  startSearchIndexer,
} from "../../src/engine/search.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";

// The indexer is driven by hand here, so each test knows what is queued and what is indexed.
let t: TestApp;
let addr: { queueId: string; addressId: string; address: string };

beforeAll(async () => {
  t = await startTestApp({ env: { SEARCH_INDEXER: "false" } });
  addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "search@acme.test" });
});
afterAll(async () => {
  await t?.stop();
});

const SEARCH = `query($text: String!, $first: Int, $after: String) {
  conversations(filter: { text: $text }, first: $first, after: $after) {
    edges { node { id ticketNumber } }
    pageInfo { hasNextPage endCursor }
  }
}`;

async function search(text: string, opts: { first?: number; key?: string } = {}): Promise<number[]> {
  const r = await t.ok(SEARCH, { text, first: opts.first ?? 50 }, opts.key);
  return r.conversations.edges.map((e: any) => e.node.ticketNumber);
}

/** Every page of a search, following the cursors. */
async function searchAll(text: string, first: number): Promise<number[]> {
  const out: number[] = [];
  let after: string | null = null;
  for (;;) {
    const r: any = await t.ok(SEARCH, { text, first, after });
    out.push(...r.conversations.edges.map((e: any) => e.node.ticketNumber));
    if (!r.conversations.pageInfo.hasNextPage) return out;
    after = r.conversations.pageInfo.endCursor;
  }
}

async function queued(): Promise<number> {
  const [r] = await t.db.db.execute<{ n: number }>(sql`SELECT count(*)::int AS n FROM message_search_queue`);
  return r!.n;
}

async function indexAll(): Promise<number> {
  let total = 0;
  for (let n = await indexQueuedMessages(t.db.db, 100); n > 0; n = await indexQueuedMessages(t.db.db, 100)) {
    total += n;
  }
  return total;
}

async function ingest(raw: Buffer, key?: string) {
  const r = await t.ok(
    `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw, base64: true) {
       ... on IngestOutcome { conversation { id ticketNumber } } } }`,
    { a: encodeId("EmailAddress", addr.addressId), raw: raw.toString("base64") },
    key,
  );
  return r.ingestRawMessage.conversation as { id: string; ticketNumber: number };
}

/**
 * `count` conversations of the tenant, straight in SQL (the ingest path has its own tests),
 * ticket numbers from `firstTicket`, the newest last; each with an inbound message whose
 * text is `text(i)` and an outbound reply "reply i".
 */
async function seedConversations(tenantId: string, firstTicket: number, texts: string[]): Promise<void> {
  const [c] = await t.db.db.execute<{ id: string }>(sql`
    INSERT INTO contact (tenant_id, email) VALUES (${tenantId}, ${`seed${firstTicket}@customer.test`})
    RETURNING id`);
  await t.db.db.execute(sql`
    WITH conv AS (
      INSERT INTO conversation (tenant_id, ticket_number, subject, status, contact_id, received_at,
                                last_activity_at, status_changed_at)
      SELECT ${tenantId}, ${firstTicket} + i - 1, 'Seeded ' || i, 'NEW', ${c!.id},
             now() - interval '1 day' + (i || ' seconds')::interval,
             now() - interval '1 day' + (i || ' seconds')::interval, now()
        FROM generate_series(1, ${texts.length}) i
      RETURNING id, ticket_number, received_at)
    INSERT INTO message (tenant_id, conversation_id, direction, subject, text, received_at)
    SELECT ${tenantId}, conv.id, d.direction, 'Seeded',
           CASE d.direction WHEN 'INBOUND' THEN (${sql.param(texts)}::text[])[conv.ticket_number - ${firstTicket} + 1]
                ELSE 'reply ' || conv.ticket_number END,
           conv.received_at
      FROM conv, (VALUES ('INBOUND'), ('OUTBOUND')) d(direction)`);
}

describe("conversation search", () => {
  it("finds a word of a body before the indexer reached the message and after", async () => {
    const c = await ingest(
      buildRawMail({
        subject: "Broken kettle",
        messageId: "kettle@customer.example",
        text: "The descaler fizzled",
      }),
    );
    expect(await queued()).toBeGreaterThan(0);
    expect(await search("descaler")).toEqual([c.ticketNumber]);
    expect(await search("fizzled descaler")).toEqual([c.ticketNumber]); // every word, any order
    expect(await search("kettle")).toEqual([c.ticketNumber]); // the subject, as a substring
    expect(await search("descaler nowhere")).toEqual([]);

    expect(await indexAll()).toBeGreaterThan(0);
    expect(await queued()).toBe(0);
    const [doc] = await t.db.db.execute<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM message_search s JOIN conversation c ON c.id = s.conversation_id
       WHERE c.tenant_id = ${t.tenantId} AND c.ticket_number = ${c.ticketNumber}`);
    expect(doc!.n).toBe(1);
    expect(await search("descaler")).toEqual([c.ticketNumber]);
    expect(await search("DESCALER")).toEqual([c.ticketNumber]);
    expect(await search("descaler nowhere")).toEqual([]);
  });

  it("pages through matches older than the newest conversations it probes, indexed or not", async () => {
    // Enough conversations for each path of listConversations once indexed: "common" in all
    // (more than SEARCH_CAP matches, the newest SEARCH_PROBE fill the page), "sometimes" in
    // every 7th (fewer than SEARCH_CAP: one capped read), "older" in all but the newest
    // SEARCH_PROBE (more than SEARCH_CAP, none among the probed: the full read), "oldest" in #1.
    const n = SEARCH_CAP + SEARCH_PROBE + 100;
    const texts = Array.from(
      { length: n },
      (_, k) =>
        `common ${k % 7 === 0 ? "sometimes " : ""}${k < n - SEARCH_PROBE ? "older " : ""}${k === 0 ? "oldest " : ""}words of seed ${k + 1}`,
    );
    await seedConversations(t.tenantId, 10_001, texts);
    const newestFirst = (pick: (k: number) => boolean) =>
      texts
        .map((_, k) => k)
        .filter(pick)
        .reverse()
        .map((k) => 10_001 + k);

    for (const state of ["queued", "indexed", "half indexed"] as const) {
      if (state === "indexed") await indexAll();
      if (state === "half indexed") {
        // Every other seeded message back in the queue, without its document.
        await t.db.db.execute(sql`
          WITH back AS (DELETE FROM message_search s USING message m, conversation c
            WHERE m.id = s.message_id AND c.id = m.conversation_id AND c.ticket_number % 2 = 0
              AND c.ticket_number > 10000 RETURNING s.message_id, s.tenant_id)
          INSERT INTO message_search_queue (message_id, tenant_id) SELECT message_id, tenant_id FROM back`);
      }
      expect(await search("common", { first: 5 }), state).toEqual(newestFirst(() => true).slice(0, 5));
      expect(await searchAll("sometimes", 20), state).toEqual(newestFirst((k) => k % 7 === 0));
      expect(await search("older", { first: 5 }), state).toEqual(
        newestFirst((k) => k < n - SEARCH_PROBE).slice(0, 5),
      );
      expect(await search("oldest"), state).toEqual([10_001]);
      expect(await search("oldest common"), state).toEqual([10_001]);
      // A reply's words are searched too (the trigger queues every message, whoever wrote it).
      expect(await search("reply 10500"), state).toEqual([10_500]);
    }
    await indexAll();
    // Subjects ("Seeded <i>") as substrings, which no word matches: a rare one is listed by
    // the trigram index; one in every subject (more than SEARCH_CAP) is tested per row.
    expect(await search("eded 1599")).toEqual([11_599]);
    expect(await search("EDED 160")).toEqual([11_600, 10_160]);
    expect(await search("eeded", { first: 3 })).toEqual(newestFirst(() => true).slice(0, 3));
  });

  it("searches a huge message's first 100,000 characters without failing", async () => {
    // ~190,000 distinct words: its full tsvector would exceed PostgreSQL's 1 MB limit.
    const words = Array.from({ length: 190_000 }, (_, i) => `w${i.toString(36)}x`);
    const text = `hugestart ${words.join(" ")} hugeend`;
    expect(text.length).toBeGreaterThan(SEARCH_TEXT_CHARS * 10);
    await seedConversations(t.tenantId, 20_001, [text]);
    expect(await search("hugestart")).toEqual([20_001]);
    expect(await search("hugeend")).toEqual([]); // past the indexed prefix: documented limit
    expect(await indexAll()).toBeGreaterThan(0);
    expect(await search("hugestart")).toEqual([20_001]);
    expect(await search("w1x")).toEqual([20_001]);
  });

  it("never returns another tenant's conversations, queued or indexed", async () => {
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "o@other.test" });
    await seedConversations(other.tenantId, 1, ["zanzibarquill from the other tenant"]);
    await seedConversations(t.tenantId, 30_001, ["zanzibarquill here"]);
    for (const step of ["queued", "indexed"]) {
      if (step === "indexed") await indexAll();
      expect(await search("zanzibarquill"), step).toEqual([30_001]);
      expect(await search("zanzibarquill", { key: other.apiKey }), step).toEqual([1]);
    }
  });

  it("shows an agent only the matches in the agent's queues, queued or indexed", async () => {
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const elsewhere = await createQueueWithAddress(t.db.db, t.tenantId, { address: "elsewhere@acme.test" });
    await t.db.db.execute(sql`INSERT INTO queue_member (tenant_id, queue_id, user_id)
                                VALUES (${t.tenantId}, ${addr.queueId}, ${agent.id})`);
    await seedConversations(t.tenantId, 35_001, ["quokkaledger mine", "quokkaledger not mine"]);
    await t.db.db.execute(sql`UPDATE conversation SET queue_id = CASE ticket_number
        WHEN 35001 THEN ${addr.queueId}::uuid ELSE ${elsewhere.queueId}::uuid END
      WHERE tenant_id = ${t.tenantId} AND ticket_number IN (35001, 35002)`);
    for (const step of ["queued", "indexed"]) {
      if (step === "indexed") await indexAll();
      expect(await search("quokkaledger", { key: agent.key }), step).toEqual([35_001]);
      expect(await search("quokkaledger"), step).toEqual([35_002, 35_001]); // the admin sees both
    }
  });

  it("answers a query with no words (only punctuation) by subject alone", async () => {
    await seedConversations(t.tenantId, 40_001, ["plain text"]);
    await t.db.db.execute(sql`UPDATE conversation SET subject = 'What?!' WHERE tenant_id = ${t.tenantId}
                                AND ticket_number = 40001`);
    expect(await search("?!")).toEqual([40_001]);
    expect(await search("%")).toEqual([]); // LIKE wildcards match literally
  });

  it("drops queued messages that were deleted before the indexer reached them", async () => {
    await seedConversations(t.tenantId, 50_001, ["ephemeral words"]);
    await indexAll();
    await seedConversations(t.tenantId, 50_002, ["ephemeral again"]);
    expect(await queued()).toBe(2);
    await t.db.db.execute(
      sql`DELETE FROM conversation WHERE tenant_id = ${t.tenantId} AND ticket_number = 50002`,
    );
    expect(await indexQueuedMessages(t.db.db, 100)).toBe(2);
    expect(await queued()).toBe(0);
    expect(await search("ephemeral")).toEqual([50_001]);
  });
});

describe("the conversation list's tag filter", () => {
  it("takes one tag or several (all must be carried)", async () => {
    await seedConversations(t.tenantId, 60_001, ["a", "b", "c"]);
    await t.db.db.execute(sql`UPDATE conversation SET tags = CASE ticket_number
        WHEN 60001 THEN ARRAY['vip'] WHEN 60002 THEN ARRAY['vip', 'billing'] ELSE ARRAY['billing'] END
      WHERE tenant_id = ${t.tenantId} AND ticket_number BETWEEN 60001 AND 60003`);
    const byTags = async (tags: string[]) =>
      (
        await t.ok(
          `query($tags: [String!]) { conversations(filter: { tags: $tags }) { edges { node { ticketNumber } } } }`,
          {
            tags,
          },
        )
      ).conversations.edges.map((e: any) => e.node.ticketNumber);
    expect(await byTags(["vip"])).toEqual([60_002, 60_001]);
    expect(await byTags(["billing"])).toEqual([60_003, 60_002]);
    expect(await byTags(["vip", "billing"])).toEqual([60_002]);
    expect(await byTags(["nobody's tag"])).toEqual([]);
  });
});

describe("the background indexer", () => {
  it("is woken by the enqueue trigger, stands back during a burst until its lag bound, and stops", async () => {
    await indexAll();
    // The idle indexer's own look at the queue is SEARCH_SWEEP_MS (a minute) away: within
    // the few seconds below only the trigger's NOTIFY can have woken it.
    const options = { batchSize: 50, idleMs: 20, burstPerSecond: 50, maxLagMs: 60_000 };
    const indexer = startSearchIndexer(t.db, silentLogger, options);
    try {
      await indexer.idle();
      // A trickle (fewer than burstPerSecond in the last second) is indexed at once.
      await seedConversations(t.tenantId, 70_001, ["trickle one"]);
      await expect.poll(queued, { timeout: 5000, interval: 20 }).toBe(0);
      // A burst (burstPerSecond or more in the last second) waits, as ingest comes first…
      await seedConversations(
        t.tenantId,
        70_002,
        Array.from({ length: 60 }, (_, i) => `burst ${i}`),
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(await queued()).toBe(120);
      // …and idle() (tests, benches) does not wait for the burst to end.
      await indexer.idle();
      expect(await queued()).toBe(0);
    } finally {
      await indexer.stop();
    }
    // With no lag allowed, a burst is indexed at once too.
    const eager = startSearchIndexer(t.db, silentLogger, { ...options, maxLagMs: 0 });
    try {
      await eager.idle();
      await seedConversations(
        t.tenantId,
        70_100,
        Array.from({ length: 60 }, (_, i) => `eager ${i}`),
      );
      await expect.poll(queued, { timeout: 5000, interval: 20 }).toBe(0);
    } finally {
      await eager.stop();
    }
    await eager.idle(); // resolves at once once stopped (a bench waiting on a stopped indexer)
    expect(await search("burst 7")).toContain(70_009);
  });

  it("stops at once when stopped while it reads the queue", async () => {
    await indexAll();
    const indexer = startSearchIndexer(t.db, silentLogger, {
      batchSize: 50,
      idleMs: 20,
      burstPerSecond: 50,
      maxLagMs: 60_000,
    });
    await indexer.idle(); // waiting for work, with no read of the queue under way
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => {
      locked = r;
    });
    // Holds the queue table so that the indexer's next read of it waits for the lock.
    const holder = t.db.sql.begin(async (tx) => {
      await tx`LOCK TABLE message_search_queue IN ACCESS EXCLUSIVE MODE`;
      locked();
      await new Promise<void>((r) => {
        release = r;
      });
    });
    try {
      await isLocked;
      await t.db.sql`SELECT pg_notify('switchboard_search', '')`; // wakes it: it reads the queue
      const waiting = async () => {
        const [r] = await t.db.sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE wait_event_type = 'Lock' AND query LIKE '%message_search_queue%'
             AND query NOT LIKE '%pg_stat_activity%'`;
        return r!.n;
      };
      await expect.poll(waiting, { timeout: 5000, interval: 20 }).toBe(1);
      const started = performance.now();
      const stopping = indexer.stop();
      release();
      await holder;
      // Before the fix, the read found nothing queued and the loop began its minute-long
      // wait for work although it had been stopped.
      await Promise.race([
        stopping,
        new Promise((_, reject) => setTimeout(() => reject(new Error("stop() did not return")), 5000)),
      ]);
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      release?.();
      await holder.catch(() => {});
    }
  });
});
