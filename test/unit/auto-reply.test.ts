import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { simpleParser } from "mailparser";
import { describe, expect, it } from "vitest";
import type { ConversationStatus } from "../../src/engine/domain.js";
import type {
  AutoReplyAttachment,
  AutoReplyContext,
  AutoReplyTagValues,
  InboundForAutoReply,
  QueueAutoReplySettings,
  SuppressionReason,
} from "../../src/engine/outbound/auto-reply.js";
import {
  assertAutoReplyAttachments,
  autoReplySuppression,
  autoReplyTriggerFor,
  checkAutoReplyAttachments,
  rawHeadersFromLines,
  renderAutoReplyTags,
  shouldAutoReply,
} from "../../src/engine/outbound/auto-reply.js";
import { AutoReplyError } from "../../src/engine/outbound/errors.js";

const DAY = 24 * 60 * 60 * 1000;

describe("auto-reply triggers", () => {
  const received = new Date("2024-03-20T12:00:00Z");
  const lastActivityAt = new Date("2024-03-01T12:00:00Z");

  it.each<[boolean, ConversationStatus | null, string | null]>([
    [true, null, "NEW_CONVERSATION"],
    [true, "CLOSED", "NEW_CONVERSATION"],
    [false, "CLOSED", "REPLY_TO_CLOSED"],
    [false, "PAUSED", "REPLY_TO_PAUSED"],
    [false, "ACTIVE", "REPLY_TO_IDLE_ACTIVE"],
    [false, "REOPENED", "REPLY_TO_IDLE_ACTIVE"],
    [false, "NEW", null],
    [false, "RESOLVED", null],
  ])("new=%s, previous status %s → %s", (isNewConversation, previousStatus, expected) => {
    const trigger = autoReplyTriggerFor({
      isNewConversation,
      previousStatus,
      lastActivityAt,
      receivedAt: received,
    });
    expect(trigger?.kind ?? null).toBe(expected);
  });

  const all: QueueAutoReplySettings = {
    enabled: true,
    onNewConversation: true,
    onReplyToClosed: true,
    onReplyToPaused: true,
    onReplyToIdleActive: true,
  };

  it.each([
    ["onNewConversation", { kind: "NEW_CONVERSATION" }],
    ["onReplyToClosed", { kind: "REPLY_TO_CLOSED" }],
    ["onReplyToPaused", { kind: "REPLY_TO_PAUSED" }],
    ["onReplyToIdleActive", { kind: "REPLY_TO_IDLE_ACTIVE", lastActivityAt, receivedAt: received }],
  ] as const)("%s switches its trigger", (flag, trigger) => {
    expect(shouldAutoReply(trigger, all)).toBe(true);
    expect(shouldAutoReply(trigger, { ...all, [flag]: false })).toBe(false);
    expect(shouldAutoReply(trigger, { ...all, enabled: false })).toBe(false);
  });

  it("answers an ACTIVE conversation only after 15 idle days by default", () => {
    const at = (ms: number) => ({
      kind: "REPLY_TO_IDLE_ACTIVE" as const,
      lastActivityAt,
      receivedAt: new Date(lastActivityAt.getTime() + ms),
    });
    expect(shouldAutoReply(at(15 * DAY), all)).toBe(true);
    expect(shouldAutoReply(at(15 * DAY - 1), all)).toBe(false);
    expect(shouldAutoReply(at(3 * DAY), { ...all, idleDays: 3 })).toBe(true);
    expect(shouldAutoReply(at(3 * DAY - 60_000), { ...all, idleDays: 3 })).toBe(false);
  });

  it("no trigger, no auto-reply", () => {
    expect(shouldAutoReply(null, all)).toBe(false);
  });
});

describe("auto-reply loop protection", () => {
  const ctx: AutoReplyContext = {
    ownAddresses: ["support@acme.example", "Sales <sales@acme.example>"],
    messageIdDomain: "mail.acme.example",
    recentAutoRepliesToSender: 0,
  };
  const clean: InboundForAutoReply = {
    from: "Carla <carla@customer.example>",
    returnPath: "carla@customer.example",
    headers: {
      "message-id": "<abc@customer.example>",
      "content-type": "text/plain; charset=utf-8",
    },
  };
  const withHeaders = (headers: Record<string, string | string[]>): InboundForAutoReply => ({
    ...clean,
    headers: { ...clean.headers, ...headers },
  });

  it("lets an ordinary customer mail through", () => {
    expect(autoReplySuppression(clean, ctx)).toBeNull();
    expect(autoReplySuppression(withHeaders({ "auto-submitted": "no" }), ctx)).toBeNull();
    expect(autoReplySuppression(withHeaders({ "auto-submitted": "No (human)" }), ctx)).toBeNull();
    expect(autoReplySuppression(withHeaders({ precedence: "first-class" }), ctx)).toBeNull();
    expect(autoReplySuppression(withHeaders({ "x-auto-response-suppress": "DR, RN, NRN" }), ctx)).toBeNull();
    expect(autoReplySuppression({ ...clean, returnPath: undefined }, ctx)).toBeNull();
  });

  it.each<[string, Record<string, string | string[]>, SuppressionReason]>([
    ["Auto-Submitted: auto-replied", { "auto-submitted": "auto-replied" }, "AUTO_SUBMITTED"],
    [
      "Auto-Submitted: auto-generated (failure)",
      { "auto-submitted": "auto-generated (failure)" },
      "AUTO_SUBMITTED",
    ],
    ["Auto-Submitted: auto-notified", { "auto-submitted": "Auto-Notified" }, "AUTO_SUBMITTED"],
    ["X-Autoreply", { "x-autoreply": "yes" }, "AUTO_SUBMITTED"],
    ["X-Autorespond", { "x-autorespond": "vacation" }, "AUTO_SUBMITTED"],
    ["X-Auto-Response-Suppress: All", { "x-auto-response-suppress": "All" }, "AUTO_RESPONSE_SUPPRESSED"],
    [
      "X-Auto-Response-Suppress: DR, AutoReply",
      { "x-auto-response-suppress": "DR, AutoReply" },
      "AUTO_RESPONSE_SUPPRESSED",
    ],
    ["X-Auto-Response-Suppress: OOF", { "x-auto-response-suppress": "oof" }, "AUTO_RESPONSE_SUPPRESSED"],
    ["Precedence: bulk", { precedence: "bulk" }, "PRECEDENCE"],
    ["Precedence: list", { precedence: "List" }, "PRECEDENCE"],
    ["Precedence: junk", { precedence: "junk" }, "PRECEDENCE"],
    ["Precedence: auto_reply", { precedence: "auto_reply" }, "PRECEDENCE"],
    ["List-Id", { "list-id": "Friends <friends.lists.example>" }, "MAILING_LIST"],
    ["List-Unsubscribe", { "list-unsubscribe": "<mailto:unsub@news.example>" }, "MAILING_LIST"],
    ["List-Post", { "list-post": "<mailto:list@lists.example>" }, "MAILING_LIST"],
    ["Return-Path: <>", { "return-path": "<>" }, "NULL_RETURN_PATH"],
    [
      "multipart/report",
      { "content-type": 'multipart/report; report-type="delivery-status"; boundary=x' },
      "BOUNCE",
    ],
    ["our Message-ID domain", { "message-id": "<123.abc@mail.acme.example>" }, "OWN_MESSAGE"],
  ])("suppresses %s", (_name, headers, reason) => {
    expect(autoReplySuppression(withHeaders(headers), ctx)).toBe(reason);
  });

  it.each<[string, Partial<InboundForAutoReply>, SuppressionReason]>([
    ["no From", { from: null }, "NO_SENDER"],
    ["a From without address", { from: "undisclosed-recipients:;" }, "NO_SENDER"],
    ["null envelope sender <>", { returnPath: "<>" }, "NULL_RETURN_PATH"],
    ["empty envelope sender", { returnPath: "" }, "NULL_RETURN_PATH"],
    ["MAILER-DAEMON", { from: "Mail Delivery System <MAILER-DAEMON@mx.example>" }, "SYSTEM_SENDER"],
    ["postmaster", { from: "Postmaster@ci.example" }, "SYSTEM_SENDER"],
    ["no-reply", { from: "no-reply@shop.example" }, "SYSTEM_SENDER"],
    ["list owner", { from: "owner-friends@lists.example" }, "SYSTEM_SENDER"],
    ["list request", { from: "friends-request@lists.example" }, "SYSTEM_SENDER"],
    ["one of our addresses", { from: "SUPPORT@acme.example" }, "OWN_ADDRESS"],
    ["one of our addresses (with name)", { from: "sales@ACME.example" }, "OWN_ADDRESS"],
    ["our Message-ID domain as sender domain", { from: "robot@mail.acme.example" }, "OWN_ADDRESS"],
    ["classified bounce", { isBounce: true }, "BOUNCE"],
    ["spam", { isSpam: true }, "SPAM"],
  ])("suppresses %s", (_name, overrides, reason) => {
    expect(autoReplySuppression({ ...clean, ...overrides }, ctx)).toBe(reason);
  });

  it("rate-limits to 5 auto-replies per sender per window by default", () => {
    expect(autoReplySuppression(clean, { ...ctx, recentAutoRepliesToSender: 4 })).toBeNull();
    expect(autoReplySuppression(clean, { ...ctx, recentAutoRepliesToSender: 5 })).toBe("RATE_LIMITED");
    expect(autoReplySuppression(clean, { ...ctx, recentAutoRepliesToSender: 1, maxPerWindow: 1 })).toBe(
      "RATE_LIMITED",
    );
    expect(
      autoReplySuppression(clean, { ...ctx, recentAutoRepliesToSender: 9, maxPerWindow: 10 }),
    ).toBeNull();
  });

  it("matches header names in any casing", () => {
    expect(autoReplySuppression(withHeaders({ "Auto-Submitted": "auto-replied" }), ctx)).toBe(
      "AUTO_SUBMITTED",
    );
    expect(autoReplySuppression(withHeaders({ "LIST-ID": "<x.lists.example>" }), ctx)).toBe("MAILING_LIST");
  });

  it("reads repeated headers given as arrays", () => {
    expect(autoReplySuppression(withHeaders({ "auto-submitted": ["no", "auto-replied"] }), ctx)).toBe(
      "AUTO_SUBMITTED",
    );
  });

  it("unfolds raw header lines", () => {
    const h = rawHeadersFromLines([
      { key: "Auto-Submitted", line: "Auto-Submitted:\r\n auto-generated" },
      { key: "received", line: "Received: a" },
      { key: "received", line: "Received: b" },
    ]);
    expect(h).toEqual({ "auto-submitted": ["auto-generated"], received: ["a", "b"] });
  });

  it("suppresses every real bounce in the corpus via parsed header lines", async () => {
    const dir = "/work/shared/corpus/mail-gem/multipart_report_emails";
    for (const file of readdirSync(dir)) {
      const parsed = await simpleParser(readFileSync(join(dir, file)));
      const from = parsed.from?.value[0]?.address ?? null;
      const reason = autoReplySuppression({ from, headers: rawHeadersFromLines(parsed.headerLines) }, ctx);
      expect(reason, file).not.toBeNull();
    }
  });
});

describe("auto-reply tags", () => {
  const values: AutoReplyTagValues = {
    consumer: "Carla <Customer>",
    agent: "Ann & Co",
    queue: "Billing",
    company: "ACME Corp",
    ticketId: 123456,
    nextWorkingDate: "2024-03-04",
    now: new Date("2024-03-01T23:30:00Z"),
    timeZone: "Europe/Berlin",
  };
  const template =
    "@{consumer}|@{agent}|@{date}|@{time}|@{queue}|@{company}|@{next_working_date}|@{ticket_id}|@{unknown}";

  it("replaces every tag in a text template, unescaped", () => {
    expect(renderAutoReplyTags(template, values, { html: false })).toBe(
      "Carla <Customer>|Ann & Co|2024-03-02|00:30|Billing|ACME Corp|2024-03-04|123456|@{unknown}",
    );
  });

  it("HTML-escapes values in an HTML template", () => {
    expect(renderAutoReplyTags("<p>@{consumer} / @{agent}</p>", values, { html: true })).toBe(
      "<p>Carla &lt;Customer&gt; / Ann &amp; Co</p>",
    );
  });

  it.each([
    ["Europe/Berlin", "2024-03-02", "00:30"],
    ["America/New_York", "2024-03-01", "18:30"],
    ["Asia/Kolkata", "2024-03-02", "05:00"],
    ["UTC", "2024-03-01", "23:30"],
  ])("formats date and time in %s", (timeZone, date, time) => {
    expect(renderAutoReplyTags("@{date} @{time}", { ...values, timeZone }, { html: false })).toBe(
      `${date} ${time}`,
    );
  });

  it("follows daylight saving time", () => {
    const summer = { ...values, now: new Date("2024-07-01T12:00:00Z") };
    expect(renderAutoReplyTags("@{time}", summer, { html: false })).toBe("14:00");
    expect(
      renderAutoReplyTags("@{time}", { ...summer, now: new Date("2024-01-01T12:00:00Z") }, { html: false }),
    ).toBe("13:00");
  });

  it("accepts tag names in any case and spaces inside the braces", () => {
    expect(renderAutoReplyTags("@{ Ticket_ID } @{QUEUE}", values, { html: false })).toBe("123456 Billing");
  });

  it("formats a Date next working date in the tenant's zone and blanks missing values", () => {
    const v = { ...values, agent: null, nextWorkingDate: new Date("2024-03-03T23:30:00Z") };
    expect(renderAutoReplyTags("[@{agent}] @{next_working_date}", v, { html: false })).toBe("[] 2024-03-04");
    expect(
      renderAutoReplyTags("@{next_working_date}", { ...values, nextWorkingDate: null }, { html: false }),
    ).toBe("");
  });

  it("refuses an unknown time zone with a typed error", () => {
    expect(() =>
      renderAutoReplyTags("@{date}", { ...values, timeZone: "Nowhere/Town" }, { html: false }),
    ).toThrow(AutoReplyError);
  });
});

describe("auto-reply attachments", () => {
  const png = (i: number, inline = true): AutoReplyAttachment => ({
    filename: `img${i}.png`,
    contentType: "image/png",
    size: 1000,
    inline,
  });
  const pdf = (i: number): AutoReplyAttachment => ({
    filename: `doc${i}.pdf`,
    contentType: "application/pdf",
    size: 1000,
    inline: false,
    head: Buffer.from("%PDF-1.7"),
  });
  const codes = (list: AutoReplyAttachment[], limits = {}) =>
    checkAutoReplyAttachments(list, limits).map((e) => e.code);

  it("accepts 10 inline images and 10 attachments of allowed types", () => {
    const list = [
      ...Array.from({ length: 10 }, (_, i) => png(i)),
      ...Array.from({ length: 10 }, (_, i) => pdf(i)),
    ];
    expect(codes(list)).toEqual([]);
    expect(() => assertAutoReplyAttachments(list)).not.toThrow();
  });

  it("refuses an 11th inline image and an 11th attachment", () => {
    expect(codes(Array.from({ length: 11 }, (_, i) => png(i)))).toEqual(["TOO_MANY_INLINE_IMAGES"]);
    expect(codes(Array.from({ length: 11 }, (_, i) => pdf(i)))).toEqual(["TOO_MANY_ATTACHMENTS"]);
  });

  it("refuses more than 25 MiB in total", () => {
    const half = 12.5 * 1024 * 1024;
    expect(
      codes([
        { ...pdf(1), size: half },
        { ...pdf(2), size: half },
      ]),
    ).toEqual([]);
    expect(
      codes([
        { ...pdf(1), size: half },
        { ...pdf(2), size: half + 1 },
      ]),
    ).toEqual(["TOO_LARGE"]);
  });

  it.each<[string, AutoReplyAttachment]>([
    [
      "an executable",
      { filename: "setup.exe", contentType: "application/x-msdownload", size: 10, inline: false },
    ],
    [
      "a double extension",
      { filename: "invoice.pdf.exe", contentType: "application/pdf", size: 10, inline: false },
    ],
    [
      "a PE file named .pdf",
      {
        filename: "invoice.pdf",
        contentType: "application/pdf",
        size: 10,
        inline: false,
        head: Buffer.from("MZ\x90\x00"),
      },
    ],
    [
      "an ELF file named .png",
      { filename: "x.png", contentType: "image/png", size: 10, inline: false, head: Buffer.from("\x7fELF") },
    ],
    [
      "a shell script named .txt",
      {
        filename: "x.txt",
        contentType: "text/plain",
        size: 10,
        inline: false,
        head: Buffer.from("#!/bin/sh"),
      },
    ],
    [
      "SVG (can carry script)",
      { filename: "logo.svg", contentType: "image/svg+xml", size: 10, inline: true },
    ],
    [
      "a macro-enabled document",
      {
        filename: "a.docm",
        contentType: "application/vnd.ms-word.document.macroEnabled.12",
        size: 10,
        inline: false,
      },
    ],
    [
      "a mismatched extension",
      { filename: "a.docx", contentType: "application/pdf", size: 10, inline: false },
    ],
  ])("refuses %s", (_name, attachment) => {
    expect(codes([attachment])).toContain("ATTACHMENT_TYPE_NOT_ALLOWED");
  });

  it.each([
    ["a.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"],
    ["a.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"],
    ["a.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"],
    ["a.odt", "application/vnd.oasis.opendocument.text"],
    ["A.JPG", "image/jpeg; name=A.JPG"],
    ["a.csv", "text/csv"],
  ])("allows %s", (filename, contentType) => {
    expect(codes([{ filename, contentType, size: 10, inline: false }])).toEqual([]);
  });

  it("only images may be inline", () => {
    expect(codes([{ ...pdf(1), inline: true }])).toEqual(["INLINE_NOT_IMAGE"]);
  });

  it("reports every problem, and assert throws the first as a typed error", () => {
    const list = [
      { filename: "x.exe", contentType: "application/octet-stream", size: 30 * 1024 * 1024, inline: false },
      ...Array.from({ length: 11 }, (_, i) => png(i)),
    ];
    expect(codes(list)).toEqual(["ATTACHMENT_TYPE_NOT_ALLOWED", "TOO_MANY_INLINE_IMAGES", "TOO_LARGE"]);
    try {
      assertAutoReplyAttachments(list);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(AutoReplyError);
      expect(err).toMatchObject({ code: "ATTACHMENT_TYPE_NOT_ALLOWED", field: "attachments[0]" });
    }
  });
});
