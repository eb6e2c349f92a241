import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MailboxLock } from "../../src/connectors/imap.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";

// The advisory locks that keep one instance per mailbox (a probe, session 15): each lock
// had a connection of its own (accounts × instances connections), and a lock whose
// database session had ended still answered "alive", since postgres.js reconnects by
// itself into a session without the lock.

let db: TestDatabase;
let admin: postgres.Sql;
const account = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
const lockSessions = async () =>
  (
    await admin<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = ${`switchboard-imap-lock:${process.pid}`}`
  )[0]!.n;

beforeAll(async () => {
  db = await createTestDatabase({ max: 2 });
  admin = postgres(db.url, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await admin?.end();
  await db?.drop();
});

describe("mailbox locks", () => {
  it("share one database session per process, and hold none while nothing is held", async () => {
    const locks = Array.from({ length: 20 }, (_, i) => new MailboxLock(db.url, account(i)));
    for (const l of locks) expect(await l.tryAcquire()).toBe(true);
    expect(await lockSessions()).toBe(1);
    // Another instance (its own session) is refused every one of them.
    const [row] = await admin<{ ok: boolean }[]>`
      SELECT bool_or(pg_try_advisory_lock(k::bigint)) AS ok FROM unnest(${locks.map((_, i) => mailboxLockKeyOf(i))}::text[]) k`;
    expect(row!.ok).toBe(false);
    for (const l of locks) await l.release();
    expect(MailboxLock.connections()).toBe(0);
    await waitUntil(async () => (await lockSessions()) === 0);
  });

  it("a key the process holds is not granted to it a second time (advisory locks are re-entrant per session)", async () => {
    const worker = new MailboxLock(db.url, account(100));
    const poll = new MailboxLock(db.url, account(100));
    expect(await worker.tryAcquire()).toBe(true);
    expect(await poll.tryAcquire()).toBe(false);
    await worker.release();
    expect(await poll.tryAcquire()).toBe(true);
    await poll.release();
  });

  it("two tries for one key at the same moment: one wins, and its release frees the lock", async () => {
    const keepOpen = new MailboxLock(db.url, account(300));
    expect(await keepOpen.tryAcquire()).toBe(true);
    const a = new MailboxLock(db.url, account(301));
    const b = new MailboxLock(db.url, account(301));
    const won = await Promise.all([a.tryAcquire(), b.tryAcquire()]);
    expect(won.filter(Boolean)).toHaveLength(1);
    await (won[0] ? a : b).release();
    // Not held twice by the session (re-entrant): another instance can take it now.
    const [row] = await admin<
      { ok: boolean }[]
    >`SELECT pg_try_advisory_lock(${mailboxLockKeyOf(301)}::bigint) AS ok`;
    expect(row!.ok).toBe(true);
    await admin`SELECT pg_advisory_unlock(${mailboxLockKeyOf(301)}::bigint)`;
    await keepOpen.release();
  });

  it("a lock whose database session ended is not alive, and another instance may take it", async () => {
    const lock = new MailboxLock(db.url, account(200));
    expect(await lock.tryAcquire()).toBe(true);
    expect(await lock.alive()).toBe(true);
    await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = ${`switchboard-imap-lock:${process.pid}`}`;
    await new Promise((r) => setTimeout(r, 200));
    // postgres.js reconnects for the next query: a new session, without the lock.
    expect(await lock.alive()).toBe(false);
    expect(lock.isHeld).toBe(false);
    const [row] = await admin<
      { ok: boolean }[]
    >`SELECT pg_try_advisory_lock(${mailboxLockKeyOf(200)}::bigint) AS ok`;
    expect(row!.ok).toBe(true);
    await admin`SELECT pg_advisory_unlock(${mailboxLockKeyOf(200)}::bigint)`;
    // The worker takes it again in the new session.
    expect(await lock.tryAcquire()).toBe(true);
    expect(await lock.alive()).toBe(true);
    await lock.release();
  });
});

import { mailboxLockKey } from "../../src/connectors/imap.js";

function mailboxLockKeyOf(i: number): string {
  return mailboxLockKey(account(i));
}

async function waitUntil(ok: () => Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}
