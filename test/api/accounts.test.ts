import { createServer } from "node:net";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mailAccount } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { testMailAccount } from "../../src/engine/config/mail-accounts.js";
import { listImapAccounts } from "../../src/engine/ingest/mailbox.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createUserWithKey } from "../helpers/fixtures.js";
import { startSmtpPeer } from "../helpers/smtp-peer.js";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const ACCOUNT_FIELDS = `id name kind enabled imapHost imapPort imapTls imapUser hasImapPassword imapMailbox
  imapAfterProcess imapMoveTo smtpHost smtpPort smtpTlsMode smtpUser hasSmtpPassword status lastError lastCheckedAt archivedAt`;

const CREATE = `mutation($input: MailAccountInput!) { createMailAccount(input: $input) {
  __typename
  ... on MailAccount { ${ACCOUNT_FIELDS} }
  ... on ValidationError { field problems { field message } }
} }`;
const UPDATE = `mutation($id: ID!, $input: MailAccountInput!) { updateMailAccount(id: $id, input: $input) {
  __typename
  ... on MailAccount { ${ACCOUNT_FIELDS} }
  ... on ValidationError { field problems { field message } }
  ... on NotFoundError { entity }
} }`;
const TEST = `mutation($id: ID!) { testMailAccount(id: $id) {
  __typename
  ... on MailAccountTestResult {
    imap { ok error kind }
    smtp { ok error kind }
    account { status lastError lastCheckedAt }
  }
} }`;

const IMAP_PASSWORD = "imap-Secret-4711";
const SMTP_PASSWORD = "smtp-Secret-0815";

const valid = {
  name: "Support mailbox",
  imapHost: "imap.acme.test",
  imapUser: "support@acme.test",
  imapPassword: IMAP_PASSWORD,
  smtpHost: "smtp.acme.test",
  smtpUser: "support@acme.test",
  smtpPassword: SMTP_PASSWORD,
};

async function create(input: Record<string, unknown>) {
  const r = await t.ok(CREATE, { input });
  return r.createMailAccount;
}

describe("mail accounts", () => {
  it("creates with defaults, lists, updates and archives", async () => {
    const a = await create(valid);
    expect(a).toMatchObject({
      __typename: "MailAccount",
      kind: "INBOUND_OUTBOUND",
      imapPort: 993,
      imapTls: true,
      imapMailbox: "INBOX",
      imapAfterProcess: "SEEN",
      smtpPort: 587,
      smtpTlsMode: "STARTTLS",
      hasImapPassword: true,
      hasSmtpPassword: true,
      status: "UNKNOWN",
      enabled: true,
    });
    const u = await t.ok(UPDATE, {
      id: a.id,
      input: { imapAfterProcess: "MOVE", imapMoveTo: "Processed", smtpTlsMode: "TLS", smtpPort: null },
    });
    expect(u.updateMailAccount).toMatchObject({
      imapAfterProcess: "MOVE",
      imapMoveTo: "Processed",
      smtpPort: 465,
    });
    const cleared = await t.ok(UPDATE, { id: a.id, input: { smtpPassword: null } });
    expect(cleared.updateMailAccount).toMatchObject({ hasSmtpPassword: false, hasImapPassword: true });

    const list = await t.ok(`{ mailAccounts { edges { node { id } } } }`);
    expect(list.mailAccounts.edges.map((e: { node: { id: string } }) => e.node.id)).toContain(a.id);
    const arch = await t.ok(
      `mutation($id: ID!) { archiveMailAccount(id: $id) { ... on MailAccount { archivedAt enabled } } }`,
      { id: a.id },
    );
    expect(arch.archiveMailAccount.archivedAt).not.toBeNull();
    expect(arch.archiveMailAccount.enabled).toBe(false);
    const after = await t.ok(`{ mailAccounts { edges { node { id } } } }`);
    expect(after.mailAccounts.edges.map((e: { node: { id: string } }) => e.node.id)).not.toContain(a.id);
    // Switched on again it answered `enabled: true` and was never read (config probe, session 17).
    const on = await t.ok(
      `mutation($id: ID!) { updateMailAccount(id: $id, input: { enabled: true }) {
        __typename ... on ConflictError { code } ... on MailAccount { enabled } } }`,
      { id: a.id },
    );
    expect(on.updateMailAccount).toEqual({ __typename: "ConflictError", code: "ARCHIVED" });
  });

  it("stores INBOX in any spelling as INBOX, so a change of spelling alone reads nothing again", async () => {
    const a = await create({ ...valid, name: "Lower inbox", imapMailbox: " inbox " });
    expect(a.imapMailbox).toBe("INBOX");
    const u = await t.ok(UPDATE, { id: a.id, input: { imapMailbox: "Inbox" } });
    expect(u.updateMailAccount.imapMailbox).toBe("INBOX");
    // Other names are case-sensitive (RFC 3501 §5.1) and stay as given.
    const other = await t.ok(UPDATE, { id: a.id, input: { imapMailbox: "support" } });
    expect(other.updateMailAccount.imapMailbox).toBe("support");
    const sub = await t.ok(UPDATE, { id: a.id, input: { imapMailbox: "inbox.Support" } });
    expect(sub.updateMailAccount.imapMailbox).toBe("inbox.Support");
  });

  it("creates an outbound-only account without IMAP", async () => {
    const a = await create({ name: "Auto-replies", kind: "OUTBOUND_ONLY", smtpHost: "smtp.acme.test" });
    expect(a).toMatchObject({
      kind: "OUTBOUND_ONLY",
      imapHost: null,
      imapPort: null,
      hasImapPassword: false,
    });
  });

  it("stores passwords encrypted and never returns them", async () => {
    const a = await create({ ...valid, name: "Secret keeper" });
    const [mine] = await t.db.db.select().from(mailAccount).where(eq(mailAccount.name, "Secret keeper"));
    if (!mine) throw new Error("account row missing");
    expect(mine.imapPasswordEnc).toMatch(/^v1:/);
    expect(mine.imapPasswordEnc).not.toContain(IMAP_PASSWORD);
    expect(mine.smtpPasswordEnc).not.toContain(SMTP_PASSWORD);
    expect(t.app.engine.secrets.decrypt(mine.imapPasswordEnc!)).toBe(IMAP_PASSWORD);
    // Every field the type has, read back through the API: no value carries the secret.
    const fields = await t.ok(`{ __type(name: "MailAccount") { fields { name } } }`);
    const names: string[] = fields.__type.fields.map((f: { name: string }) => f.name);
    expect(names.filter((n) => /password/i.test(n))).toEqual(["hasImapPassword", "hasSmtpPassword"]);
    const node = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on MailAccount { ${names.join(" ")} } } }`,
      {
        id: a.id,
      },
    );
    const text = JSON.stringify(node);
    expect(text).not.toContain(IMAP_PASSWORD);
    expect(text).not.toContain(SMTP_PASSWORD);
    expect(text).not.toContain(mine.imapPasswordEnc!);
  });

  it.each([
    [{ ...valid, name: "" }, "name"],
    [{ ...valid, name: "a\nb" }, "name"],
    [{ ...valid, imapHost: null }, "imapHost"],
    [{ ...valid, imapHost: "bad host" }, "imapHost"],
    [{ ...valid, imapUser: null }, "imapUser"],
    [{ ...valid, imapUser: "user\r\nX-Injected: 1" }, "imapUser"],
    [{ ...valid, imapPort: 0 }, "imapPort"],
    [{ ...valid, imapPort: 65536 }, "imapPort"],
    [{ ...valid, imapAfterProcess: "MOVE" }, "imapMoveTo"],
    [{ ...valid, imapAfterProcess: "MOVE", imapMoveTo: "INBOX" }, "imapMoveTo"],
    [{ ...valid, imapMailbox: "" }, "imapMailbox"],
    [{ ...valid, smtpHost: null }, "smtpHost"],
    [{ ...valid, smtpHost: "smtp..acme" }, "smtpHost"],
    [{ ...valid, smtpPort: -1 }, "smtpPort"],
    [{ ...valid, smtpPassword: "pw\nRSET" }, "smtpPassword"],
    [{ name: "out", kind: "OUTBOUND_ONLY" }, "smtpHost"],
    [
      { name: "out", kind: "OUTBOUND_ONLY", smtpHost: "smtp.acme.test", imapHost: "imap.acme.test" },
      "imapHost",
    ],
  ])("rejects %j naming %s", async (input, field) => {
    const r = await create(input);
    expect(r.__typename).toBe("ValidationError");
    expect(r.problems.map((p: { field: string }) => p.field)).toContain(field);
  });

  it("validates the merged state on update", async () => {
    const a = await create({ ...valid, name: "Merge" });
    const r = await t.ok(UPDATE, { id: a.id, input: { imapAfterProcess: "MOVE" } });
    expect(r.updateMailAccount).toMatchObject({ __typename: "ValidationError", field: "imapMoveTo" });
    const clearHost = await t.ok(UPDATE, { id: a.id, input: { imapHost: null } });
    expect(clearHost.updateMailAccount).toMatchObject({ __typename: "ValidationError", field: "imapHost" });
  });

  it("is ADMIN only and tenant-scoped", async () => {
    const a = await create({ ...valid, name: "Scoped" });
    for (const role of ["AGENT", "SUPERVISOR"] as const) {
      const u = await createUserWithKey(t.db.db, t.tenantId, role);
      const w = await t.gql(CREATE, { input: { ...valid, name: `by ${role}` } }, u.key);
      expect(w.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      const l = await t.gql(`{ mailAccounts { edges { node { id } } } }`, {}, u.key);
      expect(l.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      const n = await t.ok(`query($id: ID!) { node(id: $id) { id } }`, { id: a.id }, u.key);
      expect(n.node).toBeNull();
    }
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "x@other.test" });
    const r = await t.ok(UPDATE, { id: a.id, input: { name: "Mine" } }, other.apiKey);
    expect(r.updateMailAccount).toMatchObject({ __typename: "NotFoundError", entity: "MailAccount" });
    const tested = await t.ok(TEST, { id: a.id }, other.apiKey);
    expect(tested.testMailAccount.__typename).toBe("NotFoundError");
  });
});

async function refusedPort(): Promise<number> {
  // Bind and close: nothing listens there afterwards, so connecting is refused at once.
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe("testMailAccount", () => {
  it("checks SMTP against a real server: success, then auth failure; IMAP refused separately", async () => {
    const peer = await startSmtpPeer({ user: "relay", pass: SMTP_PASSWORD });
    try {
      const imapPort = await refusedPort();
      const a = await create({
        name: "Live",
        imapHost: "127.0.0.1",
        imapPort,
        imapTls: false,
        imapUser: "support",
        imapPassword: IMAP_PASSWORD,
        smtpHost: "127.0.0.1",
        smtpPort: peer.port,
        smtpTlsMode: "NONE",
        smtpUser: "relay",
        smtpPassword: SMTP_PASSWORD,
      });
      const r = (await t.ok(TEST, { id: a.id })).testMailAccount;
      expect(r.smtp).toEqual({ ok: true, error: null, kind: null });
      expect(peer.logins).toEqual(["relay"]);
      expect(r.imap.ok).toBe(false);
      expect(r.imap.kind).toBe("CONNECTION");
      expect(r.imap.error).toContain("ECONNREFUSED");
      expect(r.account.status).toBe("INVALID");
      expect(r.account.lastError).toMatch(/^IMAP: .*ECONNREFUSED/);
      expect(r.account.lastError).not.toContain("SMTP");
      expect(r.account.lastCheckedAt).not.toBeNull();

      await t.ok(UPDATE, { id: a.id, input: { smtpPassword: "wrong" } });
      const bad = (await t.ok(TEST, { id: a.id })).testMailAccount;
      expect(bad.smtp.ok).toBe(false);
      expect(bad.smtp.kind).toBe("AUTH");
      expect(bad.smtp.error).not.toContain("wrong");
      expect(bad.account.lastError).toContain("SMTP: ");
    } finally {
      await peer.stop();
    }
  });

  it("marks an outbound-only account VALID when SMTP works, without touching IMAP", async () => {
    const peer = await startSmtpPeer({ user: "relay", pass: SMTP_PASSWORD });
    try {
      const a = await create({
        name: "Outbound live",
        kind: "OUTBOUND_ONLY",
        smtpHost: "127.0.0.1",
        smtpPort: peer.port,
        smtpTlsMode: "NONE",
        smtpUser: "relay",
        smtpPassword: SMTP_PASSWORD,
      });
      const r = (await t.ok(TEST, { id: a.id })).testMailAccount;
      expect(r.imap).toBeNull();
      expect(r.smtp.ok).toBe(true);
      expect(r.account).toMatchObject({ status: "VALID", lastError: null });
      // Changing connection settings makes the result stale again.
      const u = await t.ok(UPDATE, {
        id: a.id,
        input: { smtpPort: peer.port + 1 > 65535 ? 1 : peer.port + 1 },
      });
      expect(u.updateMailAccount.status).toBe("UNKNOWN");
    } finally {
      await peer.stop();
    }
  });

  it("forbids tests to non-admins", async () => {
    const a = await create({ ...valid, name: "No test" });
    const u = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    const r = await t.gql(TEST, { id: a.id }, u.key);
    expect(r.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });
});

describe("testMailAccount in the engine", () => {
  it("bounds a checker that never answers by the timeout and records INVALID", async () => {
    const a = await create({ ...valid, name: "Hanging" });
    const id = Buffer.from(a.id, "base64").toString().split(":")[1]!;
    const never = () => new Promise<never>(() => {});
    const r = await testMailAccount(t.app.engine, t.adminViewer(), id, {
      checker: { checkImap: never, checkSmtp: never },
      timeoutMs: 50,
    });
    expect(r.imap).toMatchObject({ ok: false, kind: "TIMEOUT" });
    expect(r.smtp).toMatchObject({ ok: false, kind: "TIMEOUT" });
    expect(r.account.status).toBe("INVALID");
    expect(r.account.lastError).toMatch(/^IMAP: .*; SMTP: /);
  });

  it("hands the checker the decrypted passwords", async () => {
    const a = await create({ ...valid, name: "Decrypts" });
    const id = Buffer.from(a.id, "base64").toString().split(":")[1]!;
    const seen: (string | null)[] = [];
    const ok = { ok: true, error: null, kind: null };
    const r = await testMailAccount(t.app.engine, t.adminViewer(), id, {
      checker: {
        checkImap: async (s) => {
          seen.push(s.password);
          return ok;
        },
        checkSmtp: async (s) => {
          seen.push(s.password);
          return ok;
        },
      },
    });
    expect(seen.sort()).toEqual([IMAP_PASSWORD, SMTP_PASSWORD].sort());
    expect(r.account.status).toBe("VALID");
  });

  // The worker logs in with the same password: a test that saw it refused must park the
  // account as the connector's own refusal does, or the supervisor's next reload logs in
  // again with it (servers lock mailboxes after repeated failures). Until 2026-11-23 it did.
  it("a rejected IMAP login parks the account for the IMAP supervisor; a later VALID test lists it again", async () => {
    const a = await create({ ...valid, name: "Refused" });
    const id = Buffer.from(a.id, "base64").toString().split(":")[1]!;
    const ok = { ok: true, error: null, kind: null };
    const refused = { ok: false, error: "Authentication failed", kind: "AUTH" as const };
    const listed = async () => (await listImapAccounts(t.app.engine)).some((x) => x.id === id);
    expect(await listed()).toBe(true);
    const bad = await testMailAccount(t.app.engine, t.adminViewer(), id, {
      checker: { checkImap: async () => refused, checkSmtp: async () => ok },
    });
    expect(bad.account).toMatchObject({ status: "INVALID", lastError: "IMAP: auth: Authentication failed" });
    expect(await listed()).toBe(false);
    // Another kind of failure is retried as before.
    await testMailAccount(t.app.engine, t.adminViewer(), id, {
      checker: {
        checkImap: async () => ({ ok: false, error: "connect ECONNREFUSED", kind: "CONNECTION" as const }),
        checkSmtp: async () => ok,
      },
    });
    expect(await listed()).toBe(true);
    await testMailAccount(t.app.engine, t.adminViewer(), id, {
      checker: { checkImap: async () => refused, checkSmtp: async () => ok },
    });
    expect(await listed()).toBe(false);
    await testMailAccount(t.app.engine, t.adminViewer(), id, {
      checker: { checkImap: async () => ok, checkSmtp: async () => ok },
    });
    expect(await listed()).toBe(true);
  });

  // A slow test of the old password while the admin saves the right one: the old verdict
  // parked the corrected account (re-probe, session 17). It is no longer recorded.
  it("does not record a verdict about settings an admin changed while the test ran", async () => {
    const a = await create({ ...valid, name: "Changed meanwhile" });
    const id = Buffer.from(a.id, "base64").toString().split(":")[1]!;
    const r = await testMailAccount(t.app.engine, t.adminViewer(), id, {
      checker: {
        checkImap: async () => {
          const saved = await t.ok(UPDATE, { id: a.id, input: { imapPassword: "the-right-one" } });
          expect(saved.updateMailAccount.__typename).toBe("MailAccount");
          return { ok: false, error: "Authentication failed", kind: "AUTH" as const };
        },
        checkSmtp: async () => ({ ok: true, error: null, kind: null }),
      },
    });
    expect(r.imap).toMatchObject({ ok: false, kind: "AUTH" });
    // The edit's state stands: untested, listed for the IMAP supervisor.
    expect(r.account).toMatchObject({ status: "UNKNOWN", lastError: null });
    expect((await listImapAccounts(t.app.engine)).some((x) => x.id === id)).toBe(true);
  });

  it("reports UNAVAILABLE where no checker is configured", async () => {
    const a = await create({ ...valid, name: "No checker" });
    const id = Buffer.from(a.id, "base64").toString().split(":")[1]!;
    await expect(
      testMailAccount({ ...t.app.engine, accountChecker: undefined }, t.adminViewer(), id),
    ).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });
});
