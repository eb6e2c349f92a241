import { eq } from "drizzle-orm";
import { afterAll, beforeAll } from "vitest";
import type { Db } from "../../src/db/client.js";
import { emailAddress, mailAccount, mailboxCheckpoint, message } from "../../src/db/schema/index.js";
import type { SecretBox } from "../../src/engine/crypto.js";
import type { ImapAfterProcess } from "../../src/engine/domain.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { type DovecotInstance, startDovecot } from "../helpers/dovecot.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";

/**
 * For a describe block of IMAP tests: Dovecot and a test app (with `opts`) started before
 * its tests and stopped after them, both also when the other failed to start; `use` gets
 * them once started.
 */
export function withDovecotApp(
  use: (started: { t: TestApp; dovecot: DovecotInstance }) => void,
  opts?: Parameters<typeof startTestApp>[0],
): void {
  const started: { t?: TestApp; dovecot?: DovecotInstance } = {};
  beforeAll(async () => {
    const dovecot = await startDovecot();
    started.dovecot = dovecot;
    const t = await startTestApp(opts);
    started.t = t;
    use({ t, dovecot });
  });
  afterAll(async () => {
    await started.t?.stop();
    await started.dovecot?.stop();
  });
}

/** A mail account pointing at the test Dovecot, with one address in a fresh queue (test setup). */
export async function createDovecotAccount(
  db: Db,
  secrets: SecretBox,
  tenantId: string,
  dovecot: DovecotInstance,
  opts: {
    address: string;
    queueId: string;
    afterProcess?: ImapAfterProcess;
    moveTo?: string;
    password?: string;
    enabled?: boolean;
    mailbox?: string;
  },
): Promise<{ accountId: string; addressId: string }> {
  const [acc] = await db
    .insert(mailAccount)
    .values({
      tenantId,
      name: `Dovecot ${opts.address}`,
      imapHost: dovecot.host,
      imapPort: dovecot.port,
      imapTls: false,
      imapUser: dovecot.user,
      imapPasswordEnc: secrets.encrypt(opts.password ?? dovecot.password),
      imapAfterProcess: opts.afterProcess ?? "SEEN",
      imapMoveTo: opts.moveTo ?? null,
      enabled: opts.enabled ?? true,
      imapMailbox: opts.mailbox ?? "INBOX",
    })
    .returning({ id: mailAccount.id });
  const [a] = await db
    .insert(emailAddress)
    .values({ tenantId, address: opts.address, name: "Support", queueId: opts.queueId, accountId: acc!.id })
    .returning({ id: emailAddress.id });
  return { accountId: acc!.id, addressId: a!.id };
}

let mailboxes = 0;

/**
 * A fresh Dovecot folder with its own account, address (`<prefix><n>@acme.test`) and queue:
 * what each IMAP test starts from. `dovecot` may point at a relay in front of the server.
 */
export async function newDovecotMailbox(
  t: { db: { db: Db }; app: { engine: { secrets: SecretBox } }; tenantId: string },
  dovecot: DovecotInstance,
  prefix: string,
  opts: Omit<Parameters<typeof createDovecotAccount>[4], "address" | "queueId" | "mailbox"> = {},
): Promise<{ accountId: string; addressId: string; mailbox: string; address: string; queueId: string }> {
  const n = ++mailboxes;
  const mailbox = `${prefix[0]!.toUpperCase()}${prefix.slice(1)}${n}`;
  const { queueId } = await createQueueWithAddress(t.db.db, t.tenantId, {
    address: `${prefix}q${n}@unused.test`,
  });
  const address = `${prefix}${n}@acme.test`;
  const acc = await createDovecotAccount(t.db.db, t.app.engine.secrets, t.tenantId, dovecot, {
    address,
    queueId,
    mailbox,
    ...opts,
  });
  return { ...acc, mailbox, address, queueId };
}

/** The messages an account ingested, in UID order. */
export async function messagesOf(db: Db, accountId: string) {
  return db.select().from(message).where(eq(message.accountId, accountId)).orderBy(message.uid);
}

/** A customer mail; `replyTo` makes it a reply (In-Reply-To/References) to that Message-ID. */
export function customerMail(to: string, id: string, subject: string, replyTo?: string): Buffer {
  return buildRawMail({
    to,
    subject: replyTo ? `Re: ${subject}` : subject,
    messageId: id,
    text: `Message ${id}`,
    headers: replyTo ? { "In-Reply-To": `<${replyTo}>`, References: `<${replyTo}>` } : {},
  });
}

/**
 * APPENDs many messages in order over one connection (the helper's appendMessage
 * reconnects each time), creating the mailbox when missing.
 */
export async function appendMany(dovecot: DovecotInstance, raws: Buffer[], mailbox = "INBOX"): Promise<void> {
  const c = dovecot.client();
  await c.connect();
  try {
    // Created when missing (an existing one makes this fail, which is fine).
    if (mailbox !== "INBOX") await c.mailboxCreate(mailbox).catch(() => {});
    for (const raw of raws) await c.append(mailbox, raw);
  } finally {
    await c.logout().catch(() => c.close());
  }
}

/** UIDs and flags of a mailbox as the server sees them. */
export async function serverState(
  dovecot: DovecotInstance,
  mailbox = "INBOX",
): Promise<{ uid: number; seen: boolean }[]> {
  const c = dovecot.client();
  await c.connect();
  try {
    const box = await c.mailboxOpen(mailbox, { readOnly: true });
    if (box.exists === 0) return [];
    const msgs = await c.fetchAll("1:*", { uid: true, flags: true });
    return msgs.map((m) => ({ uid: m.uid, seen: m.flags?.has("\\Seen") ?? false }));
  } finally {
    await c.logout().catch(() => c.close());
  }
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The account's committed IMAP checkpoint, or null. */
export async function checkpointOf(db: Db, accountId: string) {
  const [cp] = await db.select().from(mailboxCheckpoint).where(eq(mailboxCheckpoint.accountId, accountId));
  return cp ?? null;
}
