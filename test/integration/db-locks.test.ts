import { eq } from "drizzle-orm";
import nodemailer from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { message } from "../../src/db/schema/index.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";

// A lock held by a stuck session (an admin's psql, a long migration) made every message
// that needed it wait for ever: one customer's reply and its sender's retries took all ten
// connections of the pool, and unrelated mail, the API and /readyz stopped with it (probe,
// session 16). Statements now give up after DB_LOCK_TIMEOUT_MS: that message gets a 451
// and is retried; nothing else waits.

let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({ env: { SMTP_ENABLED: "true", SMTP_PORT: "0", DB_LOCK_TIMEOUT_MS: "1000" } });
  await createQueueWithAddress(t.db.db, t.tenantId, { address: "help@acme.test" });
});
afterAll(async () => {
  await t?.stop();
});

const raw = (id: string, extra = "") =>
  `From: Carol <carol@customer.example>\r\nTo: help@acme.test\r\nSubject: Re: Locked\r\nMessage-ID: <${id}>\r\n${extra}\r\nhello\r\n`;

async function send(source: string): Promise<number> {
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port: t.app.smtp!.port,
    secure: false,
    ignoreTLS: true,
  });
  try {
    const info = await transport.sendMail({
      envelope: { from: "carol@customer.example", to: ["help@acme.test"] },
      raw: source,
    });
    return Number(info.response.slice(0, 3));
  } catch (e) {
    return (e as { responseCode?: number }).responseCode ?? 0;
  } finally {
    transport.close();
  }
}

/** Runs `fn` while another session holds the conversation's row (FOR UPDATE), as a stuck transaction would. */
async function holdingRow(conversationId: string, fn: () => Promise<void>): Promise<void> {
  const holder = await t.db.sql.reserve();
  await holder`BEGIN`;
  await holder`SELECT 1 FROM conversation WHERE id = ${conversationId} FOR UPDATE`;
  try {
    await fn();
  } finally {
    await holder`ROLLBACK`;
    holder.release();
  }
}

describe("a lock held by a stuck session", () => {
  it("costs the message that needs it a 451 after the lock timeout, not the pool; the retry is stored once", async () => {
    expect(await send(raw("locked-root@customer.example"))).toBe(250);
    const [root] = await t.db.db
      .select()
      .from(message)
      .where(eq(message.messageIdHeader, "locked-root@customer.example"));
    // Another session holds the conversation's row, as a stuck transaction would.
    await holdingRow(root!.conversationId, async () => {
      const reply = raw("locked-reply@customer.example", "In-Reply-To: <locked-root@customer.example>\r\n");
      const started = Date.now();
      const [replyCode, otherCode] = await Promise.all([
        send(reply),
        // Unrelated mail meanwhile is not held up. (Another sender: mail of the same one
        // waits on the contact row the stuck reply's transaction holds, up to the timeout.)
        send(
          raw("unrelated@customer.example")
            .replace("Re: Locked", "Something else")
            .replace("carol@customer.example", "dave@customer.example"),
        ),
      ]);
      expect(replyCode).toBe(451);
      expect(otherCode).toBe(250);
      expect(Date.now() - started).toBeLessThan(10_000);
      // The API answers too.
      expect((await t.gql("{ viewer { role } }")).errors).toBeUndefined();
    });
    expect(
      await send(raw("locked-reply@customer.example", "In-Reply-To: <locked-root@customer.example>\r\n")),
    ).toBe(250);
    const replies = await t.db.db
      .select()
      .from(message)
      .where(eq(message.messageIdHeader, "locked-reply@customer.example"));
    expect(replies).toHaveLength(1);
    expect(replies[0]!.conversationId).toBe(root!.conversationId);
  });

  it("an API request that gives up on a lock gets a typed, retryable error (RETRY), not an internal one", async () => {
    expect(await send(raw("locked-api@customer.example").replace("Re: Locked", "API lock"))).toBe(250);
    const [m] = await t.db.db
      .select()
      .from(message)
      .where(eq(message.messageIdHeader, "locked-api@customer.example"));
    await holdingRow(m!.conversationId, async () => {
      const r = await t.gql(
        `mutation($id: ID!) { setConversationStatus(conversationId: $id, status: RESOLVED) { __typename } }`,
        { id: encodeId("Conversation", m!.conversationId) },
      );
      expect(r.errors?.map((e) => e.extensions?.code)).toEqual(["RETRY"]);
    });
  });
});
