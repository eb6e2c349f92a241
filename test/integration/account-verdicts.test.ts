import type { AddressInfo } from "node:net";
import { eq } from "drizzle-orm";
import { SMTPServer } from "smtp-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mailAccount } from "../../src/db/schema/index.js";
import { testMailAccount } from "../../src/engine/config/mail-accounts.js";
import { listImapAccounts } from "../../src/engine/ingest/mailbox.js";
import { decodeId, encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { ingestRaw } from "../helpers/ingest.js";
import { waitForStatus } from "../helpers/outbound.js";
import { buildRawMail } from "../helpers/raw-mail.js";

// The outbox's own verdict on an SMTP login it was refused (delivery.ts writeFailure) set no
// updatedAt, so drizzle's $onUpdate stamped a new one: a new version of the account, as if an
// admin had edited it (second re-probe, session 17). A connection test in flight was then not
// recorded, and an account parked for a refused IMAP login was listed again: the supervisor
// logged in once more with the refused password.
let t: TestApp;
let smtp: SMTPServer;
let port = 0;

beforeAll(async () => {
  t = await startTestApp();
  smtp = new SMTPServer({
    logger: false,
    disableReverseLookup: true,
    disabledCommands: ["STARTTLS"],
    allowInsecureAuth: true,
    onAuth(_auth, _session, cb) {
      cb(Object.assign(new Error("5.7.8 Authentication credentials invalid"), { responseCode: 535 }));
    },
  });
  smtp.on("error", () => {});
  await new Promise<void>((r) => smtp.listen(0, "127.0.0.1", () => r()));
  port = (smtp.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await t?.stop();
  await new Promise<void>((r) => smtp.close(() => r()));
});

async function accountWithConversation(name: string) {
  const [acc] = await t.db.db
    .insert(mailAccount)
    .values({
      tenantId: t.tenantId,
      name,
      imapHost: "127.0.0.1",
      imapPort: 1,
      imapTls: false,
      imapUser: "u",
      imapPasswordEnc: t.app.engine.secrets.encrypt("p"),
      smtpHost: "127.0.0.1",
      smtpPort: port,
      smtpTlsMode: "NONE",
      smtpUser: "relay",
      smtpPasswordEnc: t.app.engine.secrets.encrypt("wrong"),
    })
    .returning();
  const q = await createQueueWithAddress(t.db.db, t.tenantId, { addressFields: { accountId: acc!.id } });
  const r = await ingestRaw(
    t.app.engine,
    { tenantId: t.tenantId, addressId: q.addressId },
    buildRawMail({ subject: "Help", messageId: `${name}@customer.example` }),
    { source: { kind: "api", userId: t.adminId } },
  );
  if (r.status !== "stored") throw new Error("not stored");
  return { account: acc!, conversationId: r.conversationId };
}

/** An agent's reply, which the outbox's SMTP peer refuses to log in for. */
async function replyRefused(conversationId: string) {
  const sent = await t.ok(
    `mutation($c: ID!, $i: OutboundMessageInput!) { replyToConversation(conversationId: $c, input: $i) {
      __typename ... on Message { id } } }`,
    { c: encodeId("Conversation", conversationId), i: { text: "Answer" } },
  );
  await waitForStatus(t, decodeId(sent.replyToConversation.id, "Message"), ["FAILED"], 20_000);
}

describe("the outbox's refused SMTP login is a verdict, not an edit", () => {
  it("a connection test in flight while a send is refused still records its verdict; the version stays", async () => {
    const { account, conversationId } = await accountWithConversation("version");
    const res = await testMailAccount(t.app.engine, t.adminViewer(), account.id, {
      checker: {
        checkImap: async () => {
          await replyRefused(conversationId);
          return { ok: true, error: null, kind: null };
        },
        checkSmtp: async () => ({ ok: true, error: null, kind: null }),
      },
    });
    const [row] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, account.id));
    expect(row!.updatedAt.toISOString()).toBe(account.updatedAt.toISOString());
    expect(res.account.status).toBe("VALID");
  }, 60_000);

  it("an account parked for a refused IMAP login stays parked when the outbox's SMTP login is refused too", async () => {
    const { account, conversationId } = await accountWithConversation("parked");
    const listed = async () => (await listImapAccounts(t.app.engine)).some((a) => a.id === account.id);
    await testMailAccount(t.app.engine, t.adminViewer(), account.id, {
      checker: {
        checkImap: async () => ({ ok: false, error: "Authentication failed", kind: "AUTH" as const }),
        checkSmtp: async () => ({ ok: false, error: "535 Authentication failed", kind: "AUTH" as const }),
      },
    });
    expect(await listed()).toBe(false);
    await replyRefused(conversationId);
    expect(await listed()).toBe(false);
    const [row] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, account.id));
    expect(row!.lastError).toMatch(/^IMAP: auth: Authentication failed; SMTP: /);
  }, 60_000);

  it("on an account whose IMAP side works, it reads SMTP: and leaves IMAP fetching alone", async () => {
    const { account, conversationId } = await accountWithConversation("smtponly");
    await replyRefused(conversationId);
    const [row] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, account.id));
    expect(row!.status).toBe("INVALID");
    expect(row!.lastError).toMatch(/^SMTP: /);
    expect((await listImapAccounts(t.app.engine)).some((a) => a.id === account.id)).toBe(true);
  }, 60_000);
});
