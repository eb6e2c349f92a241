import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signedAttachmentPath } from "../../src/engine/attachment-links.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";

// Signed attachment links: inline images and downloads a browser fetches without the API key.
let t: TestApp;
let base: string; // the server's origin, e.g. http://127.0.0.1:41234
const png = randomBytes(300);
const gif = randomBytes(200);
const pdf = randomBytes(500);

beforeAll(async () => {
  t = await startTestApp();
  base = new URL(t.url).origin;
});
afterAll(async () => {
  await t?.stop();
});

const MESSAGE = `query($id: ID!, $base: String, $ttl: Int) {
  node(id: $id) { ... on Conversation { messages { edges { node {
    html inlineHtml(baseUrl: $base, expiresInSeconds: $ttl)
    attachments { id filename contentId downloadPath signedDownloadPath(expiresInSeconds: $ttl) }
  } } } } } }`;

/** The messages of a MESSAGE result, oldest first. */
const nodes = (r: any): any[] => r.node.messages.edges.map((e: any) => e.node);

async function ingestTo(addressId: string, raw: Buffer, key?: string): Promise<string> {
  const r = await t.ok(
    `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw, base64: true) {
       ... on IngestOutcome { conversation { id } } } }`,
    { a: encodeId("EmailAddress", addressId), raw: raw.toString("base64") },
    key,
  );
  return r.ingestRawMessage.conversation.id as string;
}

/** A mail with two inline images (one referenced URL-escaped), one referenced nowhere, and a PDF. */
function mailWithImages(messageId: string): Buffer {
  return buildRawMail({
    messageId,
    subject: "Photos of the damage",
    html:
      '<p>See <img src="cid:photo1@customer.example" alt="a"> and <img src="CID:scan%202@customer.example">' +
      ' and <img src="cid:missing@customer.example"> and <img src="https://tracker.example/p.gif"></p>',
    attachments: [
      {
        filename: "photo1.png",
        contentType: "image/png",
        content: png,
        contentId: "photo1@customer.example",
        inline: true,
      },
      {
        filename: "scan 2.gif",
        contentType: "image/gif",
        content: gif,
        contentId: "scan 2@customer.example",
        inline: true,
      },
      { filename: "invoice.pdf", contentType: "application/pdf", content: pdf },
    ],
  });
}

const srcs = (html: string) =>
  [...html.matchAll(/<img\b[^>]*?\ssrc="([^"]*)"/g)].map((m) => m[1]!.replaceAll("&amp;", "&"));

describe("signed attachment links", () => {
  it("point a message's cid: images at links a browser loads without the key, and nothing else", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "links@acme.test" });
    const id = await ingestTo(addr.addressId, mailWithImages("links-1@customer.example"));
    const r = await t.ok(MESSAGE, { id, base: "https://sb.example.com/desk/" });
    const [m] = nodes(r);
    const byName = Object.fromEntries(m.attachments.map((a: any) => [a.filename, a]));
    expect(srcs(m.html)).toEqual([
      "cid:photo1@customer.example",
      "CID:scan%202@customer.example",
      "cid:missing@customer.example",
    ]);

    const inline = srcs(m.inlineHtml);
    expect(inline).toHaveLength(3);
    expect(inline[0]).toMatch(
      /^https:\/\/sb\.example\.com\/desk\/attachments\/[0-9a-f-]{36}\?expires=\d+&signature=[\w-]{43}$/,
    );
    expect(inline[0]).toContain(byName["photo1.png"].downloadPath);
    expect(inline[1]).toContain(byName["scan 2.gif"].downloadPath); // the URL-escaped reference
    expect(inline[2]).toBe("cid:missing@customer.example"); // names no attachment: left alone
    expect(m.inlineHtml).toContain('data-remote-src="https://tracker.example/p.gif"'); // still neutralised
    expect(m.inlineHtml).not.toContain('tracker.example/p.gif"><'); // no src for it

    // The browser's request: no Authorization header at all.
    for (const [src, bytes, type] of [
      [inline[0]!, png, "image/png"],
      [inline[1]!, gif, "image/gif"],
    ] as const) {
      const res = await fetch(base + src.slice("https://sb.example.com/desk".length));
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(type);
      expect(res.headers.get("content-disposition")).toMatch(/^attachment;/);
      expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
      expect(res.headers.get("cache-control")).toMatch(/^private, max-age=(\d+)$/);
      const maxAge = Number(/max-age=(\d+)/.exec(res.headers.get("cache-control")!)![1]);
      expect(maxAge).toBeGreaterThan(3500);
      expect(maxAge).toBeLessThanOrEqual(3660);
      expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    }

    // Any attachment, as a plain link.
    const pdfRes = await fetch(base + byName["invoice.pdf"].signedDownloadPath);
    expect(pdfRes.status).toBe(200);
    expect(Buffer.from(await pdfRes.arrayBuffer()).equals(pdf)).toBe(true);

    // Links asked for within the same minute are the same URL, so a browser's cache serves them.
    // (Deterministic: two clocks 40 s apart within one minute.)
    const at = (iso: string) => ({ secrets: t.app.engine.secrets, clock: { now: () => new Date(iso) } });
    const photo = { tenantId: t.tenantId, id: /attachments\/([0-9a-f-]{36})/.exec(inline[0]!)![1]! };
    expect(signedAttachmentPath(at("2026-11-22T10:00:05Z"), photo, 3600)).toBe(
      signedAttachmentPath(at("2026-11-22T10:00:45Z"), photo, 3600),
    );
    expect(signedAttachmentPath(at("2026-11-22T10:01:05Z"), photo, 3600)).not.toBe(
      signedAttachmentPath(at("2026-11-22T10:00:45Z"), photo, 3600),
    );
    // Without a base: paths relative to the server, as downloadPath is.
    const relative = await t.ok(MESSAGE, { id });
    expect(srcs(nodes(relative)[0].inlineHtml)[0]).toMatch(/^\/attachments\//);
  });

  it("refuse a tampered, foreign or expired link; without a key or a signature the answer is 401", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "links2@acme.test" });
    const id = await ingestTo(addr.addressId, mailWithImages("links-2@customer.example"));
    const [m] = nodes(await t.ok(MESSAGE, { id }));
    const [a, b] = m.attachments as { signedDownloadPath: string; downloadPath: string }[];
    const url = new URL(base + a!.signedDownloadPath);
    const sig = url.searchParams.get("signature")!;
    const exp = url.searchParams.get("expires")!;

    const status = async (path: string) => (await fetch(base + path)).status;
    expect(await status(a!.signedDownloadPath)).toBe(200);
    // Another signature character, another expiry, another attachment with this signature.
    const flipped = `${sig[0] === "A" ? "B" : "A"}${sig.slice(1)}`;
    expect(await status(`${a!.downloadPath}?expires=${exp}&signature=${flipped}`)).toBe(404);
    expect(await status(`${a!.downloadPath}?expires=${Number(exp) + 60}&signature=${sig}`)).toBe(404);
    expect(await status(`${b!.downloadPath}?expires=${exp}&signature=${sig}`)).toBe(404);
    expect(await status(`${a!.downloadPath}?expires=soon&signature=${sig}`)).toBe(404);
    expect(await status(`${a!.downloadPath}?signature=`)).toBe(404);
    expect(await status(`/attachments/not-an-id?expires=${exp}&signature=${sig}`)).toBe(404);
    // The shape of an ID but no UUID: still 404, with or without a key (it was a 500).
    const dashes = "-".repeat(36);
    expect(await status(`/attachments/${dashes}?expires=${exp}&signature=${sig}`)).toBe(404);
    expect(
      (await fetch(`${base}/attachments/${dashes}`, { headers: { authorization: t.adminKey } })).status,
    ).toBe(404);
    expect(
      (await fetch(`${base}/rejected-messages/${dashes}/raw`, { headers: { authorization: t.adminKey } }))
        .status,
    ).toBe(404);
    expect(await status(a!.downloadPath)).toBe(401);

    // Another tenant's attachment, signed with the same server key but for its own tenant:
    // a link made with tenant A's ID for it does not open it.
    const other = await createTenantWithAdmin(t.db.db, {
      tenantName: "Other",
      adminEmail: "admin@other.test",
    });
    const otherAddr = await createQueueWithAddress(t.db.db, other.tenantId, { address: "links@other.test" });
    const otherConv = await ingestTo(
      otherAddr.addressId,
      mailWithImages("links-3@customer.example"),
      other.apiKey,
    );
    const [om] = nodes(await t.ok(MESSAGE, { id: otherConv }, other.apiKey));
    const otherId = /attachments\/([0-9a-f-]{36})/.exec(om.attachments[0].downloadPath)![1]!;
    const forged = signedAttachmentPath(t.app.engine, { tenantId: t.tenantId, id: otherId }, 600);
    expect(await status(forged)).toBe(404);
    expect(await status(om.attachments[0].signedDownloadPath)).toBe(200); // its own link works
    // Tenant A's key with tenant B's attachment: the key's own access decides, not the link.
    expect(
      (await fetch(base + om.attachments[0].downloadPath, { headers: { authorization: t.adminKey } })).status,
    ).toBe(404);

    // Expired: signed by this server an hour ago for one minute.
    const attachmentId = /attachments\/([0-9a-f-]{36})/.exec(a!.downloadPath)![1]!;
    const hourAgo = { secrets: t.app.engine.secrets, clock: { now: () => new Date(Date.now() - 3600_000) } };
    const expired = await fetch(
      base + signedAttachmentPath(hourAgo, { tenantId: t.tenantId, id: attachmentId }, 60),
    );
    expect(expired.status).toBe(410);
    expect(await expired.json()).toEqual({ error: "link expired" });
  });

  it("reject a lifetime or base URL out of bounds with a VALIDATION error", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "links3@acme.test" });
    const id = await ingestTo(addr.addressId, mailWithImages("links-4@customer.example"));
    for (const vars of [
      { ttl: 10 },
      { ttl: 8 * 24 * 3600 },
      { base: "javascript:alert(1)" },
      { base: "https://sb.example.com/?x=1" },
      { base: "https://user:pw@sb.example.com" },
      { base: "not a url" },
    ]) {
      const r = await t.gql(MESSAGE, { id, ...vars });
      expect(r.errors?.[0]?.extensions?.code, JSON.stringify(vars)).toBe("VALIDATION");
    }
    // A base with characters that would break out of the attribute is escaped, never raw.
    const r = await t.ok(MESSAGE, { id, base: 'https://sb.example.com/a"b<c' });
    const html: string = nodes(r)[0].inlineHtml;
    expect(html).not.toContain('a"b');
    expect(html).not.toContain("<c");
    expect(srcs(html)[0]).toMatch(/^https:\/\/sb\.example\.com\/a%22b%3Cc\/attachments\//);
  });
});

describe("the inline flag is exactly what inlineHtml shows (found by a probe, 2026-11-23)", () => {
  const PNG = Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), randomBytes(40)]);
  type Part = { cidHeader: string | null; name: string; disposition?: string; bytes?: Buffer };
  /** The tester's layout: an HTML body and image parts in one multipart. */
  function related(html: string, images: Part[], type = "multipart/related"): Buffer {
    const parts = images.map(
      (i) =>
        `--R\r\nContent-Type: image/png; name="${i.name}"\r\nContent-Transfer-Encoding: base64\r\n` +
        `${i.cidHeader === null ? "" : `Content-ID: ${i.cidHeader}\r\n`}` +
        `${i.disposition ? `Content-Disposition: ${i.disposition}; filename="${i.name}"\r\n` : ""}\r\n` +
        `${(i.bytes ?? PNG).toString("base64")}\r\n`,
    );
    return Buffer.from(
      `From: a@customer.example\r\nTo: support@acme.test\r\nSubject: images\r\nMessage-ID: <${randomBytes(6).toString("hex")}@c.example>\r\n` +
        `MIME-Version: 1.0\r\nContent-Type: ${type}; boundary="R"\r\n\r\n--R\r\nContent-Type: text/html; charset=utf-8\r\n\r\n${html}\r\n${parts.join("")}--R--\r\n`,
    );
  }
  const QUERY = `query($id: ID!) { node(id: $id) { ... on Conversation { messages { edges { node {
    html inlineHtml(baseUrl: "https://sb.example.com")
    attachments { filename contentId inline downloadPath } } } } } } }`;
  async function message(addressId: string, raw: Buffer) {
    const id = await ingestTo(addressId, raw);
    return nodes(await t.ok(QUERY, { id }))[0];
  }

  it("each variant of Content-ID and cid: URL: shown by inlineHtml if and only if flagged inline", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "flags@acme.test" });
    // [case, html, parts, multipart type, shown and inline]
    const cases: [string, string, Part[], string, boolean][] = [
      [
        "brackets",
        `<img src="cid:a1@x">`,
        [{ cidHeader: "<a1@x>", name: "a.png" }],
        "multipart/related",
        true,
      ],
      [
        "no brackets",
        `<img src="cid:a2@x">`,
        [{ cidHeader: "a2@x", name: "a.png" }],
        "multipart/related",
        true,
      ],
      [
        "case differs",
        `<img src="cid:IMAGE001.PNG@01D9">`,
        [{ cidHeader: "<image001.png@01d9>", name: "a.png" }],
        "multipart/related",
        true,
      ],
      [
        "percent-encoded",
        `<img src="cid:scan%202@x">`,
        [{ cidHeader: "<scan 2@x>", name: "a.png" }],
        "multipart/related",
        true,
      ],
      [
        "space in cid url",
        `<img src="cid:scan 3@x">`,
        [{ cidHeader: "<scan 3@x>", name: "a.png" }],
        "multipart/related",
        true,
      ],
      [
        "cid in brackets in url",
        `<img src="cid:<a4@x>">`,
        [{ cidHeader: "<a4@x>", name: "a.png" }],
        "multipart/related",
        true,
      ],
      [
        "css background cid only",
        `<table background="cid:a5@x"><tr><td>t</td></tr></table><div style="background:url(cid:a5@x)">d</div>`,
        [{ cidHeader: "<a5@x>", name: "a.png" }],
        "multipart/related",
        false,
      ],
      [
        "mixed not related, no disposition",
        `<img src="cid:a6@x">`,
        [{ cidHeader: "<a6@x>", name: "a.png" }],
        "multipart/mixed",
        true,
      ],
      [
        "mixed, case differs, attachment disposition",
        `<img src="cid:A7@X">`,
        [{ cidHeader: "<a7@x>", name: "a.png", disposition: "attachment" }],
        "multipart/mixed",
        true,
      ],
      [
        "mixed, %-encoded, attachment disposition",
        `<img src="cid:a%208@x">`,
        [{ cidHeader: "<a 8@x>", name: "a.png", disposition: "attachment" }],
        "multipart/mixed",
        true,
      ],
      [
        "related, referenced nowhere",
        `<p>no image</p>`,
        [{ cidHeader: "<a9@x>", name: "a.png", disposition: "inline" }],
        "multipart/related",
        false,
      ],
    ];
    const got: [string, boolean, boolean][] = [];
    for (const [name, html, parts, type] of cases) {
      const m = await message(addr.addressId, related(html, parts, type));
      const shown = srcs(m.inlineHtml ?? "").some((u) => u.includes(m.attachments[0].downloadPath));
      got.push([name, shown, m.attachments[0].inline]);
    }
    expect(got).toEqual(cases.map(([name, , , , want]) => [name, want, want]));
  });

  it("Apple Mail's PDF with Content-Disposition: inline, referenced nowhere, is not inline", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "apple@acme.test" });
    const b64 = Buffer.from("%PDF-1.4 fake").toString("base64");
    const raw = Buffer.from(
      `From: Jane <jane@customer.example>\r\nTo: support@acme.test\r\nSubject: invoice\r\nMessage-ID: <${randomBytes(6).toString("hex")}@c.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="Apple-Mail=_1"\r\n\r\n` +
        `--Apple-Mail=_1\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<html><body><div>Here is the invoice:</div></body></html>\r\n` +
        `--Apple-Mail=_1\r\nContent-Disposition: inline; filename=invoice.pdf\r\nContent-Type: application/pdf; x-unix-mode=0644; name="invoice.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${b64}\r\n` +
        `--Apple-Mail=_1\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<html><body><div>Thanks, Jane</div></body></html>\r\n--Apple-Mail=_1--\r\n`,
    );
    const m = await message(addr.addressId, raw);
    expect(m.attachments.map((a: any) => [a.filename, a.inline])).toEqual([["invoice.pdf", false]]);
  });

  it("two parts with one Content-ID: the first is shown and flagged, the second is an attachment", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "dup@acme.test" });
    const first = Buffer.concat([PNG, Buffer.from("first")]);
    const second = Buffer.concat([PNG, Buffer.from("second")]);
    const m = await message(
      addr.addressId,
      related(`<img src="cid:dup@x">`, [
        { cidHeader: "<dup@x>", name: "first.png", bytes: first },
        { cidHeader: "<DUP@x>", name: "second.png", bytes: second },
      ]),
    );
    const flags = Object.fromEntries(m.attachments.map((a: any) => [a.filename, a.inline]));
    expect(flags).toEqual({ "first.png": true, "second.png": false });
    const shown = m.attachments.find((a: any) => a.inline);
    expect(srcs(m.inlineHtml)[0]).toContain(shown.downloadPath);
    const res = await fetch(base + srcs(m.inlineHtml)[0]!.slice("https://sb.example.com".length));
    expect(Buffer.from(await res.arrayBuffer()).equals(first)).toBe(true);
  });
});
