import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { createImapConnector, defaultImapSettings } from "../../src/connectors/imap.js";
import {
  mailAccount,
  mailboxCheckpoint,
  message,
  rejectedMessage,
  tenant,
} from "../../src/db/schema/index.js";
import { ingestMessages, StaleImapServerError } from "../../src/engine/ingest/ingest.js";
import { encodeId } from "../../src/schema/ids.js";
import type { TestApp } from "../helpers/app.js";
import { type DovecotInstance, requireDovecot, startDovecot } from "../helpers/dovecot.js";
import {
  appendMany,
  checkpointOf,
  customerMail,
  messagesOf,
  newDovecotMailbox,
  withDovecotApp,
} from "./imap-fixtures.js";

// An account pointed at another server or login (a probe, session 15): the checkpoint
// stayed, and when the new folder had the old one's UIDVALIDITY (Dovecot takes the second
// the folder was made) its mail up to the old checkpoint was never fetched, without a trace.

const enabled = requireDovecot();
let t: TestApp;
let dovecot: DovecotInstance;

const UPDATE = `mutation($id: ID!, $input: MailAccountInput!) { updateMailAccount(id: $id, input: $input) { __typename } }`;

describe.skipIf(!enabled)("IMAP: the account pointed at another server", () => {
  withDovecotApp((s) => ({ t, dovecot } = s));

  it("reads the new server's folder from its first UID, though its UIDVALIDITY is the old one's; nothing is doubled", async () => {
    const b = await startDovecot();
    try {
      const s = await newDovecotMailbox(t, dovecot, "mig");
      // What the API requires of an account that also sends.
      await t.db.db.update(mailAccount).set({ smtpHost: "127.0.0.1" }).where(eq(mailAccount.id, s.accountId));
      const update = async (input: Record<string, unknown>) =>
        expect(
          (await t.ok(UPDATE, { id: encodeId("MailAccount", s.accountId), input })).updateMailAccount,
        ).toEqual({
          __typename: "MailAccount",
        });
      const old = [1, 2, 3].map((i) =>
        customerMail(s.address, `old-${i}-${s.accountId}@c.example`, `Old${i}`),
      );
      await appendMany(dovecot, old, s.mailbox);
      // The new server holds two of the old mails too (a migrated mailbox) and two new ones.
      const fresh = [1, 2].map((i) =>
        customerMail(s.address, `new-${i}-${s.accountId}@c.example`, `New${i}`),
      );
      await appendMany(b, [old[0]!, old[1]!, ...fresh], s.mailbox);
      await b.setUidValidity(s.mailbox, await dovecot.uidValidity(s.mailbox));
      const imap = createImapConnector(t.app.engine, defaultImapSettings(t.db.url));
      try {
        await imap.pollAccount(s.accountId);
        expect((await checkpointOf(t.db.db, s.accountId))?.lastUid).toBe(3);
        // An edit that keeps the server keeps the checkpoint.
        await update({ name: "Renamed" });
        expect((await checkpointOf(t.db.db, s.accountId))?.lastUid).toBe(3);
        await update({ imapPort: b.port, imapPassword: b.password });
        // Reset as a UIDVALIDITY change resets it: the next sync reads the folder as a resync.
        expect(await checkpointOf(t.db.db, s.accountId)).toMatchObject({ uidValidity: 0, lastUid: 0 });
        await imap.pollAccount(s.accountId);
        await imap.pollAccount(s.accountId);
      } finally {
        await imap.stop();
      }
      const msgs = await messagesOf(t.db.db, s.accountId);
      expect(msgs.map((m) => m.subject).sort()).toEqual(["New1", "New2", "Old1", "Old2", "Old3"]);
      expect((await checkpointOf(t.db.db, s.accountId))?.lastUid).toBe(4);
    } finally {
      await b.stop();
    }
  }, 60_000);

  it("a worker still fetching with the old server's settings commits nothing", async () => {
    const s = await newDovecotMailbox(t, dovecot, "stale");
    const [acc] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.id, s.accountId));
    const raw = customerMail(s.address, `stale-${s.accountId}@c.example`, "Stale");
    const input = (host: string) => ({
      tenantId: t.tenantId,
      addressId: s.addressId,
      raw,
      receivedAt: new Date(),
      source: {
        kind: "imap" as const,
        accountId: s.accountId,
        mailbox: s.mailbox,
        uidValidity: 9,
        uid: 1,
        server: { host, port: acc!.imapPort!, user: acc!.imapUser! },
      },
    });
    const parsed = await t.app.engine.mime.parse(raw);
    await expect(ingestMessages(t.app.engine, [{ ...input("old.example"), parsed }])).rejects.toBeInstanceOf(
      StaleImapServerError,
    );
    expect(await t.db.db.select().from(message).where(eq(message.accountId, s.accountId))).toEqual([]);
    expect(await checkpointOf(t.db.db, s.accountId)).toBeNull();
    // With the account's own server (any case) it lands.
    await ingestMessages(t.app.engine, [{ ...input(acc!.imapHost!.toUpperCase()), parsed }]);
    expect((await checkpointOf(t.db.db, s.accountId))?.lastUid).toBe(1);
  });

  it("a host retyped as an alias of the same server reads the folder as a resync: mail past the retention period does not come back as new work", async () => {
    const s = await newDovecotMailbox(t, dovecot, "alias", { afterProcess: "LEAVE" });
    await t.db.db.update(mailAccount).set({ smtpHost: "127.0.0.1" }).where(eq(mailAccount.id, s.accountId));
    await t.db.db.update(tenant).set({ retentionDays: 30 }).where(eq(tenant.id, t.tenantId));
    try {
      const c = dovecot.client();
      await c.connect();
      await c.mailboxCreate(s.mailbox).catch(() => {});
      const ancient = new Date(Date.now() - 90 * 86_400_000);
      await c.append(
        s.mailbox,
        customerMail(s.address, `anc-${s.accountId}@c.example`, "Ancient"),
        [],
        ancient,
      );
      const uidValidity = Number((await c.mailboxOpen(s.mailbox, { readOnly: true })).uidValidity);
      await c.append(s.mailbox, customerMail(s.address, `rec-${s.accountId}@c.example`, "Recent"));
      await c.logout();
      // Ancient was ingested long ago and purged by retention: the checkpoint is past it.
      await t.db.db.insert(mailboxCheckpoint).values({
        tenantId: t.tenantId,
        accountId: s.accountId,
        mailbox: s.mailbox,
        uidValidity,
        lastUid: 1,
      });
      const imap = createImapConnector(t.app.engine, defaultImapSettings(t.db.url));
      try {
        await imap.pollAccount(s.accountId);
        expect((await messagesOf(t.db.db, s.accountId)).map((m) => m.subject)).toEqual(["Recent"]);
        const r = await t.ok(UPDATE, {
          id: encodeId("MailAccount", s.accountId),
          input: { imapHost: "localhost" },
        });
        expect(r.updateMailAccount).toEqual({ __typename: "MailAccount" });
        await imap.pollAccount(s.accountId);
      } finally {
        await imap.stop();
      }
      expect((await messagesOf(t.db.db, s.accountId)).map((m) => m.subject)).toEqual(["Recent"]);
      const rejected = await t.db.db
        .select()
        .from(rejectedMessage)
        .where(eq(rejectedMessage.accountId, s.accountId));
      expect(rejected.map((x) => x.reason)).toEqual(["expired"]);
      expect((await checkpointOf(t.db.db, s.accountId))?.lastUid).toBe(2);
    } finally {
      await t.db.db.update(tenant).set({ retentionDays: null }).where(eq(tenant.id, t.tenantId));
    }
  }, 60_000);
});
