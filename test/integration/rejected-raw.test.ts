import { createHash, randomBytes, randomUUID } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rejectedMessage } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";

// Rejected mail is kept for audit (SPEC): an admin downloads the raw original, byte for
// byte, with the same key and the same 404 rules as an attachment download.
const MAX = 4 * 1024 * 1024;
let t: TestApp;
let base: string;
let addressId: string;
/** Statements reading a slice of a raw message: how a download was read. */
let partReads = 0;

async function ingest(raw: Buffer): Promise<{ status: string; reason: string | null }> {
  const r = await t.ok(
    `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw, base64: true) {
      ... on IngestOutcome { status reason } } }`,
    { a: encodeId("EmailAddress", addressId), raw: raw.toString("base64") },
  );
  return r.ingestRawMessage;
}

/** The one rejected record with this reason, as the API lists it, and its row id. */
async function rejected(reason: string) {
  const r = await t.ok(
    `{ rejectedMessages(first: 100) { edges { node { id reason rawAvailable rawDownloadPath } } } }`,
  );
  const nodes = r.rejectedMessages.edges.map((e: any) => e.node).filter((n: any) => n.reason === reason);
  expect(nodes).toHaveLength(1);
  const [row] = await t.db.db
    .select({ id: rejectedMessage.id })
    .from(rejectedMessage)
    .where(eq(rejectedMessage.reason, reason));
  expect(nodes[0].id).toBe(encodeId("RejectedMessage", row!.id));
  return { ...(nodes[0] as { rawAvailable: boolean; rawDownloadPath: string | null }), rowId: row!.id };
}

const get = (path: string, key?: string | null) =>
  fetch(base + path, key === null ? {} : { headers: { authorization: `Bearer ${key ?? t.adminKey}` } });

// Spam with 8-bit bytes of every value in its body, larger than a read part (512 KB) and not
// a multiple of it, and larger than the 1 MB above which ingest stores the raw in parts.
const spam = Buffer.concat([
  buildRawMail({ subject: "Cheap kettles", headers: { "X-Spam-Flag": "YES" }, text: "Buy now." }),
  randomBytes(2 * 1024 * 1024 + 12_345),
  Buffer.from("\r\n"),
]);
// Nothing but an empty header block: the parser gives up (reason unparseable).
const garbage = Buffer.from("\r\n\r\n");
let spamId: string;

beforeAll(async () => {
  t = await startTestApp({
    env: { MAX_MESSAGE_BYTES: String(MAX) },
    onQuery: (q) => {
      if (q.includes("substring(data FROM")) partReads++;
    },
  });
  base = t.url.replace(/\/graphql$/, "");
  ({ addressId } = await createQueueWithAddress(t.db.db, t.tenantId, {
    address: "support@acme.test",
    addressFields: { spamRouting: "DROP" },
  }));
  expect(await ingest(spam)).toEqual({ status: "rejected", reason: "spam_dropped" });
  expect(await ingest(garbage)).toEqual({ status: "rejected", reason: "unparseable" });
  spamId = (await rejected("spam_dropped")).rowId;
});
afterAll(async () => {
  await t?.stop();
});

describe("downloading a rejected message's raw original", () => {
  it("gives an admin the spam-dropped mail byte for byte as message/rfc822, as a download", async () => {
    const r = await rejected("spam_dropped");
    expect(r.rawAvailable).toBe(true);
    expect(r.rawDownloadPath).toBe(`/rejected-messages/${spamId}/raw`);
    partReads = 0;
    const res = await get(r.rawDownloadPath!);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("message/rfc822");
    expect(res.headers.get("content-disposition")).toBe(`attachment; filename="rejected-${spamId}.eml"`);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("content-length")).toBe(String(spam.length));
    const body = Buffer.from(await res.arrayBuffer());
    expect(body.length).toBe(spam.length);
    expect(body.equals(spam)).toBe(true);
    // In parts, never the whole 2 MB (80 MB for the largest mail) as one hex text.
    expect(partReads).toBeGreaterThan(1);
  });

  it("sends it as attachments are sent: ETag (304), one byte range (206/416), HEAD", async () => {
    const path = `/rejected-messages/${spamId}/raw`;
    const etag = `"${createHash("sha256").update(spam).digest("hex")}"`;
    const whole = await get(path);
    expect([whole.headers.get("etag"), whole.headers.get("accept-ranges")]).toEqual([etag, "bytes"]);
    await whole.arrayBuffer();
    const auth = { authorization: `Bearer ${t.adminKey}` };
    expect((await fetch(base + path, { headers: { ...auth, "if-none-match": etag } })).status).toBe(304);
    const part = await fetch(base + path, { headers: { ...auth, range: "bytes=524280-524300" } });
    expect([part.status, part.headers.get("content-range")]).toEqual([
      206,
      `bytes 524280-524300/${spam.length}`,
    ]);
    expect(Buffer.from(await part.arrayBuffer()).equals(spam.subarray(524280, 524301))).toBe(true);
    const past = await fetch(base + path, { headers: { ...auth, range: `bytes=${spam.length}-` } });
    expect(past.status).toBe(416);
    const head = await fetch(base + path, { method: "HEAD", headers: auth });
    expect([head.status, head.headers.get("content-length")]).toEqual([200, String(spam.length)]);
  });

  it("gives an admin the unparseable mail byte for byte", async () => {
    const r = await rejected("unparseable");
    expect(r.rawDownloadPath).toBe(`/rejected-messages/${r.rowId}/raw`);
    const res = await get(r.rawDownloadPath!);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(garbage)).toBe(true);
  });

  it("refuses agents and supervisors as attachments refuse what a caller may not see: 404", async () => {
    const path = `/rejected-messages/${spamId}/raw`;
    for (const role of ["AGENT", "SUPERVISOR"] as const) {
      const u = await createUserWithKey(t.db.db, t.tenantId, role);
      const res = await get(path, u.key);
      expect({ role, status: res.status }).toEqual({ role, status: 404 });
      expect(await res.json()).toEqual({ error: "not found" });
    }
    // Without a key at all: 401, as for attachments.
    expect((await get(path, null)).status).toBe(401);
    expect((await get(path, "sb_nonsense")).status).toBe(401);
  });

  it("answers another tenant's admin 404, as for an ID that does not exist", async () => {
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "o@other.test" });
    const res = await get(`/rejected-messages/${spamId}/raw`, other.apiKey);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "not found" });
  });

  it("answers 404 for an unknown or malformed ID and any other path under the prefix", async () => {
    for (const path of [
      `/rejected-messages/${randomUUID()}/raw`,
      "/rejected-messages/not-a-uuid/raw",
      `/rejected-messages/${spamId}`,
      `/rejected-messages/${spamId}/raw/x`,
    ]) {
      const res = await get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
    }
  });

  it("gives no path for oversize mail, whose raw is not kept, and 404 for its ID", async () => {
    const big = buildRawMail({ subject: "Huge", text: "x".repeat(MAX + 1024) });
    expect(await ingest(big)).toEqual({ status: "rejected", reason: "oversize" });
    const r = await rejected("oversize");
    expect(r).toMatchObject({ rawAvailable: false, rawDownloadPath: null });
    expect((await get(`/rejected-messages/${r.rowId}/raw`)).status).toBe(404);
  });

  it("reads a raw stored compressed (before migration 0010) whole, byte for byte", async () => {
    // Last in the file: it rewrites the unparseable record's raw.
    const { rowId, rawDownloadPath } = await rejected("unparseable");
    const compressible = Buffer.from(`Subject: old\r\n\r\n${"Dear customer, ".repeat(100_000)}\r\n`);
    await t.db.db.execute(sql`ALTER TABLE raw_message ALTER COLUMN data SET STORAGE EXTENDED`);
    try {
      await t.db.db.execute(sql`
        UPDATE raw_message r SET data = ${compressible}::bytea FROM rejected_message j
        WHERE j.id = ${rowId} AND r.id = j.raw_message_id`);
      const [row] = await t.db.db.execute<{ compression: string | null }>(sql`
        SELECT pg_column_compression(r.data) AS compression
        FROM raw_message r JOIN rejected_message j ON r.id = j.raw_message_id WHERE j.id = ${rowId}`);
      expect(row?.compression).toBe("pglz");
    } finally {
      await t.db.db.execute(sql`ALTER TABLE raw_message ALTER COLUMN data SET STORAGE EXTERNAL`);
    }
    partReads = 0;
    const res = await get(rawDownloadPath!);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(compressible.length));
    expect(Buffer.from(await res.arrayBuffer()).equals(compressible)).toBe(true);
    // Slices of a compressed value each decompress it from its start: one read instead.
    expect(partReads).toBe(1);
  });
});

describe("releasing dropped mail into ingest", () => {
  const RELEASE = `mutation($id: ID!) { releaseRejectedMessage(id: $id) {
    __typename
    ... on IngestOutcome { status created conversation { id tags spam queueId } }
    ... on ConflictError { code }
    ... on NotFoundError { entity }
  } }`;

  it("turns a false-positive spam drop into a conversation (tagged spam), once, and marks the record", async () => {
    const garbageId = (await rejected("unparseable")).rowId;
    expect(
      (await t.ok(RELEASE, { id: encodeId("RejectedMessage", garbageId) })).releaseRejectedMessage,
    ).toEqual({ __typename: "ConflictError", code: "NOT_RELEASABLE" });

    const other = await createTenantWithAdmin(t.db.db, { tenantName: "Other3", adminEmail: "o3@other.test" });
    expect(
      (await t.ok(RELEASE, { id: encodeId("RejectedMessage", spamId) }, other.apiKey)).releaseRejectedMessage,
    ).toEqual({ __typename: "NotFoundError", entity: "RejectedMessage" });

    const released = (await t.ok(RELEASE, { id: encodeId("RejectedMessage", spamId) }))
      .releaseRejectedMessage;
    expect(released).toMatchObject({
      __typename: "IngestOutcome",
      status: "stored",
      created: true,
      conversation: { tags: ["spam"], spam: true },
    });
    const [row] = await t.db.db.select().from(rejectedMessage).where(eq(rejectedMessage.id, spamId));
    expect(row!.releasedAt).not.toBeNull();
    expect(row!.releasedMessageId).not.toBeNull();
    const [event] = await t.db.db.execute<{ payload: Record<string, unknown>; actor_type: string }>(
      sql`SELECT payload, actor_type FROM event WHERE type = 'message.released' AND tenant_id = ${t.tenantId}`,
    );
    expect(event).toMatchObject({ actor_type: "USER", payload: { rejectedId: spamId, outcome: "stored" } });

    expect((await t.ok(RELEASE, { id: encodeId("RejectedMessage", spamId) })).releaseRejectedMessage).toEqual(
      { __typename: "ConflictError", code: "ALREADY_RELEASED" },
    );
    const list = await t.ok(`{ rejectedMessages(first: 100) { edges { node { reason releasedAt } } } }`);
    const spamNode = list.rejectedMessages.edges
      .map((e: any) => e.node)
      .find((n: any) => n.reason === "spam_dropped");
    expect(spamNode.releasedAt).toEqual(expect.any(String));
  });
});
