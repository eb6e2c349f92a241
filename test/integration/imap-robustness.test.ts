import { execFileSync } from "node:child_process";
import { createServer, type Server, Socket } from "node:net";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { ImapFlow } from "imapflow";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  createImapConnector,
  defaultImapSettings,
  imapClient,
  syncMailbox,
} from "../../src/connectors/imap.js";
import { conversation, mailAccount, rejectedMessage, tenant } from "../../src/db/schema/index.js";
import { sameMailboxName, testMailAccount } from "../../src/engine/config/mail-accounts.js";
import { silentLogger } from "../../src/engine/context.js";
import { getImapAccount, recordAccountStatus } from "../../src/engine/ingest/mailbox.js";
import { purgeExpired } from "../../src/engine/retention.js";
import { encodeId } from "../../src/schema/ids.js";
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

// Faults an IMAP probe found against the real Dovecot (session 13): what another client
// does to the mailbox while we fetch, settings that point a worker at itself, edits racing
// a running worker, a connection that goes silent, server actions the server refuses.

const enabled = requireDovecot();

let t: TestApp;
let dovecot: DovecotInstance;

async function accountRow(id: string) {
  const [row] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, id));
  return row!;
}

/** Runs `fn` on a second client with `mailbox` selected: a human's mail program. */
async function asOtherClient<T>(mailbox: string, fn: (c: ImapFlow) => Promise<T>): Promise<T> {
  const c = new ImapFlow({
    host: dovecot.host,
    port: dovecot.port,
    secure: false,
    auth: { user: dovecot.user, pass: dovecot.password },
    logger: false,
  });
  await c.connect();
  try {
    await c.mailboxOpen(mailbox);
    return await fn(c);
  } finally {
    await c.logout().catch(() => c.close());
  }
}

/** A TCP relay in front of Dovecot that can go silent (packets swallowed, no FIN/RST). */
async function startRelay(port: number) {
  let frozen = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const up = new Socket();
    sockets.add(client).add(up);
    client.on("data", (d) => !frozen && up.write(d));
    up.on("data", (d) => !frozen && client.write(d));
    const end = () => {
      client.destroy();
      up.destroy();
    };
    client.on("error", end).on("close", end);
    up.on("error", end).on("close", end);
    up.connect(port, "127.0.0.1");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    freeze: () => {
      frozen = true;
    },
    async close() {
      for (const x of sockets) x.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe("sameMailboxName", () => {
  it.each([
    ["INBOX", "inbox", true],
    [" Inbox ", "INBOX", true],
    ["inbox.Done", "INBOX.Done", true],
    ["inbox/Done", "INBOX/Done", true],
    ["Done", "done", false],
    ["INBOXES", "inboxes", false],
    ["Archive", "Archive", true],
  ])("%j vs %j → %s", (a, b, same) => {
    expect(sameMailboxName(a, b)).toBe(same);
  });
});

describe.skipIf(!enabled)("IMAP connector robustness (real Dovecot)", () => {
  withDovecotApp((started) => ({ t, dovecot } = started));
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("another client's flag changes during a FETCH (unsolicited FETCH responses) are no answers: all mail stored, the account stays VALID", async () => {
    const s = await newDovecotMailbox(t, dovecot, "flg", { afterProcess: "LEAVE" });
    await appendMany(
      dovecot,
      [1, 2, 3, 4].map((i) => customerMail(s.address, `flg-${i}-${s.accountId}@c.example`, `Flg ${i}`)),
      s.mailbox,
    );
    const uids = (await serverState(dovecot, s.mailbox)).map((m) => m.uid);
    // Just before our first FETCH, a human flags two of the mails in their mail program:
    // Dovecot tells our session with FETCH responses that carry no UID.
    const original = ImapFlow.prototype.fetchAll;
    let flagged = false;
    vi.spyOn(ImapFlow.prototype, "fetchAll").mockImplementation(async function (
      this: ImapFlow,
      range,
      query,
      options,
    ) {
      if (!flagged) {
        flagged = true;
        await asOtherClient(s.mailbox, async (c) => {
          await c.messageFlagsAdd(String(uids[0]), ["\\Flagged"], { uid: true });
          await c.messageFlagsAdd(String(uids[1]), ["\\Flagged"], { uid: true });
        });
      }
      return original.call(this, range, query, options);
    });
    const imap = createImapConnector(t.app.engine, defaultImapSettings(t.db.url));
    try {
      await imap.pollAccount(s.accountId);
    } finally {
      await imap.stop();
    }
    expect(flagged).toBe(true);
    expect((await messagesOf(t.db.db, s.accountId)).map((m) => m.subject)).toEqual([
      "Flg 1",
      "Flg 2",
      "Flg 3",
      "Flg 4",
    ]);
    expect(await checkpointOf(t.db.db, s.accountId)).toMatchObject({ lastUid: uids.at(-1) });
    expect((await accountRow(s.accountId)).status).not.toBe("INVALID");
    expect(imap.budget.held).toBe(0);
  });

  it("MOVE into the mailbox that is read (INBOX is case-insensitive) is refused when saved, and never attempted: no endless loop", async () => {
    const s = await newDovecotMailbox(t, dovecot, "self", { afterProcess: "LEAVE" });
    // The API refuses it …
    const r = await t.gql(
      `mutation($id: ID!, $input: MailAccountInput!) { updateMailAccount(id: $id, input: $input) { __typename ... on ValidationError { field problems { field message } } } }`,
      {
        id: encodeId("MailAccount", s.accountId),
        input: { imapMailbox: "INBOX", imapAfterProcess: "MOVE", imapMoveTo: "inbox" },
      },
    );
    expect(JSON.stringify(r.data)).toMatch(/imapMoveTo.*must differ from the mailbox that is read/);
    // … and a row saved before that check (or by hand) does not loop.
    await t.db.db
      .update(mailAccount)
      .set({ imapMailbox: "INBOX", imapAfterProcess: "MOVE", imapMoveTo: "inbox" })
      .where(eq(mailAccount.id, s.accountId));
    await appendMany(
      dovecot,
      [1, 2, 3].map((i) => customerMail(s.address, `self-${i}-${s.accountId}@c.example`, `Self ${i}`)),
      "INBOX",
    );
    const before = await serverState(dovecot, "INBOX");
    const done = await Promise.race([
      t.app.imap.pollAccount(s.accountId),
      new Promise((resolve) => setTimeout(() => resolve("still running"), 15_000)),
    ]);
    expect(done).toBe("synced");
    const mine = (await messagesOf(t.db.db, s.accountId))
      .map((m) => m.subject)
      .filter((x) => x?.startsWith("Self"));
    expect(mine).toEqual(["Self 1", "Self 2", "Self 3"]);
    // Left where they were (same UIDs), and the account says why.
    expect((await serverState(dovecot, "INBOX")).map((m) => m.uid)).toEqual(before.map((m) => m.uid));
    const acc = await accountRow(s.accountId);
    expect(acc.status).toBe("VALID");
    expect(acc.lastError).toMatch(/server action: the MOVE folder "inbox" is the mailbox that is read/);
  });

  it("a read-only mailbox: mail still comes in, no flag or move is attempted (a MOVE there would copy the mail again in every session), and the account says why", async () => {
    for (const afterProcess of ["SEEN", "MOVE"] as const) {
      const s = await newDovecotMailbox(t, dovecot, `ro${afterProcess.toLowerCase()}`, {
        afterProcess,
        ...(afterProcess === "MOVE" ? { moveTo: `Done${afterProcess}` } : {}),
      });
      await appendMany(
        dovecot,
        [1, 2].map((i) =>
          customerMail(s.address, `ro-${afterProcess}-${i}-${s.accountId}@c.example`, `RO ${i}`),
        ),
        s.mailbox,
      );
      const dirs = ["cur", "new", "tmp"].map((d) =>
        join(dovecot.root, "mail", dovecot.user, `.${s.mailbox}`, d),
      );
      execFileSync("chmod", ["a-w", ...dirs]);
      try {
        expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
        expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced"); // a second session's repair
        expect((await messagesOf(t.db.db, s.accountId)).map((m) => m.subject)).toEqual(["RO 1", "RO 2"]);
        const left = await serverState(dovecot, s.mailbox);
        expect(left).toHaveLength(2);
        expect(left.every((m) => !m.seen)).toBe(true);
        if (afterProcess === "MOVE") {
          const copied = await serverState(dovecot, `Done${afterProcess}`).catch(() => []);
          expect(copied).toEqual([]);
        }
        const acc = await accountRow(s.accountId);
        expect(acc.status).toBe("VALID");
        expect(acc.lastError).toMatch(/server action: the mailbox is read-only/);
      } finally {
        execFileSync("chmod", ["u+w", ...dirs]);
      }
    }
  });

  it("a verdict about settings an admin has since changed is not written: the old worker's failed login does not park the new password", async () => {
    const s = await newDovecotMailbox(t, dovecot, "pw");
    // An account the API takes edits of also sends (its SMTP side).
    await t.db.db.update(mailAccount).set({ smtpHost: "127.0.0.1" }).where(eq(mailAccount.id, s.accountId));
    const [before] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, s.accountId));
    const oldVersion = before!.updatedAt.toISOString();
    // The admin enters a new password: the row's version moves on.
    const r = await t.gql(
      `mutation($id: ID!, $input: MailAccountInput!) { updateMailAccount(id: $id, input: $input) { __typename } }`,
      { id: encodeId("MailAccount", s.accountId), input: { imapPassword: "rotated-secret" } },
    );
    expect(r.data?.updateMailAccount.__typename).toBe("MailAccount");
    // A worker still on the old settings fails to log in and reports it.
    await recordAccountStatus(
      t.app.engine,
      s.accountId,
      "INVALID",
      "auth: Authentication failed.",
      oldVersion,
    );
    let acc = await accountRow(s.accountId);
    expect(acc.status).not.toBe("INVALID");
    // About the current settings, the verdict is written.
    await recordAccountStatus(
      t.app.engine,
      s.accountId,
      "INVALID",
      "auth: Authentication failed.",
      acc.updatedAt.toISOString(),
    );
    acc = await accountRow(s.accountId);
    expect(acc.status).toBe("INVALID");
  });

  it("a verdict about the current settings is written, also on a row whose timestamp has microseconds (made by the database)", async () => {
    const s = await newDovecotMailbox(t, dovecot, "fresh");
    await t.db
      .sql`UPDATE mail_account SET updated_at = '2026-11-23 01:02:03.123456+00' WHERE id = ${s.accountId}`;
    const account = (await getImapAccount(t.app.engine, s.accountId))!;
    await recordAccountStatus(t.app.engine, s.accountId, "INVALID", "permanent: test", account.version);
    expect((await accountRow(s.accountId)).status).toBe("INVALID");
  });

  it("testing the connection records its verdict without counting as an edit (the running worker is not restarted)", async () => {
    const s = await newDovecotMailbox(t, dovecot, "tc");
    const [before] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, s.accountId));
    const [admin] = await t.db.sql<{ id: string }[]>`
      SELECT id FROM "user" WHERE tenant_id = ${t.tenantId} AND role = 'ADMIN' LIMIT 1`;
    await testMailAccount(
      t.app.engine,
      { tenantId: t.tenantId, userId: admin!.id, role: "ADMIN" } as Parameters<typeof testMailAccount>[1],
      s.accountId,
      {
        checker: {
          checkImap: async () => ({ ok: true }),
          checkSmtp: async () => ({ ok: true }),
        } as unknown as NonNullable<Parameters<typeof testMailAccount>[3]>["checker"],
      },
    );
    const acc = await accountRow(s.accountId);
    expect(acc.lastCheckedAt).not.toBeNull();
    expect(acc.updatedAt.toISOString()).toBe(before!.updatedAt.toISOString());
  });

  it("a connection that goes silent mid-drain: disabling the account and stopping the connector finish within seconds", async () => {
    const relay = await startRelay(dovecot.port);
    const s = await newDovecotMailbox(t, { ...dovecot, port: relay.port }, "bh");
    await appendMany(
      dovecot,
      Array.from({ length: 100 }, (_, i) =>
        customerMail(s.address, `bh-${i}-${s.accountId}@c.example`, `bh-${i}`),
      ),
      s.mailbox,
    );
    const imap = createImapConnector(t.app.engine, {
      ...defaultImapSettings(t.db.url),
      pollSeconds: 3600,
      batchSize: 5,
    });
    try {
      imap.start();
      await waitFor(
        "some mail in",
        async () => (await messagesOf(t.db.db, s.accountId)).length >= 10,
        20_000,
        10,
      );
      relay.freeze();
      await new Promise((r) => setTimeout(r, 500));
      await t.db.db.update(mailAccount).set({ enabled: false }).where(eq(mailAccount.id, s.accountId));
      const t0 = Date.now();
      const done = await Promise.race([
        imap.reconcile().then(() => "done"),
        new Promise((r) => setTimeout(() => r("still waiting"), 20_000)),
      ]);
      expect(done).toBe("done");
      expect(Date.now() - t0).toBeLessThan(12_000);
      expect(imap.workers().has(s.accountId)).toBe(false);
    } finally {
      const t1 = Date.now();
      await imap.stop();
      expect(Date.now() - t1).toBeLessThan(12_000);
      await relay.close();
    }
  }, 60_000);

  it("a UIDVALIDITY resync interrupted after its first batch goes on as a resync: mail retention purged is recorded expired, not new work", async () => {
    const s = await newDovecotMailbox(t, dovecot, "rsy", { afterProcess: "LEAVE" });
    await t.db.db.update(tenant).set({ retentionDays: 30 }).where(eq(tenant.id, t.tenantId));
    try {
      const longAgo = new Date(Date.now() - 60 * 86_400_000);
      for (const i of [1, 2]) {
        await dovecot.appendMessage(
          customerMail(s.address, `rsy-old-${i}-${s.accountId}@c.example`, `old ${i}`),
          s.mailbox,
          longAgo,
        );
      }
      await dovecot.appendMessage(
        customerMail(s.address, `rsy-new-${s.accountId}@c.example`, "new"),
        s.mailbox,
      );
      expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
      const first = await messagesOf(t.db.db, s.accountId);
      expect(first).toHaveLength(3);
      // Retention purges the two old conversations.
      for (const m of first.filter((x) => x.subject!.startsWith("old"))) {
        await t.db.db
          .update(conversation)
          .set({ status: "CLOSED", workState: "DONE", closedAt: new Date(Date.now() - 40 * 86_400_000) })
          .where(eq(conversation.id, m.conversationId));
      }
      await purgeExpired(
        { db: t.db.db, clock: { now: () => new Date() }, log: silentLogger } as Parameters<
          typeof purgeExpired
        >[0],
        { tenantId: t.tenantId },
      );
      expect((await messagesOf(t.db.db, s.accountId)).map((m) => m.subject)).toEqual(["new"]);
      const cp = await checkpointOf(t.db.db, s.accountId);
      await dovecot.setUidValidity(s.mailbox, cp!.uidValidity + 1000);

      // The resync runs one batch of one mail, then stops (a deploy, a crash, a dropped connection).
      const account = (await getImapAccount(t.app.engine, s.accountId))!;
      const client = imapClient(account, { idle: false, idleRestartSeconds: 60 });
      await client.connect();
      let calls = 0;
      try {
        await syncMailbox(t.app.engine, client, account, {
          batchSize: 1,
          maxMessageBytes: 1024 * 1024,
          log: silentLogger,
          isStopped: () => ++calls > 2,
        });
      } finally {
        await client.logout();
      }
      expect(
        await t.db.db.select().from(rejectedMessage).where(eq(rejectedMessage.accountId, s.accountId)),
      ).toHaveLength(1);
      // The next sync finishes it, as a resync.
      expect(await t.app.imap.pollAccount(s.accountId)).toBe("synced");
      expect((await messagesOf(t.db.db, s.accountId)).map((m) => m.subject)).toEqual(["new"]);
      const rejected = await t.db.db
        .select()
        .from(rejectedMessage)
        .where(eq(rejectedMessage.accountId, s.accountId));
      expect(rejected.map((r) => [r.subject, r.reason]).sort()).toEqual([
        ["old 1", "expired"],
        ["old 2", "expired"],
      ]);
      // The bound is gone once the position passed it.
      const [row] = await t.db.sql<{ through: string | null }[]>`
        SELECT resync_through_uid::text AS through FROM mailbox_checkpoint WHERE account_id = ${s.accountId}`;
      expect(row!.through).toBeNull();
    } finally {
      await t.db.db.update(tenant).set({ retentionDays: null }).where(eq(tenant.id, t.tenantId));
    }
  });

  it("a passing failure (connection refused) of an account that never connected leaves it UNKNOWN, with the error beside it", async () => {
    const relay = await startRelay(dovecot.port);
    const port = relay.port;
    await relay.close(); // nothing listens there any more
    const s = await newDovecotMailbox(t, { ...dovecot, port }, "refused");
    await expect(t.app.imap.pollAccount(s.accountId)).rejects.toThrow();
    const acc = await accountRow(s.accountId);
    expect(acc.status).toBe("UNKNOWN");
    expect(acc.lastError).toMatch(/^transient: /);
  });
});
