import type { ParsedMail } from "../../src/engine/ingest/parsed-mail.js";

/** A clean ParsedMail for pure-function tests; override what the case is about. */
export function makeParsedMail(overrides: Partial<ParsedMail> = {}): ParsedMail {
  return {
    messageId: "m1@customer.example",
    inReplyTo: null,
    references: [],
    from: { address: "alice@customer.example", name: "Alice" },
    to: [{ address: "support@acme.example", name: "" }],
    cc: [],
    replyTo: [],
    subject: "Help with my order",
    date: new Date("2024-05-01T10:00:00Z"),
    text: "Hello",
    html: null,
    attachments: [],
    headers: {},
    receivedCount: 2,
    isDeliveryReport: false,
    deliveryStatus: null,
    warnings: [],
    sizeBytes: 100,
    rawSha256: "0".repeat(64),
    contentHash: "0".repeat(64),
    ...overrides,
  };
}
