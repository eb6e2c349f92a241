import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { autoReplyAttachment, message, tenant } from "../../src/db/schema/index.js";
import { ManualClock } from "../../src/engine/clock.js";
import { createAutoReplyTemplate } from "../../src/engine/config/content.js";
import { ValidationError } from "../../src/engine/errors.js";
import { loadViewer } from "../../src/engine/viewer.js";
import { decodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import {
  createSinkAccount,
  eventsOf,
  ingestAt,
  parseCaptured,
  waitFor,
  waitForStatus,
} from "../helpers/outbound.js";
import { buildRawMail } from "../helpers/raw-mail.js";
import { type SmtpSink, startCapturingSink } from "../helpers/smtp-sinks.js";

/**
 * Auto-reply templates carry files (SPEC §9, issue #5 item 5): stored with the template
 * through the config API (counts, size and types validated), and sent with every
 * auto-reply — inline images by Content-ID, attachments as attachments.
 */

const clock = new ManualClock("2026-03-02T09:00:00Z");
let t: TestApp;
let sink: SmtpSink;

// A 1×1 PNG and a minimal PDF: real magic bytes, so the type checks see real files.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);
const PDF = Buffer.from("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n");

const FIELDS = `id name html attachments { filename contentType sizeBytes contentId inline }`;
const RESULT = `__typename
  ... on AutoReplyTemplate { ${FIELDS} }
  ... on ValidationError { field problems { field message } }`;
const CREATE = `mutation($input: AutoReplyTemplateInput!) { createAutoReplyTemplate(input: $input) { ${RESULT} } }`;
const UPDATE = `mutation($id: ID!, $input: AutoReplyTemplateInput!) { updateAutoReplyTemplate(id: $id, input: $input) { ${RESULT} } }`;

const logo = { filename: "logo.png", contentType: "image/png", contentBase64: PNG.toString("base64") };
const terms = {
  filename: "terms.pdf",
  contentType: "application/pdf",
  contentBase64: PDF.toString("base64"),
};

async function create(input: Record<string, unknown>) {
  return (await t.ok(CREATE, { input })).createAutoReplyTemplate as {
    __typename: string;
    id: string;
    field?: string;
    problems?: { field: string; message: string }[];
    attachments?: { filename: string; contentType: string; sizeBytes: number; contentId: string | null }[];
  };
}

beforeAll(async () => {
  t = await startTestApp({ clock, env: { SEND_POLL_MS: "500", SEND_WORKERS: "1" } });
  sink = await startCapturingSink({ starttls: false });
  await t.db.db
    .update(tenant)
    .set({ company: "ACME Corp", timeZone: "Europe/Berlin", messageIdDomain: "mail.acme.test" })
    .where(eq(tenant.id, t.tenantId));
});

afterAll(async () => {
  await t?.stop();
  await sink?.close();
});

describe("auto-reply template files: config API", () => {
  it("stores inline images and attachments in order, replaces them on update, keeps them when omitted", async () => {
    const a = await create({
      name: "With files",
      html: '<p>Hello</p><img src="cid:logo@acme.test" alt="ACME">',
      attachments: [{ ...logo, inline: true, contentId: "<logo@acme.test>" }, terms],
    });
    expect(a.__typename).toBe("AutoReplyTemplate");
    expect(a.attachments).toEqual([
      {
        filename: "logo.png",
        contentType: "image/png",
        sizeBytes: PNG.length,
        contentId: "logo@acme.test",
        inline: true,
      },
      {
        filename: "terms.pdf",
        contentType: "application/pdf",
        sizeBytes: PDF.length,
        contentId: null,
        inline: false,
      },
    ]);
    const renamed = (await t.ok(UPDATE, { id: a.id, input: { name: "Renamed" } })).updateAutoReplyTemplate;
    expect(renamed.attachments).toHaveLength(2);
    const replaced = (await t.ok(UPDATE, { id: a.id, input: { attachments: [terms] } }))
      .updateAutoReplyTemplate;
    expect(replaced.attachments.map((x: { filename: string }) => x.filename)).toEqual(["terms.pdf"]);
    const cleared = (await t.ok(UPDATE, { id: a.id, input: { attachments: [] } })).updateAutoReplyTemplate;
    expect(cleared.attachments).toEqual([]);
    const rows = await t.db.db
      .select()
      .from(autoReplyAttachment)
      .where(eq(autoReplyAttachment.templateId, decodeId(a.id, "AutoReplyTemplate")));
    expect(rows).toEqual([]);
  });

  it.each([
    [
      "11 inline images",
      Array.from({ length: 11 }, (_, i) => ({
        ...logo,
        filename: `l${i}.png`,
        inline: true,
        contentId: `l${i}@x`,
      })),
      "attachments",
      /TOO_MANY_INLINE_IMAGES/,
    ],
    [
      "11 attachments",
      Array.from({ length: 11 }, (_, i) => ({ ...terms, filename: `t${i}.pdf` })),
      "attachments",
      /TOO_MANY_ATTACHMENTS/,
    ],
    [
      "a type that is not allowed",
      [
        {
          filename: "logo.svg",
          contentType: "image/svg+xml",
          contentBase64: Buffer.from("<svg/>").toString("base64"),
        },
      ],
      "attachments[0]",
      /ATTACHMENT_TYPE_NOT_ALLOWED/,
    ],
    [
      "an executable behind a PDF name",
      [
        {
          filename: "invoice.pdf",
          contentType: "application/pdf",
          contentBase64: Buffer.from("MZ\x90\x00").toString("base64"),
        },
      ],
      "attachments[0]",
      /ATTACHMENT_TYPE_NOT_ALLOWED/,
    ],
    [
      "an inline image without a Content-ID",
      [{ ...logo, inline: true }],
      "attachments[0].contentId",
      /Content-ID/,
    ],
    [
      "an inline file that is not an image",
      [{ ...terms, inline: true, contentId: "t@x" }],
      "attachments[0]",
      /INLINE_NOT_IMAGE/,
    ],
    [
      "content that is not base64",
      [{ ...terms, contentBase64: "***" }],
      "attachments[0].contentBase64",
      /base64/,
    ],
  ])("refuses %s and stores nothing", async (_what, attachments, field, message) => {
    const before = (await t.db.db.select({ id: autoReplyAttachment.id }).from(autoReplyAttachment)).length;
    const r = await create({ name: "Bad files", text: "x", attachments });
    expect(r.__typename).toBe("ValidationError");
    expect(r.problems).toContainEqual({ field, message: expect.stringMatching(message) });
    expect((await t.db.db.select({ id: autoReplyAttachment.id }).from(autoReplyAttachment)).length).toBe(
      before,
    );
  });

  it("refuses more than 25 MB in total (called on the engine, without a 35 MB request)", async () => {
    const [tn] = await t.db.db.select().from(tenant).where(eq(tenant.id, t.tenantId));
    const viewer = (await loadViewer(t.db.db, t.adminId, tn!.rolePermissions))!;
    const big = Buffer.alloc(13 * 1024 * 1024, 0x20).toString("base64");
    const err = await createAutoReplyTemplate(t.app.engine, viewer, {
      name: "Too big",
      text: "x",
      attachments: [
        { filename: "a.txt", contentType: "text/plain", contentBase64: big },
        { filename: "b.txt", contentType: "text/plain", contentBase64: big },
      ],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).problems).toContainEqual({
      field: "attachments",
      message: expect.stringMatching(/^TOO_LARGE/),
    });
  });
});

describe("auto-reply template files: sent", () => {
  it("an auto-reply carries the inline image by cid and the attachment, as MIME parts", async () => {
    const tpl = await create({
      name: "Ack with logo",
      text: "We got your mail, @{consumer}.",
      html: '<p>We got your mail, @{consumer}.</p><img src="cid:logo@acme.test" alt="ACME">',
      attachments: [{ ...logo, inline: true, contentId: "logo@acme.test" }, terms],
    });
    expect(tpl.__typename).toBe("AutoReplyTemplate");
    const accountId = await createSinkAccount(t, sink);
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, {
      address: "files@acme.test",
      queue: {
        name: "Files",
        autoReplyTemplateId: decodeId(tpl.id, "AutoReplyTemplate"),
        autoReplyOnNew: true,
      },
      addressFields: { accountId, displayName: "ACME Files" },
    });
    const r = await ingestAt(
      t,
      addr.addressId,
      buildRawMail({ from: "Fiona <fiona@customer.example>", to: "files@acme.test", subject: "Hello" }),
    );
    expect(r.status).toBe("stored");
    const conversationId = decodeId(r.conversation!.id, "Conversation");
    const queued = await waitFor(async () => {
      const evs = await eventsOf(t, conversationId, "auto_reply.queued");
      return evs[0] ?? null;
    }, "auto-reply queued");
    const outId = (queued.payload as { messageId: string }).messageId;
    const sent = await waitForStatus(t, outId, ["SENT", "FAILED"]);
    expect(sent.outboundStatus).toBe("SENT");
    const captured = sink.messages.find((m) => m.rcptTo.includes("fiona@customer.example"));
    expect(captured).toBeDefined();
    const mail = await parseCaptured(captured!.raw);
    expect(mail.html).toContain('src="cid:logo@acme.test"');
    const parts = mail.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      disposition: a.contentDisposition,
      cid: a.cid ?? null,
      bytes: a.content.toString("base64"),
    }));
    expect(parts).toEqual([
      {
        filename: "logo.png",
        contentType: "image/png",
        disposition: "inline",
        cid: "logo@acme.test",
        bytes: PNG.toString("base64"),
      },
      {
        filename: "terms.pdf",
        contentType: "application/pdf",
        disposition: "attachment",
        cid: null,
        bytes: PDF.toString("base64"),
      },
    ]);
    // The stored outbound message lists them too (what was sent is what is shown).
    const [row] = await t.db.db.select().from(message).where(eq(message.id, outId));
    expect(row!.isAutoReply).toBe(true);
    const shown = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on Conversation { messages { edges { node { id attachments { filename inline contentId } } } } } } }`,
      { id: r.conversation!.id },
    );
    const out = shown.node.messages.edges
      .map((e: { node: { attachments: unknown[] } }) => e.node)
      .find((m: { attachments: unknown[] }) => m.attachments.length > 0);
    expect(out.attachments).toEqual([
      { filename: "logo.png", inline: true, contentId: "logo@acme.test" },
      { filename: "terms.pdf", inline: false, contentId: null },
    ]);
  });
});
