import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { count, countDistinct, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mailboxLockKey } from "../../src/connectors/imap.js";
import { conversation, mailboxCheckpoint, message } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { createSecretBox } from "../../src/engine/crypto.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { type DovecotInstance, requireDovecot, startDovecot } from "../helpers/dovecot.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { appendMany, createDovecotAccount, customerMail, serverState, waitFor } from "./imap-fixtures.js";

const enabled = requireDovecot();
const SECRET = "22".repeat(32);
const child = fileURLToPath(new URL("./imap-server-child.ts", import.meta.url));

let db: TestDatabase;
let dovecot: DovecotInstance;
let tenantId: string;
const children = new Set<ChildProcess>();

/** A real server process on the test database with IMAP on; resolves once it has started. */
async function startServer(): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ["--import", "tsx", child], {
    env: {
      ...process.env,
      NODE_ENV: "test",
      DATABASE_URL: db.url,
      PORT: "0",
      HOST: "127.0.0.1",
      SMTP_ENABLED: "false",
      IMAP_ENABLED: "true",
      IMAP_POLL_SECONDS: "2",
      IMAP_LOCK_RETRY_SECONDS: "1",
      BOOTSTRAP: "false",
      SECRET_KEY: SECRET,
      LOG_LEVEL: "silent",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  let err = "";
  proc.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.on("data", (d: Buffer) => {
      if (d.toString().includes("ready")) resolve();
    });
    proc.once("exit", (code) => reject(new Error(`server exited (${code}) before ready: ${err}`)));
  });
  return proc;
}

async function kill9(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGKILL");
  await exited;
}

/** Waits until `n` messages of the account are stored; on timeout says how far it got. */
async function waitStored(accountId: string, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const have = await stored(accountId);
    if (have >= n) return;
    if (Date.now() > deadline) throw new Error(`timed out with ${have} of ${n} messages stored`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stored(accountId: string): Promise<number> {
  const [r] = await db.db.select({ n: count() }).from(message).where(eq(message.accountId, accountId));
  return r?.n ?? 0;
}

describe.skipIf(!enabled)("IMAP across server processes (real Dovecot, real child processes)", () => {
  beforeAll(async () => {
    dovecot = await startDovecot();
    db = await createTestDatabase({ max: 4 });
    ({ tenantId } = await createTenantWithAdmin(db.db, {
      tenantName: "Acme",
      adminEmail: "admin@acme.test",
    }));
  });
  afterAll(async () => {
    await Promise.all([...children].map(kill9));
    await db?.drop();
    await dovecot?.stop();
  });

  it("kill -9 while ingesting 500 messages, restart: exactly 500 messages, 250 threads, no duplicates", async () => {
    const { queueId } = await createQueueWithAddress(db.db, tenantId, { address: "crash-q@unused.test" });
    const to = "crash@acme.test";
    const mailbox = "Crash";
    const { accountId } = await createDovecotAccount(
      db.db,
      createSecretBox(Buffer.from(SECRET, "hex")),
      tenantId,
      dovecot,
      {
        address: to,
        queueId,
        mailbox,
      },
    );
    // 250 threads: an opening mail and, later in the mailbox, the customer's follow-up.
    const raws = [
      ...Array.from({ length: 250 }, (_, i) => customerMail(to, `crash-${i}@customer.example`, `Case ${i}`)),
      ...Array.from({ length: 250 }, (_, i) =>
        customerMail(to, `crash-${i}-re@customer.example`, `Case ${i}`, `crash-${i}@customer.example`),
      ),
    ];
    await dovecot.appendMessage(raws[0]!, mailbox);
    await appendMany(dovecot, raws.slice(1), mailbox);

    try {
      const first = await startServer();
      await waitFor("ingest to start", async () => (await stored(accountId)) >= 60, 60_000, 20);
      await kill9(first);
      const atCrash = await stored(accountId);
      expect(atCrash).toBeLessThan(500);

      const second = await startServer();
      // Generous: on a loaded 2-core machine a restart plus 440 ingests can take a minute.
      await waitStored(accountId, 500, 150_000);
      // Let a poll interval pass: nothing more may arrive.
      await new Promise((r) => setTimeout(r, 2500));
      await kill9(second);

      const [totals] = await db.db
        .select({
          n: count(),
          uids: countDistinct(message.uid),
          ids: countDistinct(message.messageIdHeader),
          convs: countDistinct(message.conversationId),
        })
        .from(message)
        .where(eq(message.accountId, accountId));
      expect(totals).toEqual({ n: 500, uids: 500, ids: 500, convs: 250 });
      const perConv = await db.db
        .select({ subject: conversation.subject, n: count(message.id) })
        .from(conversation)
        .innerJoin(message, eq(message.conversationId, conversation.id))
        .where(eq(conversation.queueId, queueId))
        .groupBy(conversation.id, conversation.subject);
      expect(perConv).toHaveLength(250);
      expect(perConv.every((c) => c.n === 2)).toBe(true);
      expect(new Set(perConv.map((c) => c.subject)).size).toBe(250);
      const [cp] = await db.db
        .select()
        .from(mailboxCheckpoint)
        .where(eq(mailboxCheckpoint.accountId, accountId));
      const [{ max } = { max: 0 }] = await db.db
        .select({ max: sql<number>`max(${message.uid})::int` })
        .from(message)
        .where(eq(message.accountId, accountId));
      expect(cp?.lastUid).toBe(max);
      // The batch whose \Seen was lost with the crash was re-flagged by the restarted worker.
      const state = await serverState(dovecot, mailbox);
      expect(state).toHaveLength(500);
      expect(state.filter((m) => !m.seen)).toEqual([]);
    } finally {
      await Promise.all([...children].map(kill9));
    }
  }, 240_000);

  it("two server processes on one mailbox: one holds the lock, each message is stored once, the other takes over", async () => {
    const { queueId } = await createQueueWithAddress(db.db, tenantId, { address: "two-q@unused.test" });
    const to = "two@acme.test";
    const mailbox = "Two";
    const { accountId } = await createDovecotAccount(
      db.db,
      createSecretBox(Buffer.from(SECRET, "hex")),
      tenantId,
      dovecot,
      {
        address: to,
        queueId,
        mailbox,
      },
    );
    // The folder exists before the servers start (a missing one is a permanent error, retried slowly).
    await dovecot.appendMessage(customerMail(to, "two-0@customer.example", "Two 0"), mailbox);
    const [a, b] = await Promise.all([startServer(), startServer()]);
    await appendMany(
      dovecot,
      Array.from({ length: 99 }, (_, i) => customerMail(to, `two-${i + 1}@customer.example`, `Two ${i + 1}`)),
      mailbox,
    );
    await waitStored(accountId, 100, 90_000);
    // Exactly one session holds this mailbox's lock (the crash test's servers are gone).
    // A bigint advisory key shows in pg_locks as classid (high 32 bits) and objid (low 32).
    const key = BigInt.asUintN(64, BigInt(mailboxLockKey(accountId)));
    const holders = await db.sql<{ app: string }[]>`
      SELECT a.application_name AS app FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
        AND l.classid::bigint = ${(key >> 32n).toString()}::bigint
        AND l.objid::bigint = ${(key & 0xffffffffn).toString()}::bigint`;
    expect(holders).toHaveLength(1);
    const owner = [a, b].find((p) => holders[0]!.app === `switchboard-imap-lock:${p.pid}`);
    expect(owner).toBeDefined();
    const survivor = owner === a ? b : a;

    // The owner dies without a goodbye; the survivor's next lock attempt takes the mailbox.
    await kill9(owner!);
    await appendMany(
      dovecot,
      Array.from({ length: 30 }, (_, i) =>
        customerMail(to, `two-${i + 100}@customer.example`, `Two ${i + 100}`),
      ),
      mailbox,
    );
    await waitStored(accountId, 130, 90_000);
    await new Promise((r) => setTimeout(r, 2500));
    await kill9(survivor);
    const [totals] = await db.db
      .select({ n: count(), uids: countDistinct(message.uid), ids: countDistinct(message.messageIdHeader) })
      .from(message)
      .where(eq(message.accountId, accountId));
    expect(totals).toEqual({ n: 130, uids: 130, ids: 130 });
  }, 240_000);
});
