import { chmod, readdir } from "node:fs/promises";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { ImapFlow } from "imapflow";
import postgres from "postgres";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createImapConnector, defaultImapSettings, mailboxLockKey } from "../../src/connectors/imap.js";
import { mailAccount, rejectedMessage } from "../../src/db/schema/index.js";
import type { TestApp } from "../helpers/app.js";
import { type DovecotInstance, requireDovecot } from "../helpers/dovecot.js";
import {
  appendMany,
  checkpointOf,
  customerMail,
  messagesOf,
  newDovecotMailbox,
  serverState,
  waitFor,
  withDovecotApp,
} from "./imap-fixtures.js";

// One message the IMAP server cannot deliver (a probe, session 15): the batch's FETCH
// failed as a whole, each session began again at the same checkpoint, and neither the mail
// before it nor any after it ever arrived. Now the failed batch is fetched one UID at a
// time, and a UID that fails three times in a row is recorded as rejected (fetch_failed)
// and passed (connectors/fetch-trouble.ts).

const enabled = requireDovecot();
let t: TestApp;
let dovecot: DovecotInstance;

async function settle(accountId: string, subjects: string[]) {
  const imap = createImapConnector(t.app.engine, { ...defaultImapSettings(t.db.url), pollSeconds: 3600 });
  imap.start();
  try {
    await waitFor(
      "the mail around the bad message",
      async () => {
        const got = (await messagesOf(t.db.db, accountId)).map((m) => m.subject);
        return subjects.every((s) => got.includes(s));
      },
      60_000,
      200,
    );
  } finally {
    await imap.stop();
  }
}

/** A mailbox holding one customer's mail per subject (its Message-ID made of both). */
async function mailboxOf(name: string, subjects: string[], afterProcess: "SEEN" | "LEAVE" = "LEAVE") {
  const s = await newDovecotMailbox(t, dovecot, name, { afterProcess });
  await appendMany(
    dovecot,
    subjects.map((subject) =>
      customerMail(s.address, `${name}-${subject}-${s.accountId}@c.example`, subject),
    ),
    s.mailbox,
  );
  return s;
}

/** `prefix`0 … `prefix`(n − 1). */
const numbered = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** Runs a connector that re-checks every `recheckSeconds` until the account has `n` messages. */
async function drainUntil(accountId: string, n: number, recheckSeconds: number) {
  const imap = createImapConnector(t.app.engine, {
    ...defaultImapSettings(t.db.url),
    pollSeconds: 3600,
    pauseRecheckSeconds: recheckSeconds,
  });
  imap.start();
  try {
    await waitFor(
      `${n} messages`,
      async () => (await messagesOf(t.db.db, accountId)).length === n,
      60_000,
      100,
    );
  } finally {
    await imap.stop();
  }
}

/**
 * Source FETCHes answer only the UIDs `keep` lets through; `perFetch` is called once per
 * FETCH with the UIDs it asked for and returns that FETCH's `keep` (or throws: the FETCH
 * fails).
 */
function filterSourceFetches(perFetch: (asked: number[]) => (uid: number) => boolean) {
  const original = ImapFlow.prototype.fetchAll;
  vi.spyOn(ImapFlow.prototype, "fetchAll").mockImplementation(async function (
    this: ImapFlow,
    range,
    query,
    options,
  ) {
    const rows = await original.call(this, range, query, options);
    if (!(query as { source?: unknown }).source) return rows;
    const keep = perFetch(Array.isArray(range) ? range.map(Number) : String(range).split(",").map(Number));
    return rows.filter((r) => keep(r.uid));
  });
}

/** Source FETCHes leave these UIDs out, each `times` times (Infinity: always). */
function leaveOut(ghosts: Set<number>, times: number) {
  const left = new Map<number, number>();
  filterSourceFetches(() => (uid) => {
    if (!ghosts.has(uid)) return true;
    const n = left.get(uid) ?? times;
    if (n <= 0) return true;
    left.set(uid, n - 1);
    return false;
  });
}

const rejectedOf = (accountId: string) =>
  t.db.db.select().from(rejectedMessage).where(eq(rejectedMessage.accountId, accountId));

describe.skipIf(!enabled)("IMAP: a message the server cannot deliver", () => {
  withDovecotApp((s) => ({ t, dovecot } = s));
  afterEach(() => vi.restoreAllMocks());

  it("an unreadable message file (Dovecot drops the session on its FETCH): the mail before and after it lands, it is recorded and passed", async () => {
    const s = await mailboxOf("poison", ["P1", "P2", "P3"], "SEEN");
    const uids = (await serverState(dovecot, s.mailbox)).map((m) => m.uid);
    // Dovecot names maildir files by delivery time: the second is the second message.
    const dir = join(dovecot.root, "mail", dovecot.user, `.${s.mailbox}`);
    const files: string[] = [];
    for (const sub of ["cur", "new"]) {
      for (const f of await readdir(join(dir, sub)).catch(() => [] as string[]))
        files.push(join(dir, sub, f));
    }
    files.sort((a, b) => a.split("/").at(-1)!.localeCompare(b.split("/").at(-1)!));
    expect(files).toHaveLength(3);
    await chmod(files[1]!, 0o000);
    await settle(s.accountId, ["P1", "P3"]);
    expect((await messagesOf(t.db.db, s.accountId)).map((m) => m.subject)).toEqual(["P1", "P3"]);
    const rejected = await rejectedOf(s.accountId);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ reason: "fetch_failed", uid: uids[1], rawMessageId: null });
    expect(rejected[0]!.detail).toMatch(/failed to deliver it 3 times in a row/);
    expect((await checkpointOf(t.db.db, s.accountId))?.lastUid).toBe(uids[2]);
    // The server action is not tried on what the server cannot deliver, also not by the
    // repair that starts a later session (a one-shot poll here).
    expect((await serverState(dovecot, s.mailbox)).map((m) => m.seen)).toEqual([true, false, true]);
    const poll = createImapConnector(t.app.engine, { ...defaultImapSettings(t.db.url), pollSeconds: 3600 });
    try {
      await poll.pollAccount(s.accountId);
    } finally {
      await poll.stop();
    }
    expect((await serverState(dovecot, s.mailbox)).map((m) => m.seen)).toEqual([true, false, true]);
  }, 90_000);

  it("a server that answers NO for one message's FETCH (Exchange: 'could not be converted to RFC-822')", async () => {
    const s = await mailboxOf("poisonno", ["N1", "N2", "N3", "N4"]);
    const bad = (await serverState(dovecot, s.mailbox))[1]!.uid;
    // The whole FETCH of a batch holding it fails (after the server did the work).
    filterSourceFetches((asked) => {
      if (asked.includes(bad)) {
        const err = new Error("Command failed") as Error & Record<string, unknown>;
        err.responseStatus = "NO";
        err.responseText = "The requested message could not be converted to an RFC-822 compatible format.";
        throw err;
      }
      return () => true;
    });
    await settle(s.accountId, ["N1", "N3", "N4"]);
    const rejected = await rejectedOf(s.accountId);
    expect(rejected.map((r) => [r.reason, r.uid])).toEqual([["fetch_failed", bad]]);
    expect(rejected[0]!.detail).toContain("could not be converted to an RFC-822 compatible format");
  }, 90_000);

  it("a UID that SEARCH lists and FETCH never returns: no search loop; after three syncs it is recorded and passed", async () => {
    const s = await mailboxOf("ghost", ["G1", "G2", "G3"]);
    const ghost = (await serverState(dovecot, s.mailbox)).at(-1)!.uid;
    const originalSearch = ImapFlow.prototype.search;
    let searches = 0;
    vi.spyOn(ImapFlow.prototype, "search").mockImplementation(async function (
      this: ImapFlow,
      query,
      options,
    ) {
      searches++;
      return originalSearch.call(this, query, options);
    });
    // A server quirk (simulated): the message is listed, but its source never comes back.
    leaveOut(new Set([ghost]), Infinity);
    // Misses counted however close together: the three polls below follow each other at once.
    const imap = createImapConnector(t.app.engine, {
      ...defaultImapSettings(t.db.url),
      pollSeconds: 3600,
      missGapSeconds: 0,
    });
    imap.start();
    try {
      await waitFor("G1 and G2", async () => (await messagesOf(t.db.db, s.accountId)).length === 2, 20_000);
      await new Promise((r) => setTimeout(r, 1000));
      // Before: dozens of searches a second, for good.
      expect(searches).toBeLessThan(6);
      for (let i = 0; i < 3; i++) await imap.pollAccount(s.accountId);
    } finally {
      await imap.stop();
    }
    const rejected = await rejectedOf(s.accountId);
    expect(rejected.map((r) => [r.reason, r.uid])).toEqual([["fetch_failed", ghost]]);
    expect(rejected[0]!.detail).toContain("UID FETCH returned nothing for it");
    expect((await checkpointOf(t.db.db, s.accountId))?.lastUid).toBe(ghost);
  }, 60_000);

  // A server that leaves one message out of a FETCH answer and still has it (note 15): the
  // mail after it was ingested, the checkpoint moved past it, and it was never fetched again.
  it.each([
    ["once (a passing hiccup): it is fetched on the next try, nothing recorded", 1],
    ["every time: the mail after it waits three tries, then it is recorded and passed", Infinity],
  ])(
    "a UID in the middle of a batch that FETCH leaves out %s",
    async (_label, times) => {
      const s = await mailboxOf(`middle${times}`, ["M1", "M2", "M3", "M4"]);
      const ghost = (await serverState(dovecot, s.mailbox))[1]!.uid;
      leaveOut(new Set([ghost]), times);
      await drainUntil(s.accountId, times === 1 ? 4 : 3, 1);
      const subjects = (await messagesOf(t.db.db, s.accountId)).map((m) => m.subject);
      const rejected = (await rejectedOf(s.accountId)).map((r) => [r.reason, r.uid]);
      if (times === 1) {
        expect(subjects).toEqual(["M1", "M2", "M3", "M4"]);
        expect(rejected).toEqual([]);
      } else {
        expect(subjects).toEqual(["M1", "M3", "M4"]);
        expect(rejected).toEqual([["fetch_failed", ghost]]);
      }
      expect((await checkpointOf(t.db.db, s.accountId))?.lastUid).toBe(
        (await serverState(dovecot, s.mailbox)).at(-1)!.uid,
      );
    },
    60_000,
  );

  // Re-probe of the fix above: imapflow answers `false` when the UID SEARCH fails, which
  // read as "not listed" passed the message and lost it again; and only the first of
  // several such UIDs counted a miss, so the mail behind four of them waited three tries for
  // each in turn.
  it("the UID SEARCH that tells expunged from left out fails: the message counts as left out, not lost", async () => {
    const s = await mailboxOf("searchfail", ["S1", "S2", "S3", "S4"]);
    const ghost = (await serverState(dovecot, s.mailbox))[1]!.uid;
    leaveOut(new Set([ghost]), 1);
    const originalSearch = ImapFlow.prototype.search;
    vi.spyOn(ImapFlow.prototype, "search").mockImplementation(async function (this: ImapFlow, q, o) {
      // The search of explicit UIDs fails (NO, BAD, a dropped connection); `n:*` works.
      if (!String((q as { uid?: string }).uid ?? "").includes(":")) return false;
      return originalSearch.call(this, q, o);
    });
    await drainUntil(s.accountId, 4, 1);
    expect(await rejectedOf(s.accountId)).toEqual([]);
  }, 60_000);

  it("several UIDs a FETCH always leaves out cost three tries together, then each is recorded and passed", async () => {
    const s = await mailboxOf("manymissing", numbered("N", 10));
    const uids = (await serverState(dovecot, s.mailbox)).map((m) => m.uid);
    const ghosts = [uids[1]!, uids[3]!, uids[5]!, uids[7]!];
    leaveOut(new Set(ghosts), Infinity);
    const started = Date.now();
    await drainUntil(s.accountId, 6, 2);
    // Three waits of 2 s in all (before: three per left-out UID, one after another, ~24 s).
    expect(Date.now() - started).toBeLessThan(12_000);
    const rejected = (await rejectedOf(s.accountId)).map((r) => [r.reason, r.uid]);
    expect(rejected.sort((a, b) => Number(a[1]) - Number(b[1]))).toEqual(
      ghosts.map((u) => ["fetch_failed", u]),
    );
  }, 90_000);

  // Second re-probe: in a busy mailbox every new mail's IDLE wake-up started a sync at once,
  // so three misses came within two seconds and a message the server left out for four was
  // recorded as fetch_failed; and a UID the server did return behind the blocked one kept
  // its count, so one left out at its 1st, 3rd and 4th FETCH was passed unfetched.
  it("a message left out for a few seconds of a busy mailbox (new mail all the while) is not passed", async () => {
    const s = await mailboxOf("busy", ["B1", "B2", "B3"]);
    const ghost = (await serverState(dovecot, s.mailbox))[1]!.uid;
    const hiccupUntil = Date.now() + 4000;
    filterSourceFetches(() => (uid) => uid !== ghost || Date.now() > hiccupUntil);
    const imap = createImapConnector(t.app.engine, { ...defaultImapSettings(t.db.url), pollSeconds: 3600 });
    imap.start();
    try {
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 500));
        await appendMany(
          dovecot,
          [customerMail(s.address, `bn-${i}-${s.accountId}@c.example`, `N${i}`)],
          s.mailbox,
        );
      }
      await waitFor(
        "B2 ingested or recorded",
        async () =>
          (await messagesOf(t.db.db, s.accountId)).some((m) => m.subject === "B2") ||
          (await rejectedOf(s.accountId)).length > 0,
        40_000,
        100,
      );
    } finally {
      await imap.stop();
    }
    expect(await rejectedOf(s.accountId)).toEqual([]);
  }, 60_000);

  it("a UID returned between two misses starts its count again: three misses in a row, not in all", async () => {
    const s = await mailboxOf("missreset", ["R1", "R2", "R3", "R4"]);
    const uids = (await serverState(dovecot, s.mailbox)).map((m) => m.uid);
    const always = uids[1]!;
    const flaky = uids[3]!; // left out at its 1st, 3rd and 4th FETCH
    let flakyAttempts = 0;
    filterSourceFetches((asked) => {
      const dropFlaky = asked.includes(flaky) && [1, 3, 4].includes(++flakyAttempts);
      return (uid) => uid !== always && !(dropFlaky && uid === flaky);
    });
    await drainUntil(s.accountId, 3, 1);
    expect((await messagesOf(t.db.db, s.accountId)).map((m) => m.subject)).toEqual(["R1", "R3", "R4"]);
    expect((await rejectedOf(s.accountId)).map((r) => [r.reason, r.uid])).toEqual([["fetch_failed", always]]);
  }, 60_000);

  it("stopping a worker whose server accepted the connection and never greets takes no time", async () => {
    const sockets = new Set<Socket>();
    const mute = createServer((c) => {
      sockets.add(c);
      c.on("error", () => {});
    });
    await new Promise<void>((r) => mute.listen(0, "127.0.0.1", r));
    const port = (mute.address() as AddressInfo).port;
    await newDovecotMailbox(t, { ...dovecot, port }, "mute");
    const imap = createImapConnector(t.app.engine, { ...defaultImapSettings(t.db.url), pollSeconds: 3600 });
    imap.start();
    try {
      await waitFor("a connection to the mute server", async () => sockets.size > 0, 10_000);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      const started = Date.now();
      await imap.stop();
      // Before: the greeting timeout, 15 s (and every other account's reload waited too).
      expect(Date.now() - started).toBeLessThan(3000);
      for (const c of sockets) c.destroy();
      mute.close();
    }
  }, 30_000);

  it("an account disabled while its mailbox drains stops within a batch, and its last batch has its server action", async () => {
    const s = await mailboxOf("drain", numbered("D", 120), "SEEN");
    const imap = createImapConnector(t.app.engine, {
      ...defaultImapSettings(t.db.url),
      pollSeconds: 3600,
      batchSize: 5,
    });
    imap.start();
    let atOff = 0;
    try {
      await waitFor(
        "the drain to start",
        async () => (await messagesOf(t.db.db, s.accountId)).length >= 10,
        30_000,
      );
      await t.db.db.update(mailAccount).set({ enabled: false }).where(eq(mailAccount.id, s.accountId));
      atOff = (await messagesOf(t.db.db, s.accountId)).length;
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      await imap.stop();
    }
    const stored = (await messagesOf(t.db.db, s.accountId)).length;
    // At most the batch under way and the one fetched ahead; before, all 120.
    expect(stored).toBeLessThanOrEqual(atOff + 10);
    expect(stored).toBeLessThan(120);
    const seen = (await serverState(dovecot, s.mailbox)).filter((m) => m.seen).length;
    expect(seen).toBe(stored);
  }, 60_000);

  it("a worker whose lock session ends while it drains stops within a batch or two, and takes the lock again", async () => {
    const s = await mailboxOf("lockdrain", numbered("L", 150));
    const admin = postgres(t.db.url, { max: 1, onnotice: () => {} });
    const imap = createImapConnector(t.app.engine, {
      ...defaultImapSettings(t.db.url),
      pollSeconds: 3600,
      batchSize: 2,
      lockRetrySeconds: 1,
    });
    imap.start();
    let atKill = 0;
    let whileHeldElsewhere = 0;
    try {
      await waitFor(
        "the drain to start",
        async () => (await messagesOf(t.db.db, s.accountId)).length >= 10,
        30_000,
      );
      await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE application_name = ${`switchboard-imap-lock:${process.pid}`}`;
      // Another instance takes the mailbox at once.
      await admin`SELECT pg_advisory_lock(${mailboxLockKey(s.accountId)}::bigint)`;
      atKill = (await messagesOf(t.db.db, s.accountId)).length;
      await new Promise((r) => setTimeout(r, 1500));
      whileHeldElsewhere = (await messagesOf(t.db.db, s.accountId)).length;
      await admin`SELECT pg_advisory_unlock(${mailboxLockKey(s.accountId)}::bigint)`;
      // The worker takes it again and drains the rest, once each.
      await waitFor("the rest", async () => (await messagesOf(t.db.db, s.accountId)).length === 150, 30_000);
    } finally {
      await imap.stop();
      await admin.end();
    }
    // Before: it went on fetching while the other instance held the lock (all 150 in 3 s).
    expect(whileHeldElsewhere).toBeLessThanOrEqual(atKill + 6);
    const ids = (await messagesOf(t.db.db, s.accountId)).map((m) => m.messageIdHeader);
    expect(new Set(ids).size).toBe(150);
  }, 90_000);
});
