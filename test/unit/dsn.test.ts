import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ParsedMail } from "mailparser";
import { simpleParser } from "mailparser";
import { describe, expect, it } from "vitest";
import {
  findDeliveryStatusBlock,
  heuristicBounce,
  interpretDsn,
  isUndeliverable,
  messageIdFromHeaders,
  parseDeliveryStatus,
  reportFieldsFromDeliveryStatus,
} from "../../src/engine/outbound/dsn.js";
import { eximFailureLines } from "../helpers/raw-mail.js";

const CORPUS = "/work/shared/corpus/mail-gem/multipart_report_emails";

async function load(file: string): Promise<ParsedMail> {
  return simpleParser(readFileSync(join(CORPUS, file)));
}

/**
 * What ingest hands to the DSN module: mailparser merges the message/delivery-status
 * part into `text`, and exposes the returned message (message/rfc822) or its headers
 * (text/rfc822-headers) as an attachment.
 */
function reportOf(parsed: ParsedMail) {
  const block = findDeliveryStatusBlock(parsed.text ?? "");
  const returned = parsed.attachments.find((a) =>
    /^(?:message\/rfc822|text\/rfc822-headers)$/i.test(a.contentType),
  );
  const headers = returned ? returned.content.toString("utf8").split(/\r?\n\r?\n/)[0] : null;
  expect(block).not.toBeNull();
  return reportFieldsFromDeliveryStatus(block ?? "", headers);
}

describe("RFC 3464 reports from the corpus", () => {
  it.each(["multi_address_bounce1.eml", "multi_address_bounce2.eml"])(
    "%s: five permanent 5.1.1 failures for the original message",
    async (file) => {
      const outcome = interpretDsn(reportOf(await load(file)));
      expect(outcome.source).toBe("RFC3464");
      expect(outcome.originalMessageId).toBe("<118707422.15521266992174819.JavaMail.root@lvmail01>");
      expect(outcome.recipients).toHaveLength(5);
      for (const r of outcome.recipients) {
        expect(r).toMatchObject({ action: "failed", status: "5.1.1", permanent: true });
        expect(r.diagnostic).toMatch(
          /^smtp; 550-5\.1\.1 The email account that you tried to reach does not exist/,
        );
      }
      expect(outcome.undeliverable).toEqual([
        "bbbbvhvbbvkjbhfbvbvjhb@gmail.com",
        "bscdbcjhasbcjhbdscbhbsdhcbj@gmail.com",
        "egyfefsdvsfvvhjsd@gmail.com",
        "kfhejkfbsjkjsbhds@gmail.com",
        "qfvhgsvhgsduiohncdhcvhsdfvsfygusd@gmail.com",
      ]);
    },
  );

  it("multipart_report_multiple_status.eml: angle-bracketed recipient, 5.3.0", async () => {
    const outcome = interpretDsn(reportOf(await load("multipart_report_multiple_status.eml")));
    expect(outcome.originalMessageId).toBe("<4c2a146147ac8_61ff157c4ec1652df@s.h.c.mail>");
    expect(outcome.recipients).toEqual([
      { address: "u@ci.com", action: "failed", status: "5.3.0", permanent: true, diagnostic: null },
    ]);
    expect(isUndeliverable(outcome, "U@CI.com")).toBe(true);
  });

  it("report_422.eml: a delay warning is not undeliverable", async () => {
    const outcome = interpretDsn(reportOf(await load("report_422.eml")));
    expect(outcome.originalMessageId).toBe(
      "<15655788.13.1200472642578.JavaMail.Administrator@mail.ttttt.com.au>",
    );
    expect(outcome.recipients).toEqual([
      {
        address: "fraser@oooooooo.com.au",
        action: "delayed",
        status: "4.2.2",
        permanent: false,
        diagnostic: "SMTP; 452 4.2.2 <fraser@oooooooo.com.au>... Mailbox full",
      },
    ]);
    expect(outcome.undeliverable).toEqual([]);
    expect(isUndeliverable(outcome, "fraser@oooooooo.com.au")).toBe(false);
  });

  it("report_530.eml: permanent failure, original id from text/rfc822-headers", async () => {
    const outcome = interpretDsn(reportOf(await load("report_530.eml")));
    expect(outcome.originalMessageId).toBe("<200712232303.lBNN3jDq002941@mail12.rrrr.com.au>");
    expect(outcome.recipients).toMatchObject([
      { address: "edwin@zzzzzzz.com", action: "failed", status: "5.3.0", permanent: true },
    ]);
    expect(outcome.undeliverable).toEqual(["edwin@zzzzzzz.com"]);
  });
});

describe("delivery-status parsing", () => {
  const body = [
    "Reporting-MTA: dns; mx.example",
    "Arrival-Date: Tue, 23 Feb 2010 22:16:15 -0800",
    "",
    "Final-Recipient: rfc822; a@x.example",
    "Action: failed",
    "Status: 5.1.1",
    "Diagnostic-Code: smtp; 550 5.1.1 no such",
    "    user here",
    "",
    "",
    "Original-Recipient: rfc822; b@x.example",
    "Action: delivered",
    "Status: 2.0.0",
  ].join("\r\n");

  it("splits per-message and per-recipient groups and unfolds fields", () => {
    const { perMessage, perRecipient } = parseDeliveryStatus(body);
    expect(perMessage).toEqual({
      "reporting-mta": "dns; mx.example",
      "arrival-date": "Tue, 23 Feb 2010 22:16:15 -0800",
    });
    expect(perRecipient).toHaveLength(2);
    expect(perRecipient[0]?.["diagnostic-code"]).toBe("smtp; 550 5.1.1 no such user here");
    expect(perRecipient[1]).toEqual({
      "original-recipient": "rfc822; b@x.example",
      action: "delivered",
      status: "2.0.0",
    });
  });

  it("handles a report without a per-message group", () => {
    const { perMessage, perRecipient } = parseDeliveryStatus(
      "Final-Recipient: rfc822; a@x.example\nAction: failed\nStatus: 5.0.0",
    );
    expect(perMessage).toEqual({});
    expect(perRecipient).toHaveLength(1);
  });

  it("finds the block inside a merged text body", () => {
    expect(
      findDeliveryStatusBlock("Sorry.\n\nReporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b.example"),
    ).toMatch(/^Reporting-MTA/);
    expect(findDeliveryStatusBlock("Just a normal mail")).toBeNull();
  });
});

describe("DSN interpretation rules", () => {
  it.each([
    [
      "status given",
      { finalRecipient: "rfc822;a@x.example", action: "failed", status: "5.2.2" },
      "failed",
      "5.2.2",
      true,
    ],
    [
      "status from diagnostic",
      { finalRecipient: "rfc822; a@x.example", action: "failed", diagnosticCode: "smtp; 550 5.7.1 blocked" },
      "failed",
      "5.7.1",
      true,
    ],
    [
      "class from a bare reply code",
      { finalRecipient: "a@x.example", action: "Failed", diagnosticCode: "smtp; 554 rejected" },
      "failed",
      "5.0.0",
      true,
    ],
    [
      "failed with a 4.x.x status",
      { finalRecipient: "rfc822; a@x.example", action: "failed", status: "4.4.7" },
      "failed",
      "4.4.7",
      false,
    ],
    ["no action, 5.x.x", { finalRecipient: "rfc822; a@x.example", status: "5.1.1" }, "failed", "5.1.1", true],
    [
      "no action, 4.x.x",
      { finalRecipient: "rfc822; a@x.example", status: "4.2.2" },
      "delayed",
      "4.2.2",
      false,
    ],
    [
      "delivered",
      { finalRecipient: "rfc822; a@x.example", action: "delivered", status: "2.0.0" },
      "delivered",
      "2.0.0",
      false,
    ],
    [
      "relayed",
      { finalRecipient: "rfc822; a@x.example", action: "relayed (to non-DSN MTA)", status: "2.0.0" },
      "relayed",
      "2.0.0",
      false,
    ],
    [
      "status with comment",
      { finalRecipient: "rfc822; a@x.example", action: "failed", status: "5.1.1 (user unknown)" },
      "failed",
      "5.1.1",
      true,
    ],
  ] as const)("%s", (_name, fields, action, status, permanent) => {
    const outcome = interpretDsn({ recipients: [fields] });
    expect(outcome.recipients[0]).toMatchObject({ address: "a@x.example", action, status, permanent });
    expect(outcome.undeliverable).toEqual(permanent ? ["a@x.example"] : []);
  });

  it("skips non-rfc822 and invalid recipients, falls back to Original-Recipient", () => {
    const outcome = interpretDsn({
      recipients: [
        { finalRecipient: "x400; /C=DE/O=Acme", action: "failed", status: "5.0.0" },
        { finalRecipient: "rfc822; not an address", action: "failed", status: "5.0.0" },
        { finalRecipient: null, originalRecipient: "rfc822; c@x.example", action: "failed", status: "5.0.0" },
      ],
    });
    expect(outcome.recipients.map((r) => r.address)).toEqual(["c@x.example"]);
  });

  it("prefers an explicit original Message-ID and drops invalid ones", () => {
    const headers = "Subject: x\r\nMessage-ID:\r\n <from-headers@acme.example>\r\n";
    expect(
      interpretDsn({ recipients: [], originalMessageId: "explicit@acme.example", originalHeaders: headers })
        .originalMessageId,
    ).toBe("<explicit@acme.example>");
    expect(
      interpretDsn({ recipients: [], originalMessageId: "bad id\r\nX: y", originalHeaders: headers })
        .originalMessageId,
    ).toBe("<from-headers@acme.example>");
    expect(messageIdFromHeaders("Message-ID: <a b@c>")).toBeNull();
  });

  it("lists a recipient failing twice once in undeliverable", () => {
    const r = { finalRecipient: "rfc822; a@x.example", action: "failed", status: "5.1.1" };
    expect(
      interpretDsn({ recipients: [r, { ...r, finalRecipient: "rfc822; A@x.example" }] }).undeliverable,
    ).toEqual(["a@x.example"]);
  });
});

describe("heuristic fallback for non-RFC 3464 bounces", () => {
  const postfixPlain = [
    "This is the mail system at host mx.acme.example.",
    "",
    "I'm sorry to have to inform you that your message could not",
    "be delivered to one or more recipients. It's attached below.",
    "",
    "<gone@customer.example>: host mx.customer.example[192.0.2.1] said: 550 5.1.1",
    "    <gone@customer.example>: Recipient address rejected: User unknown",
    "",
    "<full@customer.example>: host mx.customer.example[192.0.2.1] said: 452 4.2.2",
    "    Mailbox full",
    "",
    "--- Original message follows ---",
    "Return-Path: <support@acme.example>",
    "From: ACME Support <support@acme.example>",
    "To: gone@customer.example, full@customer.example, cc@customer.example",
    "Message-ID: <outbound-7@mail.acme.example>",
    "Subject: Re: Broken widget [#42]",
    "",
    "Thanks, we are on it. Call 555 123 if needed, or mail other@customer.example.",
  ].join("\n");

  it("finds recipients, statuses and the original Message-ID in a plain-text bounce", () => {
    const outcome = heuristicBounce({
      subject: "Undelivered Mail Returned to Sender",
      from: "MAILER-DAEMON@mx.acme.example (Mail Delivery System)",
      text: postfixPlain,
    });
    expect(outcome?.source).toBe("HEURISTIC");
    expect(outcome?.originalMessageId).toBe("<outbound-7@mail.acme.example>");
    expect(outcome?.recipients.map((r) => [r.address, r.action, r.status, r.permanent])).toEqual([
      ["gone@customer.example", "failed", "5.1.1", true],
      ["full@customer.example", "delayed", "4.2.2", false],
    ]);
    expect(outcome?.undeliverable).toEqual(["gone@customer.example"]);
  });

  it("qmail style: failure paragraph with a bare reply code", () => {
    const text = [
      "Hi. This is the qmail-send program at mx.example.",
      "I'm afraid I wasn't able to deliver your message to the following addresses.",
      "This is a permanent error; I've given up. Sorry it didn't work out.",
      "",
      "<nobody@customer.example>:",
      "Sorry, no mailbox here by that name. (#5.1.1) 550",
      "",
      "--- Below this line is a copy of the message.",
      "",
      "Received: (qmail 1 invoked by uid 0); 1 Jan 2024 00:00:00 -0000",
      "Message-ID: <q-1@mail.acme.example>",
    ].join("\n");
    const outcome = heuristicBounce({ subject: "failure notice", from: "MAILER-DAEMON@mx.example", text });
    expect(outcome?.recipients).toMatchObject([
      { address: "nobody@customer.example", status: "5.1.1", permanent: true },
    ]);
    expect(outcome?.originalMessageId).toBe("<q-1@mail.acme.example>");
  });

  it("works on the human-readable part of a corpus bounce with the attached original", async () => {
    const parsed = await load("multi_address_bounce1.eml");
    const notice = (parsed.text ?? "").slice(0, (parsed.text ?? "").indexOf("Reporting-MTA:"));
    const original = parsed.attachments[0]?.content.toString("utf8") ?? "";
    const outcome = heuristicBounce({
      subject: parsed.subject ?? null,
      from: parsed.from?.text ?? null,
      text: notice,
      originalHeaders: original,
    });
    expect(outcome?.originalMessageId).toBe("<118707422.15521266992174819.JavaMail.root@lvmail01>");
    expect(outcome?.undeliverable).toHaveLength(5);
    expect(outcome?.recipients.every((r) => r.status === "5.1.1")).toBe(true);
  });

  // Found by a probe (2026-11-23): the host's IP address was read as the status — with
  // [1.2.3.4] as 2.3.4 "delivered", [5.9.10.20] as 5.9.10, [10.4.2.15] as 4.2.15 "delayed".
  const eximNotice = (ip: string) =>
    eximFailureLines({
      ip,
      original: { messageId: "out-6@mail.acme.test", from: "support@acme.test", subject: "Re: order" },
    }).join("\n");
  it.each(["1.2.3.4", "192.0.2.10", "5.9.10.20", "10.4.2.15", "2.5.5.250"])(
    "Exim: the status is the reply's 5.1.1, not the host address [%s]",
    (ip) => {
      const outcome = heuristicBounce({
        subject: "Mail delivery failed: returning message to sender",
        from: "Mailer-Daemon@mx.customer.example",
        text: eximNotice(ip),
      });
      expect(outcome?.recipients.map((r) => [r.address, r.action, r.status, r.permanent])).toEqual([
        ["gone6@customer.example", "failed", "5.1.1", true],
      ]);
      expect(outcome?.undeliverable).toEqual(["gone6@customer.example"]);
      expect(outcome?.originalMessageId).toBe("<out-6@mail.acme.test>");
    },
  );

  it.each([
    ["a bare reply code after an address", "host [10.4.2.250] said: 550 User unknown", "5.0.0"],
    ["the enhanced code after its reply code wins", "5.0.0 blocked: 451-4.7.1 try later", "4.7.1"],
    ["a continuation line's reply code", "host [5.5.5.5] said: 550-5.7.1 policy", "5.7.1"],
    ["qmail's (#5.1.1)", "Sorry, no mailbox here by that name. (#5.1.1)", "5.1.1"],
    ["a version number is no reply code", "Exim 4.96 at [2.2.2.2]", null],
  ])("reads the status of free text: %s", (_name, diagnostic, status) => {
    const outcome = interpretDsn({
      recipients: [{ finalRecipient: "a@x.example", action: "failed", diagnosticCode: diagnostic }],
    });
    expect(outcome.recipients[0]?.status).toBe(status);
  });

  it("leaves ordinary mail alone, even when it mentions SMTP codes", () => {
    expect(
      heuristicBounce({
        subject: "Question about error 550",
        from: "carla@customer.example",
        text: "When I mail bob@x.example I get 550 5.1.1, why?",
      }),
    ).toBeNull();
  });

  it("returns null for a bounce-looking mail with nothing usable", () => {
    expect(
      heuristicBounce({
        subject: "Delivery Status Notification",
        from: "postmaster@x.example",
        text: "Something happened.",
      }),
    ).toBeNull();
  });
});
