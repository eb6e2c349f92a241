/**
 * The plans of the per-message duplicate checks, as PostgreSQL makes them for a prepared
 * statement (postgres.js prepares every statement; after five runs PostgreSQL may keep a
 * generic plan, made without the parameters' values). A generic plan made while a new
 * tenant's message table had no statistics once chose `message_tenant_msgid_idx` on
 * tenant_id alone — every message of the tenant read for every message ingested (1.07 ms
 * of PostgreSQL per message while draining an IMAP backlog of 2,000, growing with the
 * table). Each check must
 * find its rows by the message's own keys (IMAP position, Message-ID, content hash),
 * whatever the statistics say.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawClient } from "../../src/db/client.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { duplicateChecks, earlierRepliesQuery, type IngestInput } from "../../src/engine/ingest/ingest.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { makeParsedMail } from "../helpers/parsed-mail.js";

let db: TestDatabase;
let tenantId: string;
let addressId: string;

beforeAll(async () => {
  db = await createTestDatabase({ max: 2 });
  ({ tenantId } = await createTenantWithAdmin(db.db, {
    tenantName: "Plans",
    adminEmail: "admin@plans.test",
  }));
  ({ addressId } = await createQueueWithAddress(db.db, tenantId, { address: "support@plans.test" }));
  const sql = rawClient(db.db);
  // No statistics while the table fills (as in a new tenant's first backlog drain), and
  // none taken behind the test's back.
  await sql`ALTER TABLE message SET (autovacuum_enabled = false)`;
  const [contact] = await sql<{ id: string }[]>`
    INSERT INTO contact (tenant_id, email, name) VALUES (${tenantId}, 'alice@customer.example', 'Alice') RETURNING id`;
  const [conv] = await sql<{ id: string }[]>`
    INSERT INTO conversation (tenant_id, ticket_number, contact_id, received_at, last_activity_at, status_changed_at)
    VALUES (${tenantId}, 1, ${contact!.id}, now(), now(), now()) RETURNING id`;
  // 2,000 messages of one tenant, 1.3 KB of text each; every 10th without a Message-ID.
  await sql`
    INSERT INTO message (tenant_id, conversation_id, direction, message_id_header, content_hash, received_at, uid_validity, uid, text)
    SELECT ${tenantId}, ${conv!.id}, 'INBOUND',
           CASE WHEN i % 10 = 0 THEN NULL ELSE 'm' || i || '@customer.example' END,
           md5(i::text) || md5((i + 1)::text), now(), 1, i,
           (SELECT string_agg(md5(random()::text || j), '') FROM generate_series(1, 40) j WHERE i > 0)
      FROM generate_series(1, 2000) i`;
});
afterAll(async () => {
  await db?.drop();
});

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Index Cond"?: string;
  Plans?: PlanNode[];
}

type Scan = { type: string; index: string | null; cond: string };
type Runner = Pick<ReturnType<typeof rawClient>, "unsafe">;

/** Every scan of `message` in the generic plan of `statement`, with its index conditions. */
async function messageScans(statement: string, sql: Runner = rawClient(db.db)): Promise<Scan[]> {
  const [row] = await sql.unsafe(`EXPLAIN (GENERIC_PLAN, FORMAT JSON) ${statement}`).simple();
  const root = (row!["QUERY PLAN"] as { Plan: PlanNode }[])[0]!.Plan;
  const scans: Scan[] = [];
  // A bitmap heap scan names its index and condition in its Bitmap Index Scan children.
  const below = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(below)];
  const walk = (n: PlanNode): void => {
    if (n["Relation Name"] === "message") {
      const parts = below(n);
      scans.push({
        type: n["Node Type"],
        index: parts.find((p) => p["Index Name"])?.["Index Name"] ?? null,
        cond: parts
          .map((p) => p["Index Cond"] ?? "")
          .join(" ")
          .trim(),
      });
    }
    for (const c of n.Plans ?? []) walk(c);
  };
  walk(root);
  return scans;
}

const input = (over: Partial<IngestInput> & { messageId: string | null }): IngestInput => ({
  tenantId,
  addressId,
  raw: Buffer.from("x"),
  parsed: {
    ok: true,
    mail: makeParsedMail({
      messageId: over.messageId,
      rawSha256: "a".repeat(64),
      contentHash: "b".repeat(64),
    }),
    sanitized: null,
  },
  receivedAt: new Date(),
  source: {
    kind: "imap",
    accountId: "00000000-0000-4000-8000-000000000001",
    mailbox: "INBOX",
    uidValidity: 1,
    uid: 7,
  },
  ...over,
});

describe("the duplicate checks' generic plans", () => {
  const cases = [
    ["mail with a Message-ID", "m5@customer.example"],
    ["mail without a Message-ID", null],
  ] as const;
  // In this order: the table has no statistics until the second test analyses it.
  for (const stats of ["without statistics", "with statistics"]) {
    it(`look each message up by its own keys, not by tenant alone (${stats})`, async () => {
      if (stats === "with statistics") await rawClient(db.db)`ANALYZE message`;
      for (const [what, messageId] of cases) {
        const { string } = await duplicateChecks(rawClient(db.db), input({ messageId })).describe();
        const scans = await messageScans(string);
        // The IMAP position and the content check: two scans of message.
        expect(scans, what).toHaveLength(2);
        for (const scan of scans) {
          expect(scan.type, `${what}: ${JSON.stringify(scan)}`).not.toBe("Seq Scan");
          expect(scan.cond, `${what}: ${JSON.stringify(scan)}`).toMatch(
            /\buid = |content_hash|message_id_header/,
          );
        }
      }
    });
  }

  // The planner picks among usable indexes by estimated cost, and its estimates are only as
  // good as the statistics; so no index must be usable on tenant_id alone. Each index of
  // message is offered alone (the others dropped in a transaction that is rolled back).
  it("gives every index it can use the message's own key, not tenant_id alone", async () => {
    const sql = rawClient(db.db);
    const indexes = await sql<{ name: string; constraint: boolean }[]>`
      SELECT i.indexrelid::regclass::text AS name, EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) AS constraint
        FROM pg_index i WHERE i.indrelid = 'message'::regclass`;
    expect(indexes.map((i) => i.name)).toEqual(
      expect.arrayContaining(["message_tenant_msgid_idx", "message_tenant_hash_idx", "message_imap_uid_uq"]),
    );
    const rollback = new Error("rollback");
    for (const [what, messageId] of cases) {
      const { string } = await duplicateChecks(sql, input({ messageId })).describe();
      for (const keep of indexes) {
        let scans: Scan[] = [];
        await sql
          .begin(async (tx) => {
            for (const other of indexes) {
              if (other.name === keep.name) continue;
              await tx.unsafe(
                other.constraint
                  ? `ALTER TABLE message DROP CONSTRAINT ${other.name} CASCADE`
                  : `DROP INDEX ${other.name}`,
              );
            }
            await tx`SET LOCAL enable_seqscan = off`;
            scans = await messageScans(string, tx);
            throw rollback;
          })
          .catch((e) => {
            if (e !== rollback) throw e;
          });
        for (const scan of scans.filter((x) => x.index === keep.name && x.cond !== "")) {
          expect(scan.cond, `${what}, ${keep.name} alone`).toMatch(/\buid = |content_hash|message_id_header/);
        }
      }
    }
  });

  it("sends no lookup for what a message cannot be a duplicate of", async () => {
    const smtp = input({
      messageId: "m5@customer.example",
      source: { kind: "smtp", mailFrom: null, rcptTo: [] },
    });
    const { string } = await duplicateChecks(rawClient(db.db), smtp).describe();
    expect(await messageScans(string)).toHaveLength(1);
    const unparsed = input({
      messageId: null,
      parsed: { ok: false, reason: "unparseable", detail: "x", sizeBytes: 1 } as IngestInput["parsed"],
    });
    const { string: s2 } = await duplicateChecks(rawClient(db.db), unparsed).describe();
    expect(await messageScans(s2)).toHaveLength(1);
  });
});

describe("the lookup of replies that arrived first", () => {
  it("finds them by the mail's own Message-ID, not by tenant alone", async () => {
    const { string } = await earlierRepliesQuery(
      rawClient(db.db),
      tenantId,
      "m5@customer.example",
    ).describe();
    const scans = await messageScans(string);
    expect(scans).toHaveLength(1);
    expect(scans[0]).toMatchObject({ index: "message_tenant_irt_idx" });
    expect(scans[0]!.cond).toMatch(/in_reply_to = /);
  });
});
