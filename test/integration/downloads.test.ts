import { createHash, randomBytes } from "node:crypto";
import { request } from "node:http";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attachmentDisposition, byteRange } from "../../src/downloads.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";

// Attachment downloads as HTTP serves large files: in parts, validators, byte ranges, HEAD.
let t: TestApp;
let base: string;
// Incompressible and over two parts of 512 KB (stored uncompressed), and a text file that
// pglz compresses (read in one statement): stored as rows were before migration 0023 made
// attachments uncompressed (below, a new one).
const pdf = randomBytes(1_300_000);
const log = Buffer.from("2026-11-23 all quiet on the line\n".repeat(40_000));
const paths: Record<string, string> = {};
const signed: Record<string, string> = {};

beforeAll(async () => {
  t = await startTestApp();
  base = new URL(t.url).origin;
  const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "files@acme.test" });
  const raw = buildRawMail({
    messageId: "files-1@customer.example",
    subject: "The files",
    text: "Attached.",
    attachments: [
      { filename: "big.pdf", contentType: "application/pdf", content: pdf },
      { filename: "line.log", contentType: "text/plain", content: log },
      { filename: "empty.txt", contentType: "text/plain", content: Buffer.alloc(0) },
    ],
  });
  // As before migration 0023: PostgreSQL's default storage, which compresses what shrinks.
  const [storage] = await t.db.db.execute<{ s: string }>(
    sql`SELECT attstorage AS s FROM pg_attribute WHERE attrelid = 'attachment'::regclass AND attname = 'data'`,
  );
  await t.db.db.execute(sql`ALTER TABLE attachment ALTER COLUMN data SET STORAGE EXTENDED`);
  const r = await t.ok(
    `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw, base64: true) {
       ... on IngestOutcome { conversation { messages { edges { node { attachments {
         filename downloadPath signedDownloadPath(expiresInSeconds: 600) } } } } } } } }`,
    { a: encodeId("EmailAddress", addr.addressId), raw: raw.toString("base64") },
  );
  // And back to what the migrations made it.
  if (storage!.s === "e")
    await t.db.db.execute(sql`ALTER TABLE attachment ALTER COLUMN data SET STORAGE EXTERNAL`);
  for (const a of r.ingestRawMessage.conversation.messages.edges[0].node.attachments) {
    paths[a.filename] = a.downloadPath;
    signed[a.filename] = a.signedDownloadPath;
  }
});
afterAll(async () => {
  await t?.stop();
});

/** A request with the admin's key (unless `signedLink`), as raw as HTTP allows. */
function get(
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      { method, headers: path.includes("signature=") ? headers : { authorization: t.adminKey, ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("attachment downloads", () => {
  it("send the whole file with its strong ETag and accept-ranges; HEAD gives the headers alone; other methods 405", async () => {
    const r = await get(paths["big.pdf"]!);
    expect(r.status).toBe(200);
    expect(r.body.equals(pdf)).toBe(true);
    expect(r.headers["content-length"]).toBe(String(pdf.length));
    expect(r.headers.etag).toBe(`"${sha(pdf)}"`);
    expect(r.headers["accept-ranges"]).toBe("bytes");
    expect(r.headers["content-disposition"]).toMatch(/^attachment;/);
    const h = await get(paths["big.pdf"]!, {}, "HEAD");
    expect(h.status).toBe(200);
    expect(h.headers["content-length"]).toBe(String(pdf.length));
    expect(h.headers.etag).toBe(r.headers.etag);
    expect(h.body.length).toBe(0);
    expect((await get(paths["big.pdf"]!, {}, "POST")).status).toBe(405);
    // A compressed value and an empty one, whole.
    const stored = await t.db.db.execute<{ filename: string; compressed: boolean }>(
      sql`SELECT filename, pg_column_compression(data) IS NOT NULL AS compressed FROM attachment
          WHERE filename IN ('big.pdf', 'line.log') ORDER BY filename`,
    );
    expect([...stored].map((r) => [r.filename, r.compressed])).toEqual([
      ["big.pdf", false],
      ["line.log", true],
    ]);
    expect((await get(paths["line.log"]!)).body.equals(log)).toBe(true);
    const empty = await get(paths["empty.txt"]!);
    expect([empty.status, empty.body.length, empty.headers["content-length"]]).toEqual([200, 0, "0"]);
  });

  it("answer 304 to If-None-Match with its ETag (also weak, in a list, or *), 200 to another", async () => {
    const etag = `"${sha(pdf)}"`;
    for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
      const r = await get(paths["big.pdf"]!, { "if-none-match": inm });
      expect([r.status, r.body.length, r.headers.etag]).toEqual([304, 0, etag]);
    }
    expect((await get(paths["big.pdf"]!, { "if-none-match": '"other"' })).status).toBe(200);
    // Through a signed link too (the browser's cache revalidates it).
    expect((await get(signed["big.pdf"]!, { "if-none-match": etag })).status).toBe(304);
  });

  it("send one byte range as 206 (across parts, open-ended, a suffix, clipped, compressed, by signed link)", async () => {
    const cases: [string, Buffer, string, number, number][] = [
      ["big.pdf", pdf, "bytes=100-199", 100, 199],
      // Across the 512 KB boundary between two reads.
      ["big.pdf", pdf, "bytes=524000-525000", 524000, 525000],
      ["big.pdf", pdf, "bytes=1299990-", 1299990, pdf.length - 1],
      ["big.pdf", pdf, "bytes=-10", pdf.length - 10, pdf.length - 1],
      ["big.pdf", pdf, "bytes=1299000-9999999", 1299000, pdf.length - 1],
      ["big.pdf", pdf, "bytes=0-", 0, pdf.length - 1],
      ["line.log", log, "bytes=700000-700099", 700000, 700099],
    ];
    for (const [name, file, range, start, end] of cases) {
      const r = await get(paths[name]!, { range });
      expect([range, r.status, r.headers["content-range"]]).toEqual([
        range,
        206,
        `bytes ${start}-${end}/${file.length}`,
      ]);
      expect(r.headers["content-length"]).toBe(String(end - start + 1));
      expect(r.body.equals(file.subarray(start, end + 1))).toBe(true);
    }
    const s = await get(signed["big.pdf"]!, { range: "bytes=5-9" });
    expect([s.status, s.body.equals(pdf.subarray(5, 10))]).toEqual([206, true]);
  });

  it("store a compressible attachment uncompressed (migration 0023), so it is read in parts too", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "csv@acme.test" });
    const csv = Buffer.from("id;name;amount\n".concat("4711;Kettle;19.99\n".repeat(120_000)));
    const raw = buildRawMail({
      messageId: "files-2@customer.example",
      subject: "The export",
      text: "Attached.",
      attachments: [{ filename: "export.csv", contentType: "text/csv", content: csv }],
    });
    const r = await t.ok(
      `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw, base64: true) {
         ... on IngestOutcome { conversation { messages { edges { node { attachments { downloadPath } } } } } } } }`,
      { a: encodeId("EmailAddress", addr.addressId), raw: raw.toString("base64") },
    );
    const path = r.ingestRawMessage.conversation.messages.edges[0].node.attachments[0].downloadPath;
    const [row] = await t.db.db.execute<{ compressed: boolean }>(
      sql`SELECT pg_column_compression(data) IS NOT NULL AS compressed FROM attachment WHERE filename = 'export.csv'`,
    );
    expect(row!.compressed).toBe(false);
    expect((await get(path)).body.equals(csv)).toBe(true);
    const part = await get(path, { range: "bytes=600000-600099" });
    expect([part.status, part.body.equals(csv.subarray(600000, 600100))]).toEqual([206, true]);
  });

  it("answer 416 to a range past the end; ignore several ranges, a malformed one and a stale If-Range (200, the whole file)", async () => {
    for (const range of [`bytes=${pdf.length}-`, "bytes=-0"]) {
      const r = await get(paths["big.pdf"]!, { range });
      expect([range, r.status, r.headers["content-range"], r.body.length]).toEqual([
        range,
        416,
        `bytes */${pdf.length}`,
        0,
      ]);
    }
    expect((await get(paths["empty.txt"]!, { range: "bytes=0-" })).status).toBe(416);
    const ignored: Record<string, string>[] = [
      { range: "bytes=0-1,5-6" },
      { range: "bytes=9-2" },
      { range: "lines=1-2" },
      { range: "bytes=x-" },
      { range: "bytes=0-9", "if-range": '"an-older-version"' },
      { range: "bytes=0-9", "if-range": "Wed, 21 Oct 2026 07:28:00 GMT" },
    ];
    for (const headers of ignored) {
      const r = await get(paths["big.pdf"]!, headers);
      expect([headers, r.status, r.body.length]).toEqual([headers, 200, pdf.length]);
    }
    const current = await get(paths["big.pdf"]!, { range: "bytes=0-9", "if-range": `"${sha(pdf)}"` });
    expect([current.status, current.body.length]).toEqual([206, 10]);
  });

  it("parses ranges as RFC 9110 says (unit)", () => {
    expect(byteRange(undefined, 10)).toBeNull();
    expect(byteRange("bytes=2-4", 10)).toEqual({ start: 2, end: 4 });
    expect(byteRange("bytes = 2 - ", 10)).toEqual({ start: 2, end: 9 });
    expect(byteRange("bytes=-3", 10)).toEqual({ start: 7, end: 9 });
    expect(byteRange("bytes=-30", 10)).toEqual({ start: 0, end: 9 });
    expect(byteRange("bytes=10-", 10)).toBe("unsatisfiable");
    expect(byteRange("bytes=-", 10)).toBeNull();
    expect(byteRange("bytes=99999999999999999999-", 10)).toBeNull();
  });
});

describe("attachment download headers (found by a probe, 2026-11-23)", () => {
  it("a Content-Type outside RFC 2045's token syntax is stored and served as application/octet-stream, also for rows stored before", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "types@acme.test" });
    const raw = buildRawMail({
      messageId: "types-1@customer.example",
      attachments: [
        { filename: "weird-type.png", contentType: "image/p€ng", content: Buffer.from("weird") },
        { filename: "photo.png", contentType: "Image/PNG", content: Buffer.from("png") },
      ],
    });
    const r = await t.ok(
      `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw, base64: true) {
         ... on IngestOutcome { conversation { messages { edges { node { attachments {
           id filename contentType downloadPath signedDownloadPath(expiresInSeconds: 600) } } } } } } } }`,
      { a: encodeId("EmailAddress", addr.addressId), raw: raw.toString("base64") },
    );
    const [weird, photo] = r.ingestRawMessage.conversation.messages.edges[0].node.attachments.sort(
      (a: any, b: any) => (a.filename < b.filename ? 1 : -1),
    );
    expect([weird.filename, weird.contentType]).toEqual(["weird-type.png", "application/octet-stream"]);
    expect([photo.filename, photo.contentType]).toEqual(["photo.png", "image/png"]);
    // A row stored before the check: served, with a type a header can carry.
    await t.db.db.execute(
      sql`UPDATE attachment SET content_type = ${"image/p€ng"} WHERE filename = 'weird-type.png'`,
    );
    for (const path of [weird.downloadPath, weird.signedDownloadPath]) {
      const d = await get(path);
      expect([d.status, d.headers["content-type"], d.body.toString()]).toEqual([
        200,
        "application/octet-stream",
        "weird",
      ]);
    }
  });

  it("Content-Disposition escapes what RFC 8187 does not allow in filename* and has an ASCII filename= first", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "names@acme.test" });
    const names = ["it's (final) copy*.pdf", "Rechnung März.pdf", '請求書 "v2".pdf'];
    const raw = buildRawMail({
      messageId: "names-1@customer.example",
      attachments: names.map((filename) => ({
        filename,
        contentType: "application/pdf",
        content: Buffer.from(filename),
      })),
    });
    const r = await t.ok(
      `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw, base64: true) {
         ... on IngestOutcome { conversation { messages { edges { node { attachments {
           filename downloadPath } } } } } } } }`,
      { a: encodeId("EmailAddress", addr.addressId), raw: raw.toString("base64") },
    );
    const got: Record<string, string> = {};
    for (const a of r.ingestRawMessage.conversation.messages.edges[0].node.attachments) {
      const d = await get(a.downloadPath);
      expect(d.status).toBe(200);
      got[a.filename] = String(d.headers["content-disposition"]);
    }
    expect(got).toEqual({
      "it's (final) copy*.pdf": `attachment; filename="it's (final) copy*.pdf"; filename*=UTF-8''it%27s%20%28final%29%20copy%2A.pdf`,
      "Rechnung März.pdf": `attachment; filename="Rechnung Marz.pdf"; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf`,
      '請求書 "v2".pdf': `attachment; filename="___ v2.pdf"; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8%20%22v2%22.pdf`,
    });
    // Names ingest would not store as they are (rows of older versions, other writers).
    expect(attachmentDisposition('a\\b\u0007"\r\n.txt')).toBe(
      `attachment; filename="ab.txt"; filename*=UTF-8''a%5Cb%07%22%0D%0A.txt`,
    );
    expect(attachmentDisposition("\u{1F4CE}")).toBe(
      `attachment; filename="_"; filename*=UTF-8''%F0%9F%93%8E`,
    );
    expect(attachmentDisposition('"')).toBe(`attachment; filename="download"; filename*=UTF-8''%22`);
    // RFC 8187 attr-char only, and the name comes back from it.
    for (const [name, cd] of Object.entries(got)) {
      const ext = /filename\*=UTF-8''([^;]*)$/.exec(cd)![1]!;
      expect(ext).toMatch(/^[A-Za-z0-9!#$&+.^_`|~%-]*$/);
      expect(decodeURIComponent(ext)).toBe(name);
    }
  });
});
