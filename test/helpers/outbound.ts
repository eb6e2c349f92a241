import { and, eq } from "drizzle-orm";
import { type ParsedMail, simpleParser } from "mailparser";
import { event, mailAccount, message } from "../../src/db/schema/index.js";
import type { OutboundStatus } from "../../src/engine/domain.js";
import { encodeId } from "../../src/schema/ids.js";
import type { TestApp } from "./app.js";
import type { SmtpSink } from "./smtp-sinks.js";

/** An SMTP account pointing at a sink on 127.0.0.1 (written directly: the account API is tested elsewhere). */
export async function createSinkAccount(
  t: TestApp,
  sink: SmtpSink,
  extra: Partial<typeof mailAccount.$inferInsert> = {},
): Promise<string> {
  const [a] = await t.db.db
    .insert(mailAccount)
    .values({
      tenantId: t.tenantId,
      name: `sink ${sink.port}`,
      smtpHost: "127.0.0.1",
      smtpPort: sink.port,
      smtpTlsMode: "NONE",
      smtpUser: "relay",
      smtpPasswordEnc: t.app.engine.secrets.encrypt("relay-secret"),
      ...extra,
    })
    .returning({ id: mailAccount.id });
  return a!.id;
}

/** Polls the database until `check` returns a value (no fixed sleeps); fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | null | undefined | false>,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function waitForStatus(
  t: TestApp,
  messageId: string,
  statuses: OutboundStatus[],
  timeoutMs?: number,
): Promise<typeof message.$inferSelect> {
  return waitFor(
    async () => {
      const [m] = await t.db.db.select().from(message).where(eq(message.id, messageId));
      return m?.outboundStatus && statuses.includes(m.outboundStatus) ? m : null;
    },
    `message ${messageId} to be ${statuses.join("/")}`,
    timeoutMs,
  );
}

export async function eventsOf(t: TestApp, conversationId: string, type?: string) {
  return t.db.db
    .select()
    .from(event)
    .where(and(eq(event.conversationId, conversationId), type ? eq(event.type, type) : undefined))
    .orderBy(event.id);
}

export async function parseCaptured(raw: Buffer): Promise<ParsedMail> {
  return simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true });
}

/** The header section of raw MIME as lines, unfolded. */
export function headerLines(raw: Buffer): string[] {
  const text = raw.toString("utf8");
  const end = text.indexOf("\r\n\r\n");
  return text
    .slice(0, end)
    .replace(/\r\n[ \t]+/g, " ")
    .split("\r\n");
}

export const INGEST = `mutation($a: ID!, $raw: String!) {
  ingestRawMessage(addressId: $a, raw: $raw, base64: true) {
    __typename
    ... on IngestOutcome { status created conversation { id ticketNumber status } }
  }
}`;

export async function ingestAt(t: TestApp, addressId: string, raw: Buffer) {
  const r = await t.ok(INGEST, { a: encodeId("EmailAddress", addressId), raw: raw.toString("base64") });
  return r.ingestRawMessage as {
    status: string;
    created: boolean;
    conversation: { id: string; ticketNumber: number; status: string } | null;
  };
}

/** The captured mail carrying this Message-ID (stored without <>). */
export function capturedWith(sink: SmtpSink, messageIdHeader: string | null) {
  const wanted = `message-id: <${messageIdHeader}>`.toLowerCase();
  const found = sink.messages.find((m) => headerLines(m.raw).some((l) => l.toLowerCase() === wanted));
  if (!found) throw new Error(`no captured mail with Message-ID <${messageIdHeader}>`);
  return found;
}
