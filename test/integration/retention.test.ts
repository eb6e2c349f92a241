import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { silentLogger } from "../../src/engine/context.js";
import type { IngestResult } from "../../src/engine/ingest/ingest.js";
import { purgeExpired } from "../../src/engine/retention.js";
import { indexQueuedMessages } from "../../src/engine/search.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { ingestRaw } from "../helpers/ingest.js";
import { buildRawMail, type RawMailSpec } from "../helpers/raw-mail.js";

// Retention (SPEC §11): closed conversations and rejected mail past the tenant's period go,
// with everything that hangs on them; nothing else does.
let t: TestApp;
let seq = 0;

beforeAll(async () => {
  t = await startTestApp({ env: { SEARCH_INDEXER: "false" } });
});
afterAll(async () => {
  await t?.stop();
});

async function ingest(tenantId: string, addressId: string, spec: RawMailSpec = {}): Promise<IngestResult> {
  seq += 1;
  const raw = buildRawMail({
    subject: `Retained ${seq}`,
    messageId: `retention-${seq}@customer.example`,
    attachments: [{ filename: "a.pdf", contentType: "application/pdf", content: Buffer.from(`pdf ${seq}`) }],
    ...spec,
  });
  return ingestRaw(t.app.engine, { tenantId, addressId }, raw);
}

const convId = (r: IngestResult) => {
  if (r.status !== "stored") throw new Error(`not stored: ${JSON.stringify(r)}`);
  return r.conversationId;
};

async function close(id: string, daysAgo: number) {
  await t.db.db.execute(sql`UPDATE conversation SET status = 'CLOSED', work_state = 'DONE',
    closed_at = now() - make_interval(days => ${daysAgo}) WHERE id = ${id}`);
}

async function count(query: ReturnType<typeof sql>): Promise<number> {
  const [r] = await t.db.db.execute<{ n: number }>(query);
  return r!.n;
}

/** Rows anywhere that belong to a conversation. */
async function footprint(id: string) {
  return {
    conversation: await count(sql`SELECT count(*)::int AS n FROM conversation WHERE id = ${id}`),
    messages: await count(sql`SELECT count(*)::int AS n FROM message WHERE conversation_id = ${id}`),
    attachments:
      await count(sql`SELECT count(*)::int AS n FROM attachment a JOIN message m ON m.id = a.message_id
                                 WHERE m.conversation_id = ${id}`),
    events: await count(sql`SELECT count(*)::int AS n FROM event WHERE conversation_id = ${id}`),
    searchDocs: await count(sql`SELECT count(*)::int AS n FROM message_search WHERE conversation_id = ${id}`),
  };
}

describe("retention", () => {
  it("purges conversations closed before the period with their messages, attachments, raw mail, search documents and events, and old rejected mail", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, {
      addressFields: { spamRouting: "DROP" },
    });
    await t.db.db.execute(sql`UPDATE tenant SET retention_days = 30 WHERE id = ${t.tenantId}`);

    const old1 = convId(await ingest(t.tenantId, addr.addressId));
    const old2 = convId(await ingest(t.tenantId, addr.addressId));
    const old3 = convId(await ingest(t.tenantId, addr.addressId));
    const recent = convId(await ingest(t.tenantId, addr.addressId)); // closed 10 days ago
    const open = convId(await ingest(t.tenantId, addr.addressId)); // never closed
    const resolvedLongAgo = convId(await ingest(t.tenantId, addr.addressId)); // RESOLVED, not CLOSED
    const linked = convId(await ingest(t.tenantId, addr.addressId)); // a later conversation linking to old1
    // old1's messages indexed for search; old2's still in the indexer's queue.
    await t.db.db.execute(sql`DELETE FROM message_search_queue WHERE message_id NOT IN
      (SELECT id FROM message WHERE conversation_id = ${old1})`);
    expect(await indexQueuedMessages(t.db.db, 100)).toBeGreaterThan(0);
    await t.db.db.execute(sql`INSERT INTO message_search_queue (message_id, tenant_id)
      SELECT id, tenant_id FROM message WHERE conversation_id = ${old2}`);
    for (const id of [old1, old2, old3]) await close(id, 40);
    await close(recent, 10);
    await t.db.db.execute(sql`UPDATE conversation SET status = 'RESOLVED', resolved_at = now() - interval '90 days'
      WHERE id = ${resolvedLongAgo}`);
    await t.db.db.execute(
      sql`UPDATE conversation SET previous_conversation_id = ${old1} WHERE id = ${linked}`,
    );
    const rawIds = await t.db.db.execute<{ raw_message_id: string }>(
      sql`SELECT raw_message_id FROM message WHERE conversation_id IN (${old1}, ${old2}, ${old3})`,
    );
    expect(rawIds).toHaveLength(3);
    expect((await footprint(old1)).searchDocs).toBe(1);

    // Rejected mail: a dropped spam from 40 days ago and one from today.
    const spamOld = await ingest(t.tenantId, addr.addressId, { headers: { "X-Spam-Flag": "YES" } });
    const spamNew = await ingest(t.tenantId, addr.addressId, { headers: { "X-Spam-Flag": "YES" } });
    if (spamOld.status !== "rejected" || spamNew.status !== "rejected") throw new Error("spam not dropped");
    await t.db.db.execute(
      sql`UPDATE rejected_message SET received_at = now() - interval '40 days' WHERE id = ${spamOld.rejectedId}`,
    );

    // Another tenant keeps everything (no retention), however old.
    const other = await createTenantWithAdmin(t.db.db, {
      tenantName: "Keeper",
      adminEmail: "admin@keeper.test",
    });
    const otherAddr = await createQueueWithAddress(t.db.db, other.tenantId);
    const otherOld = convId(await ingest(other.tenantId, otherAddr.addressId));
    await close(otherOld, 4000);

    const contactsBefore = await count(
      sql`SELECT count(*)::int AS n FROM contact WHERE tenant_id = ${t.tenantId}`,
    );
    // Batches of one: the loop, not one statement, has to reach them all.
    const summaries = await purgeExpired(
      { db: t.db.db, clock: { now: () => new Date() }, log: silentLogger },
      { batch: 1 },
    );
    expect(summaries).toEqual([
      {
        tenantId: t.tenantId,
        before: expect.any(Date),
        conversations: 3,
        messages: 3,
        rawMessages: 4, // three messages' and the old spam's
        rejectedMessages: 1,
      },
    ]);
    for (const id of [old1, old2, old3]) {
      expect(await footprint(id)).toEqual({
        conversation: 0,
        messages: 0,
        attachments: 0,
        events: 0,
        searchDocs: 0,
      });
    }
    expect(
      await count(
        sql`SELECT count(*)::int AS n FROM raw_message WHERE id IN (${sql.join(
          rawIds.map((r) => sql`${r.raw_message_id}::uuid`),
          sql`, `,
        )})`,
      ),
    ).toBe(0);
    expect(
      await count(sql`SELECT count(*)::int AS n FROM message_search_queue q
        WHERE NOT EXISTS (SELECT 1 FROM message m WHERE m.id = q.message_id)`),
    ).toBe(0);
    for (const id of [recent, open, resolvedLongAgo, linked]) {
      const f = await footprint(id);
      expect(f.conversation).toBe(1);
      expect(f.messages).toBe(1);
      expect(f.attachments).toBe(1);
    }
    expect((await footprint(otherOld)).messages).toBe(1);
    const [link] = await t.db.db.execute<{ p: string | null }>(
      sql`SELECT previous_conversation_id AS p FROM conversation WHERE id = ${linked}`,
    );
    expect(link!.p).toBeNull();
    expect(
      await count(sql`SELECT count(*)::int AS n FROM rejected_message WHERE id = ${spamOld.rejectedId}`),
    ).toBe(0);
    expect(
      await count(sql`SELECT count(*)::int AS n FROM rejected_message WHERE id = ${spamNew.rejectedId}`),
    ).toBe(1);
    // Contacts are the tenant's customer records, not mail: they stay.
    expect(await count(sql`SELECT count(*)::int AS n FROM contact WHERE tenant_id = ${t.tenantId}`)).toBe(
      contactsBefore,
    );

    // The purge is on the tenant's timeline, with its figures.
    const [ev] = await t.db.db.execute<{ payload: Record<string, unknown>; conversation_id: string | null }>(
      sql`SELECT payload, conversation_id FROM event WHERE tenant_id = ${t.tenantId} AND type = 'retention.purged'`,
    );
    expect(ev).toMatchObject({
      conversation_id: null,
      payload: { conversations: 3, messages: 3, rawMessages: 4, rejectedMessages: 1 },
    });

    // The API no longer finds a purged conversation; a later one still works.
    const node = `query($id: ID!) { node(id: $id) { id } }`;
    expect((await t.ok(node, { id: encodeId("Conversation", old1) })).node).toBeNull();
    expect((await t.ok(node, { id: encodeId("Conversation", linked) })).node).not.toBeNull();

    // Nothing left to do: a second run purges nothing and writes no event.
    expect(await purgeExpired({ db: t.db.db, clock: { now: () => new Date() }, log: silentLogger })).toEqual(
      [],
    );
    expect(
      await count(
        sql`SELECT count(*)::int AS n FROM event WHERE tenant_id = ${t.tenantId} AND type = 'retention.purged'`,
      ),
    ).toBe(1);
  });

  it("leaves a conversation that is locked right now for the next run", async () => {
    const tenant = await createTenantWithAdmin(t.db.db, {
      tenantName: "Locked",
      adminEmail: "admin@locked.test",
    });
    const addr = await createQueueWithAddress(t.db.db, tenant.tenantId);
    await t.db.db.execute(sql`UPDATE tenant SET retention_days = 1 WHERE id = ${tenant.tenantId}`);
    const a = convId(await ingest(tenant.tenantId, addr.addressId));
    const b = convId(await ingest(tenant.tenantId, addr.addressId));
    await close(a, 5);
    await close(b, 5);
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => {
      locked = r;
    });
    const holder = t.db.sql.begin(async (tx) => {
      await tx`SELECT 1 FROM conversation WHERE id = ${a} FOR UPDATE`;
      locked();
      await new Promise<void>((r) => {
        release = r;
      });
    });
    await isLocked;
    const ctx = { db: t.db.db, clock: { now: () => new Date() }, log: silentLogger };
    try {
      const [s] = await purgeExpired(ctx, { tenantId: tenant.tenantId });
      expect(s).toMatchObject({ conversations: 1 });
      expect((await footprint(a)).conversation).toBe(1);
      expect((await footprint(b)).conversation).toBe(0);
    } finally {
      release();
      await holder;
    }
    const [s] = await purgeExpired(ctx, { tenantId: tenant.tenantId });
    expect(s).toMatchObject({ conversations: 1 });
    expect((await footprint(a)).conversation).toBe(0);
  });
});
