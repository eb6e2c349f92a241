import { randomBytes, randomUUID } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawClient } from "../../src/db/client.js";
import {
  fillLargeBytea,
  insertRows,
  insertRowsInParts,
  LARGE_BYTEA_BYTES,
  rowFromJson,
} from "../../src/db/fast.js";
import {
  attachment,
  contact,
  conversation,
  emailAddress,
  message,
  queue,
  rawMessage,
  rule,
  tenant,
} from "../../src/db/schema/index.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

// The ingest hot path reads and writes rows without the query builder (src/db/fast.ts).
// What it reads must be exactly what drizzle's select returns, and what it writes exactly
// what drizzle's insert writes: these compare the two on rows with every kind of column.

let db: TestDatabase;
let tenantId: string;

beforeAll(async () => {
  db = await createTestDatabase({ max: 2 });
  const [t] = await db.db
    .insert(tenant)
    .values({ name: "Fast", company: "Fast Ltd", processingLimit: 7, activeToPausedDays: null })
    .returning();
  tenantId = t!.id;
});
afterAll(async () => {
  await db?.drop();
});

async function asJson(table: string, id: string): Promise<Record<string, unknown>> {
  const rows = await db.sql.unsafe(`SELECT row_to_json(t) AS j FROM "${table}" t WHERE t.id = $1`, [id]);
  return rows[0]!.j as Record<string, unknown>;
}

describe("rowFromJson", () => {
  it("maps tenant, address, queue and rule rows exactly as drizzle's select does", async () => {
    const [q] = await db.db
      .insert(queue)
      .values({
        tenantId,
        name: "Q",
        description: "d",
        requiredSkillIds: [randomUUID()],
      } as typeof queue.$inferInsert)
      .returning();
    const [a] = await db.db
      .insert(emailAddress)
      .values({ tenantId, address: "fast@example.test", name: "F", queueId: q!.id, priority: 3 })
      .returning();
    const [r] = await db.db
      .insert(rule)
      .values({
        tenantId,
        addressId: a!.id,
        name: "R",
        position: 2,
        conditions: [{ field: "SUBJECT", operator: "CONTAINS", value: "x" }],
        actions: [{ type: "ADD_TAGS", tags: ["t"] }],
      } as unknown as typeof rule.$inferInsert)
      .returning();
    for (const [table, name, id] of [
      [tenant, "tenant", tenantId],
      [queue, "queue", q!.id],
      [emailAddress, "email_address", a!.id],
      [rule, "rule", r!.id],
    ] as const) {
      const [viaDrizzle] = await db.db
        .select()
        .from(table)
        .where(eq(table.id, id as string));
      expect(rowFromJson(table, await asJson(name, id))).toEqual(viaDrizzle);
    }
  });
});

describe("insertRows", () => {
  it("writes the same row drizzle's insert writes (defaults, arrays, jsonb, bytea, timestamps, nulls)", async () => {
    const [c] = await db.db
      .insert(contact)
      .values({ tenantId, email: `c-${randomUUID()}@example.test`, name: "C" })
      .returning();
    const at = new Date("2031-02-03T04:05:06.789Z");
    const skills = [randomUUID(), randomUUID()];
    const conv = (id: string, ticket: number) => ({
      id,
      tenantId,
      ticketNumber: ticket,
      subject: "Sübject 'quoted' \"x\"",
      status: "NEW" as const,
      contactId: c!.id,
      queueId: null,
      requiredSkillIds: skills,
      language: null,
      priority: 4,
      tags: ["a", "b,c", 'd"e', "{f}"],
      spam: true,
      workState: "WAITING" as const,
      enqueuedAt: at,
      receivedAt: at,
      lastInboundAt: at,
      lastActivityAt: at,
      statusChangedAt: at,
    });
    const [a, b] = [randomUUID(), randomUUID()];
    await db.db.insert(conversation).values(conv(a, 900001));
    await insertRows(db.sql, conversation, [conv(b, 900002)]).execute();

    const data = randomBytes(3000);
    const raw = (id: string) => ({ id, tenantId, sha256: "ab".repeat(32), sizeBytes: data.length, data });
    const [ra, rb] = [randomUUID(), randomUUID()];
    await db.db.insert(rawMessage).values(raw(ra));
    await insertRows(db.sql, rawMessage, [raw(rb)]).execute();

    const msg = (id: string, conversationId: string, rawMessageId: string) => ({
      id,
      tenantId,
      conversationId,
      direction: "INBOUND" as const,
      messageIdHeader: `m-${id}@example.test`,
      inReplyTo: null,
      references: ["<x@y>", "<z@w>"],
      from: { address: "c@example.test", name: 'C "Q"' },
      to: [{ address: "fast@example.test", name: "" }],
      cc: [],
      replyTo: [],
      subject: "S",
      text: "line\nline ✓",
      html: null,
      remoteResources: [],
      headers: { "x-a": ["1", "2"], subject: ["S"] },
      parseWarnings: ["w1"],
      dateHeader: null,
      receivedAt: at,
      autoSubmitted: false,
      spam: false,
      uidValidity: 4_000_000_000,
      uid: 12,
      contentHash: "cd".repeat(32),
      rawMessageId,
      sizeBytes: 42,
    });
    const [ma, mb] = [randomUUID(), randomUUID()];
    await db.db.insert(message).values(msg(ma, a, ra));
    await insertRows(db.sql, message, [msg(mb, b, rb)]).execute();

    const att = (messageId: string) =>
      [0, 1].map((i) => ({
        tenantId,
        messageId,
        filename: `f${i}.bin`,
        contentType: "application/octet-stream",
        sizeBytes: data.length,
        contentId: i === 0 ? null : "cid@x",
        inline: i === 1,
        sha256: "ef".repeat(32),
        data,
      }));
    await db.db.insert(attachment).values(att(ma));
    await insertRows(db.sql, attachment, att(mb)).execute();

    const strip = <T extends Record<string, unknown>>(row: T, ...keys: string[]) => {
      const out: Record<string, unknown> = { ...row };
      for (const k of ["id", "createdAt", "updatedAt", ...keys]) delete out[k];
      return out;
    };
    const one = async (t: typeof conversation | typeof rawMessage | typeof message, id: string) => {
      const table = t as typeof message;
      return (await db.db.select().from(table).where(eq(table.id, id)))[0] as Record<string, unknown>;
    };
    expect(strip(await one(conversation, b), "ticketNumber")).toEqual(
      strip(await one(conversation, a), "ticketNumber"),
    );
    expect(strip(await one(rawMessage, rb))).toEqual(strip(await one(rawMessage, ra)));
    expect((await one(rawMessage, rb)).data).toEqual(data);
    expect(strip(await one(message, mb), "conversationId", "rawMessageId", "messageIdHeader")).toEqual(
      strip(await one(message, ma), "conversationId", "rawMessageId", "messageIdHeader"),
    );
    const atts = async (messageId: string) =>
      (
        await db.db
          .select()
          .from(attachment)
          .where(eq(attachment.messageId, messageId))
          .orderBy(attachment.filename)
      ).map((r) => strip(r, "messageId"));
    expect(await atts(mb)).toEqual(await atts(ma));
    // Database defaults applied for what the row left out, as with drizzle.
    const [defaults] = await db.db.execute<{ n: number }>(
      sql`SELECT count(*)::int AS n FROM message WHERE id = ${mb} AND outbound_status IS NULL AND send_attempts = 0 AND bcc = '[]'::jsonb`,
    );
    expect(defaults!.n).toBe(1);
  });

  it("refuses a field the table does not have, and no rows", () => {
    expect(() => insertRows(db.sql, rawMessage, [{ nope: 1 } as never])).toThrow(
      /raw_message has no field nope/,
    );
    expect(() => insertRows(db.sql, rawMessage, [])).toThrow(/no rows/);
  });

  it("fillLargeBytea writes a large value in parts, byte for byte, and leaves nothing behind", async () => {
    const data = randomBytes(3 * LARGE_BYTEA_BYTES + 12_345);
    const id = randomUUID();
    await db.db.transaction(async (tx) => {
      const sql = rawClient(tx);
      await insertRows(sql, rawMessage, [
        { id, tenantId, sha256: "00".repeat(32), sizeBytes: data.length, data: Buffer.alloc(0) },
      ]).execute();
      await fillLargeBytea(sql, rawMessage, "data", id, data);
      const [parts] = await sql`SELECT count(*)::int AS n FROM sb_bytea_part`;
      expect(parts!.n).toBe(0);
    });
    const [row] = await db.db.select().from(rawMessage).where(eq(rawMessage.id, id));
    expect(row!.data.equals(data)).toBe(true);

    // Rolled back with it: neither the row nor its parts stay.
    const other = randomUUID();
    await expect(
      db.db.transaction(async (tx) => {
        const sql = rawClient(tx);
        await insertRows(sql, rawMessage, [
          { id: other, tenantId, sha256: "00".repeat(32), sizeBytes: 1, data: Buffer.alloc(0) },
        ]).execute();
        await fillLargeBytea(sql, rawMessage, "data", other, data);
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await db.db.select().from(rawMessage).where(eq(rawMessage.id, other))).toEqual([]);
  });

  it("insertRowsInParts sends small rows whole and large values in parts, and says which", async () => {
    const small = randomBytes(100);
    const large = randomBytes(LARGE_BYTEA_BYTES + 1);
    const [a, b] = [randomUUID(), randomUUID()];
    const row = (id: string, data: Buffer) => ({
      id,
      tenantId,
      sha256: "00".repeat(32),
      sizeBytes: data.length,
      data,
    });
    await db.db.transaction(async (tx) => {
      const whole = insertRowsInParts(rawClient(tx), rawMessage, [row(a, small)]);
      const parts = insertRowsInParts(rawClient(tx), rawMessage, [row(b, large)]);
      expect([whole.inParts, parts.inParts]).toEqual([false, true]);
      await Promise.all([whole.done, parts.done]);
    });
    for (const [id, data] of [
      [a, small],
      [b, large],
    ] as const) {
      const [r] = await db.db.select().from(rawMessage).where(eq(rawMessage.id, id));
      expect(r!.data.equals(data)).toBe(true);
    }
    expect(() =>
      insertRowsInParts(db.sql, rawMessage, [{ tenantId, sha256: "", sizeBytes: 0, data: large }]),
    ).toThrow(/needs its id/);
  });
});
