import { writeFile } from "node:fs/promises";
import { createServer, type Server, Socket } from "node:net";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createImapConnector, defaultImapSettings, type ImapSettings } from "../../src/connectors/imap.js";
import { checkImap } from "../../src/connectors/imap-check.js";
import { mailAccount, mailboxCheckpoint } from "../../src/db/schema/index.js";
import { testMailAccount } from "../../src/engine/config/mail-accounts.js";
import type { TestApp } from "../helpers/app.js";
import { type DovecotInstance, requireDovecot } from "../helpers/dovecot.js";
import {
  customerMail,
  messagesOf as messagesOfAccount,
  newDovecotMailbox,
  serverState,
  withDovecotApp,
} from "./imap-fixtures.js";

// The worker's long-running connection: IDLE broken and re-entered every
// idleRestartSeconds (RFC 2177 §3: a server may log off a client idle for 30 minutes), and
// a connection the server drops is re-established without anyone polling. In both tests
// the poll interval is an hour, so only the worker's own IDLE can bring new mail in.

const enabled = requireDovecot();

/** Generous caps for a loaded two-core machine: a pass normally takes well under a second. */
const WAIT_MS = 20_000;
/** Room for one wait to time out and say what it waited for before Vitest's 30 s default cuts the test short. */
const TEST_TIMEOUT_MS = 90_000;

let t: TestApp;
let dovecot: DovecotInstance;

/** One TCP connection through the tap: what the client sent, and who hung up first. */
interface TappedConnection {
  /** Client commands in order: the verb of each tagged command line, and `DONE`. */
  commands: string[];
  closedBy: "server" | "client" | null;
  /** performance.now() when the client connected, and when either side hung up. */
  openedAt: number;
  closedAt: number | null;
}

/**
 * A transparent TCP relay between the worker and Dovecot that records each connection's
 * command verbs (never their arguments, so no password). It shows on the wire what the
 * worker keeps to itself: an IDLE restart is `DONE` followed straight by `IDLE` on the same
 * connection; a reconnect is a new connection.
 */
async function startTap(target: { host: string; port: number }) {
  const connections: TappedConnection[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const conn: TappedConnection = {
      commands: [],
      closedBy: null,
      openedAt: performance.now(),
      closedAt: null,
    };
    connections.push(conn);
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    let pending = "";
    client.on("data", (chunk: Buffer) => {
      pending += chunk.toString("latin1");
      const lines = pending.split("\r\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "DONE") conn.commands.push("DONE");
        else {
          const verb = /^[A-Za-z0-9.]+ ([A-Za-z]+)/.exec(line)?.[1];
          if (verb) conn.commands.push(verb.toUpperCase());
        }
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    const hangUp = (by: "server" | "client") => () => {
      conn.closedBy ??= by;
      conn.closedAt ??= performance.now();
      client.destroy();
      upstream.destroy();
    };
    upstream.on("end", hangUp("server"));
    upstream.on("error", hangUp("server"));
    client.on("end", hangUp("client"));
    client.on("error", hangUp("client"));
    for (const s of [client, upstream]) s.on("close", () => sockets.delete(s));
    upstream.connect(target.port, target.host);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    connections,
    /** IDLEs re-entered right after their own DONE, nothing in between: imapflow's maxIdleTime restart. */
    restarts(conn: TappedConnection): number {
      let n = 0;
      for (let i = 2; i < conn.commands.length; i++) {
        const [a, b, c] = conn.commands.slice(i - 2, i + 1);
        if (a === "IDLE" && b === "DONE" && c === "IDLE") n++;
      }
      return n;
    },
    transcript: () => JSON.stringify(connections),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

type Tap = Awaited<ReturnType<typeof startTap>>;

/** An account whose IMAP host is the tap in front of the test Dovecot. */
/** A fresh mailbox whose account connects through `tap`. */
const setup = (tap: Tap) => newDovecotMailbox(t, { ...dovecot, port: tap.port }, "rc");
const messagesOf = (accountId: string) => messagesOfAccount(t.db.db, accountId);

async function until<T>(tap: Tap, what: string, fn: () => Promise<T | null | undefined | false> | T) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) {
      const log = (await dovecot.log()).split("\n").slice(-15).join("\n");
      throw new Error(`timed out waiting for ${what}\ntap: ${tap.transcript()}\ndovecot:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until the account holds exactly the messages with these Message-IDs, each once. */
async function untilStored(tap: Tap, accountId: string, ids: string[]) {
  await until(
    tap,
    `${ids.at(-1)} to be stored`,
    async () => (await messagesOf(accountId)).length >= ids.length,
  );
  const stored = await messagesOf(accountId);
  expect(stored.map((m) => m.messageIdHeader)).toEqual(ids);
  return stored;
}

function connector(overrides: Partial<ImapSettings>) {
  return createImapConnector(t.app.engine, {
    ...defaultImapSettings(t.db.url),
    // An hour: neither the reconciliation poll nor the supervisor's reload can fetch mail.
    pollSeconds: 3600,
    ...overrides,
  });
}

describe.skipIf(!enabled)("IMAP worker: IDLE restart and reconnect (real Dovecot)", () => {
  withDovecotApp((started) => ({ t, dovecot } = started));

  /** Every connector here runs a worker for every enabled account: retire each test's own. */
  async function retire(accountId: string) {
    await t.db.db.update(mailAccount).set({ enabled: false }).where(eq(mailAccount.id, accountId));
  }

  it(
    "IDLE is broken and re-entered every idleRestartSeconds on the same connection, and mail after the restarts still arrives by IDLE",
    async () => {
      const tap = await startTap(dovecot);
      const s = await setup(tap);
      const imap = connector({ idleRestartSeconds: 1 });
      try {
        await dovecot.appendMessage(customerMail(s.address, "rs-0@customer.example", "Before"), s.mailbox);
        imap.start();
        await untilStored(tap, s.accountId, ["rs-0@customer.example"]);

        // Nothing to fetch, so nothing but the restart timer breaks the IDLE.
        await until(
          tap,
          "two IDLE restarts",
          () => tap.connections[0] && tap.restarts(tap.connections[0]) >= 2,
        );
        const r1 = await dovecot.appendMessage(
          customerMail(s.address, "rs-1@customer.example", "After"),
          s.mailbox,
        );
        await untilStored(tap, s.accountId, ["rs-0@customer.example", "rs-1@customer.example"]);

        // Again after further restarts: each restart leaves a working IDLE behind, not just the first.
        const seen = tap.restarts(tap.connections[0]!);
        await until(tap, "two more IDLE restarts", () => tap.restarts(tap.connections[0]!) >= seen + 2);
        const r2 = await dovecot.appendMessage(
          customerMail(s.address, "rs-2@customer.example", "Later"),
          s.mailbox,
        );
        const stored = await untilStored(tap, s.accountId, [
          "rs-0@customer.example",
          "rs-1@customer.example",
          "rs-2@customer.example",
        ]);
        expect(stored.slice(1).map((m) => m.uid)).toEqual([r1.uid, r2.uid]);

        // A restart is DONE + IDLE within the session, not a reconnect.
        expect(tap.connections).toHaveLength(1);
        expect(tap.connections[0]!.closedBy).toBeNull();
        expect(tap.restarts(tap.connections[0]!)).toBeGreaterThanOrEqual(4);
      } finally {
        await imap.stop();
        await retire(s.accountId);
        await tap.close();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "a connection the server drops is re-established by the worker itself; mail after the drop is ingested once",
    async () => {
      const tap = await startTap(dovecot);
      const s = await setup(tap);
      const imap = connector({});
      try {
        await dovecot.appendMessage(customerMail(s.address, "rc-0@customer.example", "Before"), s.mailbox);
        imap.start();
        await untilStored(tap, s.accountId, ["rc-0@customer.example"]);
        await until(tap, "the worker to idle", () => tap.connections[0]?.commands.at(-1) === "IDLE");

        await dovecot.kick();
        await until(tap, "Dovecot to drop the connection", () => tap.connections[0]!.closedBy !== null);
        expect(tap.connections[0]!.closedBy).toBe("server");

        // Appended right after the drop: whichever comes first — the new session's first sync
        // or its IDLE — must bring it in, since the poll never runs.
        const r1 = await dovecot.appendMessage(
          customerMail(s.address, "rc-1@customer.example", "During"),
          s.mailbox,
        );
        await untilStored(tap, s.accountId, ["rc-0@customer.example", "rc-1@customer.example"]);

        // And once reconnected and idling again, IDLE on the new connection delivers.
        await until(tap, "the new connection to idle", () => tap.connections[1]?.commands.at(-1) === "IDLE");
        const r2 = await dovecot.appendMessage(
          customerMail(s.address, "rc-2@customer.example", "After"),
          s.mailbox,
        );
        const stored = await untilStored(tap, s.accountId, [
          "rc-0@customer.example",
          "rc-1@customer.example",
          "rc-2@customer.example",
        ]);
        expect(stored.slice(1).map((m) => m.uid)).toEqual([r1.uid, r2.uid]);

        // One reconnect for one drop, and the mailbox state is as if nothing had happened.
        expect(tap.connections).toHaveLength(2);
        expect(tap.connections[1]!.closedBy).toBeNull();
        const [cp] = await t.db.db
          .select()
          .from(mailboxCheckpoint)
          .where(eq(mailboxCheckpoint.accountId, s.accountId));
        expect(cp).toMatchObject({ lastUid: r2.uid });
        await until(tap, "\\Seen on all three", async () =>
          (await serverState(dovecot, s.mailbox)).every((m) => m.seen),
        );
        const [acc] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, s.accountId));
        expect(acc).toMatchObject({ status: "VALID", lastError: null });
        expect(await messagesOf(s.accountId)).toHaveLength(3);
      } finally {
        await imap.stop();
        await retire(s.accountId);
        await tap.close();
      }
    },
    TEST_TIMEOUT_MS,
  );
  it(
    "a server that keeps dropping the connection right after login gets ever longer waits, not a reconnect every second",
    async () => {
      const tap = await startTap(dovecot);
      const s = await setup(tap);
      const imap = connector({});
      try {
        // (The folder exists once it holds mail.)
        await dovecot.appendMessage(customerMail(s.address, "bo-0@customer.example", "Hello"), s.mailbox);
        imap.start();
        await untilStored(tap, s.accountId, ["bo-0@customer.example"]);
        // Four drops, each as soon as the session idles: the waits before the next
        // connection must grow (1 s, 2 s, 4 s …) — a timer never fires early, so lower
        // bounds hold on any machine.
        for (let k = 0; k < 4; k++) {
          await until(tap, `connection ${k} to idle`, () => tap.connections[k]?.commands.at(-1) === "IDLE");
          await dovecot.kick();
          await until(tap, `connection ${k} to be dropped`, () => tap.connections[k]!.closedAt !== null);
        }
        await until(tap, "the fifth connection", () => tap.connections[4]);
        const waits = tap.connections.slice(1, 5).map((c, i) => c.openedAt - tap.connections[i]!.closedAt!);
        expect(waits[0]).toBeGreaterThanOrEqual(900);
        expect(waits[1]).toBeGreaterThanOrEqual(1900);
        expect(waits[2]).toBeGreaterThanOrEqual(3900);
        expect(waits[3]).toBeGreaterThanOrEqual(7900);
      } finally {
        await imap.stop();
        await retire(s.accountId);
        await tap.close();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "an account parked after a rejected login makes no login until a connection test finds it VALID, then its worker resumes and IDLE delivers (probe, 2026-11-23)",
    async () => {
      const tap = await startTap(dovecot);
      const s = await setup(tap);
      // testMailAccount checks the SMTP side too: one that answers OK.
      await t.db.db.update(mailAccount).set({ smtpHost: "127.0.0.1" }).where(eq(mailAccount.id, s.accountId));
      const imap = connector({ pauseRecheckSeconds: 1 });
      const users = join(dovecot.root, "users");
      // Dovecot's passwd-file is read again when its mtime (seconds) changes.
      const setServerPassword = async (password: string) => {
        await new Promise((r) => setTimeout(r, 1100));
        await writeFile(users, `${dovecot.user}:{PLAIN}${password}::::::\n`);
      };
      const account = async () =>
        (await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, s.accountId)))[0]!;
      try {
        await dovecot.appendMessage(customerMail(s.address, "pk-0@customer.example", "Before"), s.mailbox);
        imap.start();
        await untilStored(tap, s.accountId, ["pk-0@customer.example"]);
        await until(tap, "the worker to idle", () => tap.connections[0]?.commands.at(-1) === "IDLE");

        // The password is changed on the server and the session dropped: the login is refused.
        await setServerPassword("changed-on-the-server");
        await dovecot.kick();
        await until(tap, "the account to be parked", async () => {
          const a = await account();
          return a.status === "INVALID" && a.lastError?.startsWith("auth:");
        });
        // Put back on the server. Parked means no login with it until a verdict says it
        // works: several rechecks pass without a connection.
        await setServerPassword(dovecot.password);
        const logins = tap.connections.length;
        await new Promise((r) => setTimeout(r, 3000));
        expect(tap.connections).toHaveLength(logins);
        expect(imap.workers().get(s.accountId)?.holdsLock).toBeFalsy();

        // The admin tests the connection (no edit: the worker's settings are unchanged).
        const [admin] = await t.db.sql<{ id: string }[]>`
          SELECT id FROM "user" WHERE tenant_id = ${t.tenantId} AND role = 'ADMIN' LIMIT 1`;
        const tested = await testMailAccount(
          t.app.engine,
          { tenantId: t.tenantId, userId: admin!.id, role: "ADMIN" } as Parameters<typeof testMailAccount>[1],
          s.accountId,
          {
            checker: { checkImap, checkSmtp: async () => ({ ok: true }) } as unknown as NonNullable<
              Parameters<typeof testMailAccount>[3]
            >["checker"],
          },
        );
        expect(tested.account.status).toBe("VALID");
        // The same worker logs in again by itself (the supervisor's reload is an hour away)…
        await until(tap, "the worker to idle again", () => {
          const last = tap.connections.at(-1);
          return (
            imap.workers().get(s.accountId)?.holdsLock &&
            last?.closedBy === null &&
            last.commands.at(-1) === "IDLE"
          );
        });
        // …and IDLE brings new mail in at once.
        const started = Date.now();
        await dovecot.appendMessage(customerMail(s.address, "pk-1@customer.example", "After"), s.mailbox);
        await untilStored(tap, s.accountId, ["pk-0@customer.example", "pk-1@customer.example"]);
        expect(Date.now() - started).toBeLessThan(5000);
        expect((await account()).status).toBe("VALID");
      } finally {
        await writeFile(users, `${dovecot.user}:{PLAIN}${dovecot.password}::::::\n`);
        await imap.stop();
        await retire(s.accountId);
        await tap.close();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
