import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clip, jsonbText } from "../../src/engine/text.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { createSinkAccount, ingestAt } from "../helpers/outbound.js";
import { buildRawMail } from "../helpers/raw-mail.js";
import { type SmtpSink, startCapturingSink } from "../helpers/smtp-sinks.js";

// Half of a UTF-16 surrogate pair — a cut through an emoji, a broken UTF-16 encoded word —
// goes into a text column as U+FFFD but makes jsonb refuse the whole statement. These are
// ordinary mails and ordinary agent input, never a reason to quarantine or fail.
let t: TestApp;
let sink: SmtpSink;

beforeAll(async () => {
  t = await startTestApp();
  sink = await startCapturingSink();
});
afterAll(async () => {
  await t?.stop();
  await sink?.close();
});

const EMOJI_AT_200 = `${"a".repeat(199)}😀 and more`;
/** An RFC 2047 encoded word in UTF-16BE holding a lone high surrogate between two letters. */
const UTF16_LONE = `=?UTF-16BE?B?${Buffer.from([0x00, 0x41, 0xd8, 0x3d, 0x00, 0x42]).toString("base64")}?=`;

describe("strings that are not well-formed UTF-16", () => {
  it("clip never ends in half a pair, and jsonbText writes no lone surrogate", () => {
    expect(clip(EMOJI_AT_200, 200)).toBe("a".repeat(199));
    expect(clip(EMOJI_AT_200, 201)).toBe(`${"a".repeat(199)}😀`);
    expect(clip("short", 200)).toBe("short");
    expect(jsonbText({ s: "x\ud83dy", n: [1, "\udc00"] })).toBe('{"s":"x\uFFFDy","n":[1,"\uFFFD"]}');
  });

  it("ingest stores mail with an emoji across the subject's cut and lone surrogates in encoded words", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId);
    for (const spec of [
      { subject: EMOJI_AT_200 },
      { subject: UTF16_LONE },
      { from: `${UTF16_LONE} <lone@customer.example>` },
      { to: `${UTF16_LONE} <${addr.address}>` },
    ]) {
      const r = await ingestAt(t, addr.addressId, buildRawMail(spec));
      expect(r.status, JSON.stringify(spec)).toBe("stored");
    }
    const [m] = await t.db.db.execute<{ subject: string; warnings: string[] }>(
      sql`SELECT m.subject, m.parse_warnings AS warnings FROM message m JOIN conversation c ON c.id = m.conversation_id
           WHERE c.tenant_id = ${t.tenantId} AND m.subject LIKE 'A%B' ORDER BY m.created_at DESC LIMIT 1`,
    );
    expect(m!.subject).toBe("A\uFFFDB");
    expect(m!.warnings).toContain("invalid UTF-16 (unpaired surrogates) replaced by U+FFFD");
    // The received event's subject is cut before the emoji, not through it.
    const [ev] = await t.db.db.execute<{ subject: string }>(
      sql`SELECT payload->>'subject' AS subject FROM event WHERE tenant_id = ${t.tenantId}
           AND type = 'message.received' AND payload->>'subject' LIKE 'aaaa%' ORDER BY id DESC LIMIT 1`,
    );
    expect(ev!.subject).toBe("a".repeat(199));
  });

  it("an agent's new mail with an emoji across the event's subject cut and a lone surrogate in a name is sent", async () => {
    const accountId = await createSinkAccount(t, sink);
    const from = await createQueueWithAddress(t.db.db, t.tenantId, { addressFields: { accountId } });
    const r = await t.ok(
      `mutation($i: StartConversationInput!) { startConversation(input: $i) {
         __typename ... on Message { subject to { name address } } ... on Error { code message } } }`,
      {
        i: {
          fromAddressId: encodeId("EmailAddress", from.addressId),
          to: [{ address: "jane@customer.example", name: "Jane \ud83d Doe" }],
          subject: EMOJI_AT_200,
          text: "Hello",
        },
      },
    );
    expect(r.startConversation).toMatchObject({
      __typename: "Message",
      subject: expect.stringMatching(/^a{199}😀 and more \[#\d+\]$/), // the ticket appended
      to: [{ name: "Jane \uFFFD Doe", address: "jane@customer.example" }],
    });
  });
});
