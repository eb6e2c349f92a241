import { existsSync } from "node:fs";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { classifyImapError } from "../../src/connectors/imap-errors.js";
import type { DovecotInstance } from "../helpers/dovecot.js";
import { requireDovecot, startDovecot } from "../helpers/dovecot.js";
import { buildRawMail } from "../helpers/raw-mail.js";

const available = requireDovecot();

describe.skipIf(!available)("Dovecot test harness", () => {
  let dovecot: DovecotInstance;

  beforeAll(async () => {
    dovecot = await startDovecot();
  });
  afterAll(async () => {
    await dovecot?.stop();
  });

  async function listInbox(): Promise<{ uidValidity: number; uids: number[]; subjects: string[] }> {
    const client = dovecot.client();
    await client.connect();
    try {
      const lock = await client.getMailboxLock("INBOX");
      try {
        const mailbox = client.mailbox;
        if (!mailbox) throw new Error("no mailbox selected");
        const uids: number[] = [];
        const subjects: string[] = [];
        for await (const msg of client.fetch("1:*", { uid: true, envelope: true })) {
          uids.push(msg.uid);
          subjects.push(msg.envelope?.subject ?? "");
        }
        return { uidValidity: Number(mailbox.uidValidity), uids, subjects };
      } finally {
        lock.release();
      }
    } finally {
      await client.logout();
    }
  }

  it("listens only on loopback, on its own port, with its files in a temp dir", () => {
    expect(dovecot.host).toBe("127.0.0.1");
    expect(dovecot.port).toBeGreaterThan(1024);
    expect(dovecot.root).toMatch(/sb-dovecot-/);
  });

  it("appends three messages and lists them with UIDs and UIDVALIDITY", async () => {
    const appended = [];
    for (const n of [1, 2, 3]) {
      appended.push(await dovecot.appendMessage(buildRawMail({ subject: `Message ${n}` })));
    }
    expect(appended.map((a) => a.uid)).toEqual([1, 2, 3]);
    const uidValidity = appended[0]!.uidValidity;
    expect(appended.every((a) => a.uidValidity === uidValidity)).toBe(true);

    const inbox = await listInbox();
    expect(inbox).toEqual({
      uidValidity,
      uids: [1, 2, 3],
      subjects: ["Message 1", "Message 2", "Message 3"],
    });
    expect(await dovecot.uidValidity()).toBe(uidValidity);
  });

  it("forces a UIDVALIDITY change with setUidValidity", async () => {
    const before = await dovecot.uidValidity();
    await dovecot.setUidValidity("INBOX", before + 1000);
    const after = await listInbox();
    expect(after.uidValidity).toBe(before + 1000);
    expect(after.uids).toEqual([1, 2, 3]);
  });

  it("recreateMailbox renumbers the messages under a new UIDVALIDITY", async () => {
    const before = await dovecot.uidValidity();
    await dovecot.appendMessage(buildRawMail({ subject: "Message 4" }));
    await dovecot.recreateMailbox("INBOX");
    const after = await listInbox();
    expect(after.uidValidity).not.toBe(before);
    expect(after.subjects.sort()).toEqual(["Message 1", "Message 2", "Message 3", "Message 4"]);
    expect(after.uids).toEqual([1, 2, 3, 4]);
  });

  it("appends to other mailboxes, creating them", async () => {
    const res = await dovecot.appendMessage(buildRawMail({ subject: "Filed" }), "Archive");
    expect(res.uid).toBe(1);
    const before = await dovecot.uidValidity("Archive");
    expect(before).toBe(res.uidValidity);
    await dovecot.recreateMailbox("Archive");
    expect(await dovecot.uidValidity("Archive")).not.toBe(before);
  });

  it("a wrong password is an auth error for our error mapping", async () => {
    const client = new ImapFlow({
      host: dovecot.host,
      port: dovecot.port,
      secure: false,
      auth: { user: dovecot.user, pass: "wrong" },
      logger: false,
    });
    const err = await client.connect().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ authenticationFailed: true });
    expect(classifyImapError(err)).toBe("auth");
  });

  it("stops: the port refuses connections (a transient error) and the temp dir is gone", async () => {
    const extra = await startDovecot();
    await extra.stop();
    const client = new ImapFlow({
      host: extra.host,
      port: extra.port,
      secure: false,
      auth: { user: extra.user, pass: extra.password },
      logger: false,
    });
    const err = await client.connect().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "ECONNREFUSED" });
    expect(classifyImapError(err)).toBe("transient");
    expect(existsSync(extra.root)).toBe(false);
  });
});
