import { describe, expect, it } from "vitest";
import type { Classification, EnvelopeInfo } from "../../src/engine/ingest/classify.js";
import { classify } from "../../src/engine/ingest/classify.js";
import type { ParsedMail } from "../../src/engine/ingest/parsed-mail.js";
import { makeParsedMail } from "../helpers/parsed-mail.js";
import { eximFailureLines } from "../helpers/raw-mail.js";

type Case = [
  name: string,
  mail: Partial<ParsedMail>,
  envelope: EnvelopeInfo,
  expected: Partial<Classification>,
];

const dsn = {
  reportingMta: "mx.example",
  originalEnvelopeId: null,
  originalMessageId: "out-1@acme.example",
  recipients: [
    {
      finalRecipient: "a@x.example",
      originalRecipient: null,
      action: "delayed",
      status: "4.2.2",
      diagnosticCode: null,
      remoteMta: null,
    },
    {
      finalRecipient: "b@x.example",
      originalRecipient: null,
      action: "failed",
      status: "5.1.1",
      diagnosticCode: null,
      remoteMta: null,
    },
  ],
};

const eximBounce = eximFailureLines({
  original: { messageId: "out-6@mail.acme.test", from: "support@acme.test" },
}).join("\n");

const cases: Case[] = [
  [
    "a plain customer mail",
    {},
    {},
    { bounce: false, autoSubmitted: false, bulk: false, spam: false, spamReason: null, loopRisk: [] },
  ],
  // RFC 3464 delivery reports
  [
    "a DSN: bounce, most severe action wins, machine-generated",
    { isDeliveryReport: true, deliveryStatus: dsn, from: { address: "MAILER-DAEMON@mx.example", name: "" } },
    { mailFrom: "" },
    {
      bounce: true,
      bounceAction: "failed",
      autoSubmitted: true,
      loopRisk: ["bounce", "null-sender", "mailer-daemon", "auto-submitted"],
    },
  ],
  [
    "a delay-only DSN",
    { isDeliveryReport: true, deliveryStatus: { ...dsn, recipients: [dsn.recipients[0]!] } },
    {},
    { bounce: true, bounceAction: "delayed" },
  ],
  [
    "a DSN without a status part",
    { isDeliveryReport: true, deliveryStatus: null },
    {},
    { bounce: true, bounceAction: "unknown" },
  ],
  [
    "a non-standard bounce: null sender + bounce subject",
    { subject: "failure notice", from: { address: "mailer@mx.example", name: "" } },
    { mailFrom: "" },
    { bounce: true, bounceAction: "unknown" },
  ],
  [
    "a non-standard bounce: MAILER-DAEMON From + bounce subject, no reverse path known, a failed recipient",
    {
      subject: "Undelivered Mail Returned to Sender",
      from: { address: "MAILER-DAEMON@mx.example", name: "" },
      text: eximBounce,
    },
    {},
    { bounce: true, bounceAction: "failed" },
  ],
  [
    "MAILER-DAEMON From + bounce subject, no reverse path known, no failure in the text: ordinary mail",
    {
      subject: "Undelivered Mail Returned to Sender",
      from: { address: "MAILER-DAEMON@mx.example", name: "" },
    },
    {},
    { bounce: false, autoSubmitted: false, loopRisk: ["mailer-daemon"] },
  ],
  // Found by a probe (2026-11-23): a customer's postmaster asking for help was recorded as
  // a delivery report. A real reverse path needs a failure in the text.
  [
    "a customer writing from postmaster@ with a delivery subject is ordinary mail (no auto-reply)",
    {
      subject: "Mail delivery failed for your invoices - please help",
      from: { address: "postmaster@bigcustomer.example", name: "" },
      text: "Hi, our users do not receive your invoices since Monday. Please check.",
    },
    { mailFrom: "postmaster@bigcustomer.example" },
    { bounce: false, bounceAction: null, autoSubmitted: false, loopRisk: ["mailer-daemon"] },
  ],
  [
    "the same from bounce@ and mailer-daemon@, reverse path from the Return-Path field (IMAP)",
    {
      subject: "Returned mail: see transcript",
      from: { address: "bounce@bigcustomer.example", name: "" },
      headers: { "return-path": ["<bounce@bigcustomer.example>"] },
    },
    {},
    { bounce: false, loopRisk: ["mailer-daemon"] },
  ],
  [
    "a real reverse path, daemon From, bounce subject and a failed recipient: a bounce",
    {
      subject: "Mail delivery failed: returning message to sender",
      from: { address: "Mailer-Daemon@mx.customer.example", name: "" },
      text: eximBounce,
    },
    { mailFrom: "postmaster@mx.customer.example" },
    { bounce: true, bounceAction: "failed" },
  ],
  [
    "a delivery subject from a daemon with a real reverse path and no failure, over IMAP",
    {
      subject: "Mail delivery failed for your invoices - please help",
      from: { address: "mailer-daemon@bigcustomer.example", name: "" },
      headers: { "return-path": ["<mailer-daemon@bigcustomer.example>"] },
      text: "Hi, please call me at 555 0100 about bob@bigcustomer.example.",
    },
    {},
    { bounce: false },
  ],
  [
    "a customer quoting an SMTP error for an address, without a returned original",
    {
      subject: "Undeliverable: our mail to you",
      from: { address: "postmaster@bigcustomer.example", name: "" },
      text: "Mail to bob@acme.test gets 550 5.7.1 rejected since Monday, please help.",
    },
    { mailFrom: "postmaster@bigcustomer.example" },
    { bounce: false },
  ],
  [
    "a real reverse path, daemon From, bounce subject, the returned original but no failure",
    {
      subject: "Mail delivery failed: returning message to sender",
      from: { address: "Mailer-Daemon@mx.customer.example", name: "" },
      text: "Something went wrong.\n\n--- Original message follows ---\nMessage-ID: <out-6@mail.acme.test>\n",
    },
    { mailFrom: "postmaster@mx.customer.example" },
    { bounce: false },
  ],
  // Found by the same probe: an Exim delay warning opened a conversation.
  [
    "null sender + daemon From is a notice whatever the subject: an Exim delay warning",
    {
      subject: "Warning: message 1vAbCd-000123-4X delayed 24 hours",
      from: { address: "Mailer-Daemon@mx.customer.example", name: "Mail Delivery System" },
      headers: { "auto-submitted": ["auto-replied"] },
    },
    { mailFrom: "" },
    { bounce: true, bounceAction: "delayed", autoSubmitted: true },
  ],
  [
    "null sender + daemon From with any subject",
    { subject: "Your message", from: { address: "MAILER-DAEMON@mx.example", name: "" } },
    { mailFrom: "" },
    { bounce: true, bounceAction: "unknown" },
  ],
  [
    "null sender (Return-Path field) + a delay wording, another From name",
    {
      subject: "Delivery delayed: Re: order",
      from: { address: "notifications@mail.example", name: "" },
      headers: { "return-path": ["<>"] },
    },
    {},
    { bounce: true, bounceAction: "delayed" },
  ],
  [
    "null sender + a customer's out-of-office on 'Order delayed' is no notice",
    {
      subject: "Automatic reply: Re: Order delayed [#42]",
      headers: { "auto-submitted": ["auto-replied"] },
    },
    { mailFrom: "" },
    { bounce: false, autoSubmitted: true },
  ],
  [
    "null sender + an out-of-office whose subject quotes a delay wording is no notice (re-probe)",
    {
      subject: "Automatic reply: Re: My order has not yet been delivered [#100002]",
      from: { address: "bob@customer.example", name: "Bob" },
    },
    { mailFrom: "" },
    { bounce: false },
  ],
  [
    "null sender + 'Out of office: Re: Delivery delayed …' is no notice (re-probe)",
    {
      subject: "Out of office: Re: Delivery delayed for order 5512",
      from: { address: "bob@customer.example", name: "Bob" },
    },
    { mailFrom: "" },
    { bounce: false },
  ],
  [
    "null sender + 'Re: Undelivered Mail …' from a person is no notice",
    {
      subject: "Re: Undelivered Mail Returned to Sender",
      from: { address: "bob@customer.example", name: "Bob" },
    },
    { mailFrom: "" },
    { bounce: false },
  ],
  [
    "a bounce subject from a real person is not a bounce",
    { subject: "Re: Undelivered Mail Returned to Sender" },
    { mailFrom: "alice@customer.example" },
    { bounce: false, loopRisk: [] },
  ],
  [
    "null sender from the Return-Path header when the envelope is unknown",
    { headers: { "return-path": ["<>"] } },
    {},
    { bounce: false, loopRisk: ["null-sender"] },
  ],
  [
    "the last Return-Path wins",
    { headers: { "return-path": ["<>", "<alice@customer.example>"] } },
    {},
    { loopRisk: [] },
  ],
  // RFC 3834 Auto-Submitted
  [
    "Auto-Submitted: auto-replied",
    { headers: { "auto-submitted": ["auto-replied"] } },
    {},
    { autoSubmitted: true, loopRisk: ["auto-submitted"] },
  ],
  [
    "Auto-Submitted: auto-generated",
    { headers: { "auto-submitted": ["auto-generated (warning-timeout)"] } },
    {},
    { autoSubmitted: true },
  ],
  [
    "Auto-Submitted: no",
    { headers: { "auto-submitted": ["no"] } },
    {},
    { autoSubmitted: false, loopRisk: [] },
  ],
  [
    "Auto-Submitted: No (case-insensitive)",
    { headers: { "auto-submitted": ["No"] } },
    {},
    { autoSubmitted: false },
  ],
  ["X-Autoreply: yes", { headers: { "x-autoreply": ["yes"] } }, {}, { autoSubmitted: true }],
  ["X-Autorespond", { headers: { "x-autorespond": ["Vacation"] } }, {}, { autoSubmitted: true }],
  [
    "Precedence: auto_reply",
    { headers: { precedence: ["auto_reply"] } },
    {},
    { autoSubmitted: true, bulk: false },
  ],
  [
    "a read receipt (RFC 8098 report)",
    { headers: { "content-type": ['multipart/report; report-type="disposition-notification"; boundary=x'] } },
    {},
    { autoSubmitted: true, bounce: false },
  ],
  [
    "X-Auto-Response-Suppress: All",
    { headers: { "x-auto-response-suppress": ["All"] } },
    {},
    { autoSubmitted: false, loopRisk: ["auto-response-suppress"] },
  ],
  [
    "X-Auto-Response-Suppress: OOF",
    { headers: { "x-auto-response-suppress": ["DR, OOF"] } },
    {},
    { loopRisk: ["auto-response-suppress"] },
  ],
  [
    "X-Auto-Response-Suppress: RN only",
    { headers: { "x-auto-response-suppress": ["RN, NRN"] } },
    {},
    { loopRisk: [] },
  ],
  // bulk
  [
    "Precedence: bulk",
    { headers: { precedence: ["bulk"] } },
    {},
    { bulk: true, loopRisk: ["bulk-precedence"] },
  ],
  ["Precedence: list", { headers: { precedence: ["List"] } }, {}, { bulk: true }],
  ["Precedence: junk", { headers: { precedence: ["junk"] } }, {}, { bulk: true }],
  [
    "Precedence: first-class",
    { headers: { precedence: ["first-class"] } },
    {},
    { bulk: false, loopRisk: [] },
  ],
  [
    "List-Id (RFC 2919)",
    { headers: { "list-id": ["<users.lists.example>"] } },
    {},
    { bulk: true, loopRisk: ["mailing-list"] },
  ],
  [
    "List-Post",
    { headers: { "list-post": ["<mailto:users@lists.example>"] } },
    {},
    { bulk: true, loopRisk: ["mailing-list"] },
  ],
  [
    "List-Unsubscribe alone: a newsletter, bulk but not a list",
    { headers: { "list-unsubscribe": ["<https://x.example/u>"] } },
    {},
    { bulk: true, loopRisk: [] },
  ],
  // spam verdicts
  [
    "X-Spam-Flag: YES",
    { headers: { "x-spam-flag": ["YES"] } },
    {},
    { spam: true, spamReason: "X-Spam-Flag: YES" },
  ],
  ["X-Spam-Flag: NO", { headers: { "x-spam-flag": ["NO"] } }, {}, { spam: false, spamReason: null }],
  [
    "X-Spam-Status: Yes, score=…",
    { headers: { "x-spam-status": ["Yes, score=7.1 required=5.0 tests=BAYES_99"] } },
    {},
    { spam: true },
  ],
  [
    "X-Spam-Status: No, score=…",
    { headers: { "x-spam-status": ["No, score=-1.0 required=5.0"] } },
    {},
    { spam: false },
  ],
  ["X-Spam: Yes (rspamd)", { headers: { "x-spam": ["Yes"] } }, {}, { spam: true, spamReason: "X-Spam: Yes" }],
  ["X-SES-Spam-Verdict: FAIL", { headers: { "x-ses-spam-verdict": ["FAIL"] } }, {}, { spam: true }],
  ["X-SES-Spam-Verdict: PASS", { headers: { "x-ses-spam-verdict": ["PASS"] } }, {}, { spam: false }],
  ["X-SES-Spam-Verdict: GRAY", { headers: { "x-ses-spam-verdict": ["GRAY"] } }, {}, { spam: false }],
  [
    "X-Forefront-Antispam-Report SCL:5",
    { headers: { "x-forefront-antispam-report": ["CIP:1.2.3.4;CTRY:;LANG:en;SCL:5;SRV:;IPV:NLI;"] } },
    {},
    { spam: true, spamReason: "X-Forefront-Antispam-Report SCL:5" },
  ],
  [
    "X-Forefront-Antispam-Report SCL:1",
    { headers: { "x-forefront-antispam-report": ["CIP:1.2.3.4;SCL:1;SRV:;"] } },
    {},
    { spam: false },
  ],
  [
    "X-Forefront-Antispam-Report SCL:-1 (trusted)",
    { headers: { "x-forefront-antispam-report": ["SCL:-1;SRV:BULK"] } },
    {},
    { spam: false },
  ],
  [
    "X-MS-Exchange-Organization-SCL: 9",
    { headers: { "x-ms-exchange-organization-scl": ["9"] } },
    {},
    { spam: true },
  ],
  [
    "X-Spam-Score alone above the threshold",
    { headers: { "x-spam-score": ["6.3"] } },
    {},
    { spam: true, spamReason: "X-Spam-Score: 6.3" },
  ],
  ["X-Spam-Score alone below the threshold", { headers: { "x-spam-score": ["2.0"] } }, {}, { spam: false }],
  [
    "an explicit NO verdict outranks a high score",
    { headers: { "x-spam-flag": ["NO"], "x-spam-score": ["9.9"] } },
    {},
    { spam: false },
  ],
  // loops
  [
    "our own address as sender",
    { from: { address: "Support@ACME.example", name: "" } },
    { ownAddresses: ["support@acme.example"] },
    { loopRisk: ["own-address"] },
  ],
  [
    "X-Loop with our marker",
    { headers: { "x-loop": ["switchboard-acme"] } },
    { loopMarker: "switchboard-acme" },
    { loopRisk: ["x-loop"] },
  ],
  [
    "X-Loop from someone else",
    { headers: { "x-loop": ["other-system"] } },
    { loopMarker: "switchboard-acme" },
    { loopRisk: [] },
  ],
  ["too many hops", { receivedCount: 31 }, {}, { loopRisk: ["too-many-hops"] }],
  ["30 hops is still fine", { receivedCount: 30 }, {}, { loopRisk: [] }],
  ["no usable sender", { from: null }, {}, { loopRisk: ["no-sender"] }],
];

// A null reverse path, a From that is no mail daemon: a person's automatic reply under a
// prefix in any common language is no notice; a real bounce's subject still is (second
// re-probe of session 16: the non-English ones were swallowed as delivery notices).
describe("null sender, no daemon From: automatic replies against notices", () => {
  const classifyNull = (subject: string, headers: Record<string, string[]> = {}) =>
    classify(makeParsedMail({ subject, from: { address: "bob@customer.example", name: "Bob" }, headers }), {
      mailFrom: "",
    });
  it.each([
    "Abwesenheitsnotiz: AW: Paket nicht zugestellt",
    "Automatisch antwoord: RE: Delivery failed for order 12",
    "Respuesta automática: RE: could not be delivered",
    "Risposta automatica: R: non-delivery",
    "Autosvar: SV: Undelivered mail",
    "Automatiskt svar: Undelivered mail",
    "Resposta automática: Undelivered mail",
    "Automatyczna odpowiedź: Undelivered mail",
    "Re[2]: Undelivered Mail Returned to Sender",
    "R: Undelivered mail",
    "RV: Undelivered mail",
    "回复: Undelivered mail",
    "Out-of-office: Delivery delayed",
    "OOO: Delivery delayed",
    "Fuori sede: mail delivery failed",
    "Absent du bureau : non-delivery",
    "Auto: Delivery failed",
    "[Auto-Reply] Delivery failed",
    "Vacation reply: Undelivered mail",
    "Urlaub: AW: Sendung unzustellbar",
  ])("%j is no notice", (subject) => {
    expect(classifyNull(subject).bounce).toBe(false);
  });

  it("an Exchange non-delivery report from MicrosoftExchange<hex>@ is a notice, auto-replied or not (third re-probe)", () => {
    const ndr = (headers: Record<string, string[]>) =>
      classify(
        makeParsedMail({
          subject: "Undeliverable: Your order 123",
          from: { address: "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@acme-cust.example", name: "" },
          headers,
        }),
        { mailFrom: "" },
      ).bounce;
    expect(ndr({})).toBe(true);
    expect(ndr({ "auto-submitted": ["auto-replied"] })).toBe(true);
  });

  it("an auto-replied notice from another sender is one when its text reports the failure (third re-probe)", () => {
    const mail = makeParsedMail({
      subject: "Mail delivery failed: returning message to sender",
      from: { address: "no-reply@mailgw.example", name: "Mail Delivery System" },
      headers: { "auto-submitted": ["auto-replied (failure)"] },
      text: eximBounce,
    });
    expect(classify(mail, { mailFrom: "" }).bounce).toBe(true);
  });

  it("an auto-replied mail (RFC 3834) is no notice whatever its subject", () => {
    expect(
      classifyNull("Undelivered Mail Returned to Sender", { "auto-submitted": ["auto-replied"] }).bounce,
    ).toBe(false);
  });

  it.each([
    "Undelivered Mail Returned to Sender",
    "Mail delivery failed: returning message to sender",
    "Delivery Status Notification (Failure)",
    "Returned mail: see transcript for details",
    "failure notice",
    "Undeliverable: RE: order 12",
    "Unzustellbar: AW: Bestellung",
    "Warning: message 1vAbCd-000123-4X delayed 24 hours",
    "Delayed Mail (still being retried)",
  ])("%j is still a notice", (subject) => {
    expect(classifyNull(subject).bounce).toBe(true);
  });
});

describe("classify", () => {
  it.each(cases)("%s", (_name, mail, envelope, expected) => {
    expect(classify(makeParsedMail(mail), envelope)).toMatchObject(expected);
  });

  it("honours thresholds", () => {
    const mail = makeParsedMail({
      headers: { "x-spam-score": ["4.0"], "x-ms-exchange-organization-scl": ["4"] },
    });
    expect(classify(mail).spam).toBe(false);
    expect(classify(mail, {}, { spamScoreThreshold: 3.5 }).spamReason).toBe("X-Spam-Score: 4.0");
    expect(classify(mail, {}, { sclThreshold: 4 }).spamReason).toBe("X-MS-Exchange-Organization-SCL: 4");
    expect(classify(makeParsedMail({ receivedCount: 11 }), {}, { maxHops: 10 }).loopRisk).toEqual([
      "too-many-hops",
    ]);
  });

  it("lists loop risks in a stable order", () => {
    const c = classify(
      makeParsedMail({
        headers: { precedence: ["bulk"], "list-id": ["<l.example>"], "auto-submitted": ["auto-generated"] },
      }),
      { mailFrom: "" },
    );
    expect(c.loopRisk).toEqual(["null-sender", "auto-submitted", "bulk-precedence", "mailing-list"]);
  });
});
