import { eq } from "drizzle-orm";
import { ImapFlow } from "imapflow";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createImapConnector, defaultImapSettings } from "../../src/connectors/imap.js";
import { mailAccount } from "../../src/db/schema/index.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { type DovecotInstance, requireDovecot, startDovecot } from "../helpers/dovecot.js";
import {
  appendMany,
  checkpointOf,
  customerMail,
  messagesOf,
  newDovecotMailbox,
  serverState,
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

describe.skipIf(!enabled)("IMAP connector robustness (real Dovecot)", () => {
  beforeAll(async () => {
    dovecot = await startDovecot();
    t = await startTestApp({});
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await t?.stop();
    await dovecot?.stop();
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
});
