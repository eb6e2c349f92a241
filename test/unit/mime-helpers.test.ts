import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { messageIdOfHeaderBlock, parseDeliveryStatus } from "../../src/connectors/mime/delivery-status.js";
import { headlineOf } from "../../src/connectors/mime/headline.js";
import { parseMailDate, safeFilename } from "../../src/connectors/mime/mime-to-parsed.js";
import { extractMessageIds, normalizeMessageId } from "../../src/engine/ingest/parsed-mail.js";
import { stripComments } from "../../src/engine/text.js";

describe("normalizeMessageId / extractMessageIds", () => {
  it.each([
    ["<abc@x.example>", "abc@x.example"],
    ["  <abc@x.example>  ", "abc@x.example"],
    ["abc@x.example", "abc@x.example"],
    ["<abc@x.example> (comment)", "abc@x.example"],
    ["<CaseKept@X.Example>", "CaseKept@X.Example"],
    ["<no-at-sign>", "no-at-sign"],
    ["", null],
    ["   ", null],
    ["<>", null],
    [null, null],
  ])("normalizeMessageId(%j) = %j", (raw, expected) => {
    expect(normalizeMessageId(raw)).toBe(expected);
  });

  it("extracts every id in order, de-duplicated, skipping phrases", () => {
    expect(extractMessageIds("<a@x> <b@x>\r\n\t<a@x> junk <c@x>")).toEqual(["a@x", "b@x", "c@x"]);
    expect(extractMessageIds('"Fred\'s message of" <a@x>')).toEqual(["a@x"]);
    expect(extractMessageIds("a@x, b@x")).toEqual(["a@x", "b@x"]);
    expect(extractMessageIds("just words")).toEqual([]);
  });

  it("drops whitespace and control characters inside brackets; a bare token needs text on both sides of its @", () => {
    // Folded inside the id, or CFWS around the "@" (obsolete syntax).
    expect(extractMessageIds("<x y @ z>")).toEqual(["xy@z"]);
    expect(extractMessageIds("<long-id-\r\n part@x.example> <b@x>")).toEqual([
      "long-id-part@x.example",
      "b@x",
    ]);
    expect(normalizeMessageId("< a@b >")).toBe("a@b");
    // These were all the id "@" (or ""), which joined strangers' mail into one thread.
    expect(extractMessageIds("q r @ s")).toEqual([]);
    expect(extractMessageIds("@ @x x@")).toEqual([]);
    expect(extractMessageIds("<@> < @ > <...>")).toEqual([]);
    expect(normalizeMessageId("<\u0000>")).toBeNull();
    expect(normalizeMessageId("<a\u0000b@x>")).toBe("ab@x");
  });

  it("never returns ids with whitespace, control characters or brackets, nor a bare @", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        for (const id of extractMessageIds(s)) {
          expect(id).not.toMatch(/[\s\u0000-\u001f\u007f<>]/);
          expect(id).not.toBe("@");
        }
      }),
    );
  });
});

describe("parseMailDate", () => {
  it.each([
    ["Wed, 01 May 2024 10:00:00 +0000", "2024-05-01T10:00:00.000Z"],
    ["01 May 2024 10:00:00 +0200", "2024-05-01T08:00:00.000Z"],
    ["Wed, 1 May 2024 10:00:00 GMT", "2024-05-01T10:00:00.000Z"],
    ["Wed, 01 May 2024 10:00:00 +0000 (UTC)", "2024-05-01T10:00:00.000Z"],
    ["Thu, 13 Feb 1969 23:32 -0330 (Newfoundland Time)", "1969-02-14T03:02:00.000Z"],
    ["Fri, 21 Nov 1997 09(comment):   55  :  06 -0600", "1997-11-21T15:55:06.000Z"],
    ["Thu, 31 Dec 2026 23:30:00 -1400", "2027-01-01T13:30:00.000Z"],
    ["2026-03-02T08:00:00Z", "2026-03-02T08:00:00.000Z"],
    ["Mon, 2 Mar 26 08:00:00 +0000", "2026-03-02T08:00:00.000Z"],
  ])("%j → %s", (raw, iso) => {
    expect(parseMailDate(raw)?.toISOString()).toBe(iso);
  });

  it.each([
    ["<HR>"],
    [""],
    ["Mon, 30 Jun 3609 15:33:50 +0600"],
    ["Wed, 15 Dec 2010    59:10 -0500"],
    ["Pn, 29 paX 2007 21:13:00 +0100"],
    // Date.parse reads these as 2000-01-01, 2000-03-02 and a date four days off.
    ["0"],
    ["Mon, 02 Mar 0000 08:00:00 +0000"],
    ["Mon, 02 Mar 2026 08:00:00 +9999"],
    ["Mon, 02 Mar 2026 08:00:00 +0160"],
  ])("%j → null", (raw) => {
    expect(parseMailDate(raw)).toBeNull();
  });
});

describe("safeFilename", () => {
  it.each([
    ["report.pdf", "report.pdf"],
    ["Rechnung März.pdf", "Rechnung März.pdf"],
    ["../../etc/passwd", "passwd"],
    ["C:\\Users\\x\\evil.exe", "evil.exe"],
    ["invoice\u202Efdp.exe", "invoicefdp.exe"],
    ["tab\tname.txt", "tabname.txt"],
    [".htaccess", "htaccess"],
    ["dir/", null],
    ["", null],
    [null, null],
  ])("%j → %j", (raw, expected) => {
    expect(safeFilename(raw)).toBe(expected);
  });

  it("caps the length and keeps the extension", () => {
    const long = `${"a".repeat(400)}.pdf`;
    const safe = safeFilename(long)!;
    expect(safe).toHaveLength(255);
    expect(safe.endsWith(".pdf")).toBe(true);
  });
});

describe("stripComments", () => {
  it.each([
    ["Pete(A wonderful \\) chap) <pete(his account)@silly.test(his host)>", "Pete  <pete @silly.test >"],
    ['"quoted (not a comment)" <a@b>', '"quoted (not a comment)" <a@b>'],
    ["a (nested (deep) comment) b", "a   b"],
    ["unbalanced (never closed", "unbalanced "],
    ["<a@x> (Fred's message) <b@x>", "<a@x>   <b@x>"],
  ])("%j → %j", (raw, expected) => {
    expect(stripComments(raw)).toBe(expected);
  });

  it("takes linear time on a run of parentheses (the regex it replaced for References took 22 s for 200,000)", () => {
    const started = performance.now();
    stripComments(`${"(".repeat(200_000)}<a@x>`);
    stripComments("(".repeat(100_000) + ")".repeat(100_000));
    expect(performance.now() - started).toBeLessThan(250);
  });
});

describe("parseDeliveryStatus (RFC 3464)", () => {
  it("reads per-message and per-recipient blocks with folded fields", () => {
    const body = [
      "Reporting-MTA: dns; mx.example",
      "Original-Envelope-Id: env-1",
      "Arrival-Date: Wed, 01 May 2024 10:00:00 +0000",
      "",
      "Final-Recipient: rfc822; <a@x.example>",
      "Action: failed",
      "Status: 5.1.1 (user unknown)",
      "Diagnostic-Code: smtp; 550 5.1.1 no such",
      "  user here",
      "",
      "Original-Recipient: rfc822;b@x.example",
      "Final-Recipient: RFC822; b@x.example",
      "Action: Delayed",
      "Status: 4.4.7",
      "Remote-MTA: dns; mx.x.example",
    ].join("\r\n");
    expect(parseDeliveryStatus(body)).toEqual({
      reportingMta: "mx.example",
      originalEnvelopeId: "env-1",
      recipients: [
        {
          finalRecipient: "a@x.example",
          originalRecipient: null,
          action: "failed",
          status: "5.1.1",
          diagnosticCode: "550 5.1.1 no such user here",
          remoteMta: null,
        },
        {
          finalRecipient: "b@x.example",
          originalRecipient: "b@x.example",
          action: "delayed",
          status: "4.4.7",
          diagnosticCode: null,
          remoteMta: "mx.x.example",
        },
      ],
    });
  });

  it("tolerates garbage", () => {
    expect(parseDeliveryStatus("")).toEqual({ reportingMta: null, originalEnvelopeId: null, recipients: [] });
    expect(parseDeliveryStatus("no fields here\n\n\nat all")).toEqual({
      reportingMta: null,
      originalEnvelopeId: null,
      recipients: [],
    });
    fc.assert(
      fc.property(fc.string({ maxLength: 500 }), (s) => {
        expect(() => parseDeliveryStatus(s)).not.toThrow();
      }),
    );
  });

  it("finds the Message-ID of a returned header block", () => {
    expect(
      messageIdOfHeaderBlock(
        "From: a@b\r\nMessage-Id:\r\n <x.1@acme.example>\r\n\r\nbody Message-ID: <no@no>",
      ),
    ).toBe("x.1@acme.example");
    expect(messageIdOfHeaderBlock("From: a@b\n\nMessage-ID: <body@only>")).toBeNull();
  });
});

describe("headlineOf (the rejected record's sender, subject and Message-ID)", () => {
  it("reads folded, encoded fields of the first header block only", () => {
    const raw = Buffer.from(
      "Received: from x\r\n by y\r\nSubject: =?UTF-8?B?w5xiZXJ3ZWlzdW5n?=\r\n folded\r\n" +
        'From: "Doe, Jane" <jane@customer.example>\r\nMessage-ID:\r\n <m-1@customer.example>\r\n' +
        "\r\nFrom: body@not.header\r\nSubject: not this\r\n",
    );
    expect(headlineOf(raw)).toEqual({
      messageId: "m-1@customer.example",
      from: "jane@customer.example",
      subject: "Überweisung folded",
    });
  });

  it("takes a bare From address, and gives nulls for what is missing or unusable", () => {
    expect(headlineOf(Buffer.from("From: jane@customer.example (Jane)\nX: y\n\nbody"))).toEqual({
      messageId: null,
      from: "jane@customer.example",
      subject: null,
    });
    expect(headlineOf(Buffer.from("garbage without any header\r\n"))).toEqual({
      messageId: null,
      from: null,
      subject: null,
    });
    expect(headlineOf(Buffer.alloc(0))).toEqual({ messageId: null, from: null, subject: null });
  });

  it("reads only the first 64 KB, so a huge header costs nothing", () => {
    const raw = Buffer.from(`X-Pad: ${"a".repeat(100_000)}\r\nSubject: late\r\n\r\n`);
    expect(headlineOf(raw).subject).toBeNull();
  });
});

it("headlineOf never throws, whatever the bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
      const h = headlineOf(Buffer.from(bytes));
      expect(h.subject === null || h.subject.length <= 998).toBe(true);
    }),
  );
});
