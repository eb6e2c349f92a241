import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createUserWithKey } from "../helpers/fixtures.js";

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.stop();
});

const SETTINGS = `name company timeZone emailEnabled processingLimit appendTicketOnFirstReply
  agentsMayEditSubject activeToPausedDays pausedToClosedDays resolvedToClosedDays reopenEnabled
  reopenWindowDays retentionDays autoReplyLimitPerSender autoReplyLimitWindowMinutes messageIdDomain
  rolePermissions { role permissions }`;
const UPDATE = `mutation($input: TenantSettingsInput!) { updateTenantSettings(input: $input) {
  __typename
  ... on ValidationError { field problems { field message } }
  ... on TenantSettings { ${SETTINGS} }
} }`;

/** A fresh tenant per test that changes settings, so tests do not see each other's changes. */
async function freshTenant() {
  const n = Math.random().toString(36).slice(2, 8);
  return createTenantWithAdmin(t.db.db, { tenantName: `T-${n}`, adminEmail: `admin@${n}.test` });
}

describe("tenant settings", () => {
  it("reads the documented defaults (ADMIN and SUPERVISOR)", async () => {
    const sup = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    for (const key of [t.adminKey, sup.key]) {
      const r = await t.ok(`{ tenantSettings { ${SETTINGS} } }`, {}, key);
      expect(r.tenantSettings).toMatchObject({
        name: "Acme",
        timeZone: "UTC",
        emailEnabled: true,
        processingLimit: null,
        appendTicketOnFirstReply: false,
        agentsMayEditSubject: false,
        activeToPausedDays: 30,
        pausedToClosedDays: 60,
        resolvedToClosedDays: 30,
        reopenEnabled: true,
        reopenWindowDays: 30,
        retentionDays: null,
        messageIdDomain: null,
      });
      expect(r.tenantSettings.rolePermissions.map((rp: any) => rp.role)).toEqual([
        "ADMIN",
        "SUPERVISOR",
        "AGENT",
      ]);
      expect(r.tenantSettings.rolePermissions[0].permissions).toHaveLength(7);
    }
  });

  it("updates every setting, and null switches off the optional ones", async () => {
    const tn = await freshTenant();
    const input = {
      name: "Renamed",
      company: "Renamed GmbH",
      timeZone: "Europe/Berlin",
      emailEnabled: false,
      processingLimit: 1_000_000,
      appendTicketOnFirstReply: true,
      agentsMayEditSubject: false,
      activeToPausedDays: 1,
      pausedToClosedDays: 1000,
      resolvedToClosedDays: 7,
      reopenEnabled: false,
      reopenWindowDays: 1000,
      retentionDays: 3650,
      autoReplyLimitPerSender: 3,
      autoReplyLimitWindowMinutes: 60,
      messageIdDomain: "Mail.Example.COM",
    };
    const r = await t.ok(UPDATE, { input }, tn.apiKey);
    expect(r.updateTenantSettings).toMatchObject({ ...input, messageIdDomain: "mail.example.com" });
    const off = await t.ok(
      UPDATE,
      {
        input: {
          processingLimit: null,
          activeToPausedDays: null,
          pausedToClosedDays: null,
          resolvedToClosedDays: null,
          retentionDays: null,
          messageIdDomain: null,
        },
      },
      tn.apiKey,
    );
    expect(off.updateTenantSettings).toMatchObject({
      processingLimit: null,
      activeToPausedDays: null,
      pausedToClosedDays: null,
      resolvedToClosedDays: null,
      retentionDays: null,
      messageIdDomain: null,
      // Omitted fields stay unchanged.
      name: "Renamed",
      timeZone: "Europe/Berlin",
      appendTicketOnFirstReply: true,
    });
    // The Tenant type on viewer reflects it too.
    const v = await t.ok(`{ viewer { tenant { name company timeZone } } }`, {}, tn.apiKey);
    expect(v.viewer.tenant).toEqual({ name: "Renamed", company: "Renamed GmbH", timeZone: "Europe/Berlin" });
  });

  it.each([
    [{ name: "" }, "name"],
    [{ name: null }, "name"],
    [{ name: "x".repeat(101) }, "name"],
    [{ company: "x".repeat(201) }, "company"],
    [{ timeZone: "Mars/Olympus" }, "timeZone"],
    [{ timeZone: "+02:00" }, "timeZone"],
    [{ timeZone: "" }, "timeZone"],
    [{ emailEnabled: null }, "emailEnabled"],
    [{ processingLimit: 0 }, "processingLimit"],
    [{ processingLimit: 1_000_001 }, "processingLimit"],
    [{ activeToPausedDays: 0 }, "activeToPausedDays"],
    [{ activeToPausedDays: 1001 }, "activeToPausedDays"],
    [{ pausedToClosedDays: 0 }, "pausedToClosedDays"],
    [{ pausedToClosedDays: 1001 }, "pausedToClosedDays"],
    [{ resolvedToClosedDays: -1 }, "resolvedToClosedDays"],
    [{ resolvedToClosedDays: 1001 }, "resolvedToClosedDays"],
    [{ reopenWindowDays: 0 }, "reopenWindowDays"],
    [{ reopenWindowDays: 1001 }, "reopenWindowDays"],
    [{ reopenWindowDays: null }, "reopenWindowDays"],
    [{ retentionDays: 0 }, "retentionDays"],
    [{ retentionDays: 3651 }, "retentionDays"],
    [{ autoReplyLimitPerSender: 0 }, "autoReplyLimitPerSender"],
    [{ autoReplyLimitPerSender: 1001 }, "autoReplyLimitPerSender"],
    [{ autoReplyLimitWindowMinutes: 0 }, "autoReplyLimitWindowMinutes"],
    [{ autoReplyLimitWindowMinutes: 10_081 }, "autoReplyLimitWindowMinutes"],
    [{ messageIdDomain: "localhost" }, "messageIdDomain"],
    [{ messageIdDomain: "bad_domain.example" }, "messageIdDomain"],
    [{ messageIdDomain: "example.com>\r\nX-Evil: 1" }, "messageIdDomain"],
    [{ messageIdDomain: "10.0.0.1" }, "messageIdDomain"],
    [{ appendTicketOnFirstReply: true, agentsMayEditSubject: true }, "agentsMayEditSubject"],
    [
      { rolePermissions: [{ role: "ADMIN", permissions: ["REPLY_INBOUND"] }] },
      "rolePermissions[0].permissions",
    ],
    [
      {
        rolePermissions: [
          { role: "AGENT", permissions: [] },
          { role: "AGENT", permissions: ["FORWARD"] },
        ],
      },
      "rolePermissions[1].role",
    ],
  ])("rejects %j naming the field and changes nothing", async (input, field) => {
    const before = await t.ok(`{ tenantSettings { ${SETTINGS} } }`);
    const r = await t.ok(UPDATE, { input });
    expect(r.updateTenantSettings).toMatchObject({ __typename: "ValidationError", field });
    const after = await t.ok(`{ tenantSettings { ${SETTINGS} } }`);
    expect(after).toEqual(before);
  });

  it("keeps the two subject options mutually exclusive, naming the field being switched on", async () => {
    const tn = await freshTenant();
    await t.ok(UPDATE, { input: { appendTicketOnFirstReply: true } }, tn.apiKey);
    const edit = await t.ok(UPDATE, { input: { agentsMayEditSubject: true } }, tn.apiKey);
    expect(edit.updateTenantSettings).toMatchObject({
      __typename: "ValidationError",
      field: "agentsMayEditSubject",
    });
    // Switching one off and the other on in one call is fine.
    const swap = await t.ok(
      UPDATE,
      { input: { appendTicketOnFirstReply: false, agentsMayEditSubject: true } },
      tn.apiKey,
    );
    expect(swap.updateTenantSettings).toMatchObject({
      appendTicketOnFirstReply: false,
      agentsMayEditSubject: true,
    });
    const back = await t.ok(UPDATE, { input: { appendTicketOnFirstReply: true } }, tn.apiKey);
    expect(back.updateTenantSettings).toMatchObject({
      __typename: "ValidationError",
      field: "appendTicketOnFirstReply",
    });
  });

  it("applies changed role permissions on the next request", async () => {
    const tn = await freshTenant();
    const agent = await createUserWithKey(t.db.db, tn.tenantId, "AGENT");
    const perms = async () => (await t.ok(`{ viewer { permissions } }`, {}, agent.key)).viewer.permissions;
    expect(await perms()).toContain("START_OUTBOUND");
    const r = await t.ok(
      UPDATE,
      {
        input: { rolePermissions: [{ role: "AGENT", permissions: ["FORWARD", "REPLY_INBOUND", "FORWARD"] }] },
      },
      tn.apiKey,
    );
    // Stored de-duplicated in canonical order; other roles unchanged.
    expect(r.updateTenantSettings.rolePermissions).toEqual([
      { role: "ADMIN", permissions: expect.arrayContaining(["START_OUTBOUND", "SEE_BCC"]) },
      { role: "SUPERVISOR", permissions: expect.arrayContaining(["SEE_BCC"]) },
      { role: "AGENT", permissions: ["REPLY_INBOUND", "FORWARD"] },
    ]);
    expect(await perms()).toEqual(["REPLY_INBOUND", "FORWARD"]);
    // Other tenants are untouched.
    const mine = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    expect((await t.ok(`{ viewer { permissions } }`, {}, mine.key)).viewer.permissions).toContain(
      "START_OUTBOUND",
    );
    // Restating ADMIN's full list is accepted.
    const full = [
      "REPLY_INBOUND",
      "START_OUTBOUND",
      "FORWARD",
      "EDIT_SUBJECT",
      "CHANGE_FROM",
      "SEE_BCC",
      "TRANSFER",
    ];
    const ok = await t.ok(
      UPDATE,
      { input: { rolePermissions: [{ role: "ADMIN", permissions: full }] } },
      tn.apiKey,
    );
    expect(ok.updateTenantSettings.__typename).toBe("TenantSettings");
  });

  // Two admins saving at once (config probe, session 17): the settings were read outside any
  // lock and the whole permission map written back, so one admin's revocation came back
  // when the other changed only the reopen window, and the options that exclude each other
  // ended up both on. Both saves are held on the tenant row until both have started, then
  // let go in the order they came.
  describe("two admins saving at once", () => {
    async function concurrently(tenantId: string, saves: (() => Promise<unknown>)[]) {
      const holder = await t.db.sql.reserve();
      try {
        await holder`BEGIN`;
        await holder`SELECT 1 FROM tenant WHERE id = ${tenantId} FOR UPDATE`;
        const running: Promise<unknown>[] = [];
        for (const [i, save] of saves.entries()) {
          running.push(save());
          // Each save waits on the row (the old code: at its UPDATE, after its read).
          for (let n = 0; ; n++) {
            const [w] = await t.db.sql<{ n: number }[]>`
              SELECT count(*)::int AS n FROM pg_stat_activity
               WHERE wait_event_type = 'Lock' AND datname = current_database()`;
            if (w!.n >= i + 1) break;
            if (n > 200) throw new Error("the save never waited on the tenant row");
            await new Promise((r) => setTimeout(r, 10));
          }
        }
        await holder`COMMIT`;
        return await Promise.all(running);
      } finally {
        holder.release();
      }
    }

    it("a revocation is not undone by the other admin's unrelated change", async () => {
      const tn = await freshTenant();
      const other = await createUserWithKey(t.db.db, tn.tenantId, "ADMIN");
      await concurrently(tn.tenantId, [
        () =>
          t.ok(
            UPDATE,
            { input: { rolePermissions: [{ role: "AGENT", permissions: ["REPLY_INBOUND"] }] } },
            tn.apiKey,
          ),
        () => t.ok(UPDATE, { input: { reopenWindowDays: 12 } }, other.key),
      ]);
      const after = await t.ok(
        `{ tenantSettings { reopenWindowDays rolePermissions { role permissions } } }`,
        {},
        tn.apiKey,
      );
      expect(after.tenantSettings.reopenWindowDays).toBe(12);
      expect(after.tenantSettings.rolePermissions).toContainEqual({
        role: "AGENT",
        permissions: ["REPLY_INBOUND"],
      });
    });

    it("the options that exclude each other: the second save is refused", async () => {
      const tn = await freshTenant();
      const other = await createUserWithKey(t.db.db, tn.tenantId, "ADMIN");
      const [first, second] = (await concurrently(tn.tenantId, [
        () => t.ok(UPDATE, { input: { appendTicketOnFirstReply: true } }, tn.apiKey),
        () => t.ok(UPDATE, { input: { agentsMayEditSubject: true } }, other.key),
      ])) as { updateTenantSettings: Record<string, unknown> }[];
      expect(first!.updateTenantSettings.__typename).toBe("TenantSettings");
      expect(second!.updateTenantSettings).toMatchObject({
        __typename: "ValidationError",
        field: "agentsMayEditSubject",
      });
      const after = await t.ok(
        `{ tenantSettings { appendTicketOnFirstReply agentsMayEditSubject } }`,
        {},
        tn.apiKey,
      );
      expect(after.tenantSettings).toEqual({ appendTicketOnFirstReply: true, agentsMayEditSubject: false });
    });
  });

  it("lets only ADMIN change settings and only ADMIN/SUPERVISOR read them", async () => {
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const sup = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    const read = await t.gql(`{ tenantSettings { name } }`, {}, agent.key);
    expect(read.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    for (const key of [agent.key, sup.key]) {
      const r = await t.gql(UPDATE, { input: { name: "Hijacked" } }, key);
      expect(r.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    }
    const anon = await t.gql(`{ tenantSettings { name } }`, {}, null);
    expect(anon.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    expect((await t.ok(`{ tenantSettings { name } }`)).tenantSettings.name).toBe("Acme");
  });
});
