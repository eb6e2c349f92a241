import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import { execute, parse } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as dbSchema from "../../src/db/schema/index.js";
import { accessProfile, accessProfileQueue, user } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { PERMISSIONS } from "../../src/engine/domain.js";
import { loadViewer } from "../../src/engine/viewer.js";
import { schema } from "../../src/schema/index.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createReferencedObjects, globalId } from "../helpers/channel-fixtures.js";
import { createUserWithKey } from "../helpers/fixtures.js";

let t: TestApp;
let refs: Awaited<ReturnType<typeof createReferencedObjects>>;
let foreignRefs: Awaited<ReturnType<typeof createReferencedObjects>>;
let other: Awaited<ReturnType<typeof createTenantWithAdmin>>;
let inboundAddressId: string;
let outboundAddressId: string;
let outboundAccountId: string;
let inboundAccountId: string;

const QUEUE_FIELDS = `id name description calendarId strategy preferredAgentMode preferredAgentTimeoutSeconds order
  defaultPriority autoAssign dailyAutoAssignLimit autoAssignOnlyInBusinessHours autoAssignOnlyLoggedIn routablePresences
  offerRequired offerTimeoutSeconds manualParkingAllowed autoParking autoParkSpacingSeconds presentNextWhenAllParked
  customerResponseCountdownMinutes slaPolicyId signatureId autoReplyTemplateId autoReplyOnNew autoReplyOnClosed
  autoReplyOnPaused autoReplyOnIdle autoReplyIdleDays autoReplyAddress { id } defaultAddress { id } archivedAt`;

const CREATE = `mutation($input: QueueInput!) { createQueue(input: $input) {
  __typename
  ... on Queue { ${QUEUE_FIELDS} }
  ... on ValidationError { field problems { field message } }
} }`;
const UPDATE = `mutation($id: ID!, $input: QueueInput!) { updateQueue(id: $id, input: $input) {
  __typename
  ... on Queue { ${QUEUE_FIELDS} }
  ... on ValidationError { field problems { field message } }
  ... on NotFoundError { entity }
} }`;
const MEMBERS = `query($id: ID!) { node(id: $id) { ... on Queue {
  members { agents { id } teams { id name } }
  addresses { id address }
} } }`;

let n = 0;
const uniqueName = () => `Queue ${++n}`;

async function createAddress(address: string, accountId: string): Promise<string> {
  const r = await t.ok(
    `mutation($input: EmailAddressInput!) { createEmailAddress(input: $input) { __typename ... on EmailAddress { id } } }`,
    { input: { address, name: address, accountId } },
  );
  return r.createEmailAddress.id;
}

beforeAll(async () => {
  t = await startTestApp();
  refs = await createReferencedObjects(t.db.db, t.tenantId);
  other = await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "x@other.test" });
  foreignRefs = await createReferencedObjects(t.db.db, other.tenantId);
  const inbound = await t.ok(
    `mutation { createMailAccount(input: { name: "In", imapHost: "imap.acme.test", imapUser: "u", smtpHost: "smtp.acme.test" }) { ... on MailAccount { id } } }`,
  );
  inboundAccountId = inbound.createMailAccount.id;
  const outbound = await t.ok(
    `mutation { createMailAccount(input: { name: "Out", kind: OUTBOUND_ONLY, smtpHost: "smtp.acme.test" }) { ... on MailAccount { id } } }`,
  );
  outboundAccountId = outbound.createMailAccount.id;
  inboundAddressId = await createAddress("support@acme.test", inboundAccountId);
  outboundAddressId = await createAddress("noreply@acme.test", outboundAccountId);
});
afterAll(async () => {
  await t?.stop();
});

async function create(input: Record<string, unknown>, key?: string) {
  return (await t.ok(CREATE, { input }, key)).createQueue;
}

describe("queues", () => {
  it("creates with defaults", async () => {
    const q = await create({ name: "Defaults" });
    expect(q).toMatchObject({
      __typename: "Queue",
      description: "",
      calendarId: null,
      strategy: "LEAST_ACTIVE",
      preferredAgentMode: "WAIT_WHILE_OFFLINE",
      preferredAgentTimeoutSeconds: 3600,
      order: "PRIORITY_SCORE",
      defaultPriority: 0,
      autoAssign: true,
      dailyAutoAssignLimit: null,
      autoAssignOnlyInBusinessHours: false,
      autoAssignOnlyLoggedIn: true,
      routablePresences: ["AVAILABLE"],
      offerRequired: false,
      offerTimeoutSeconds: 120,
      manualParkingAllowed: true,
      autoParking: false,
      autoParkSpacingSeconds: 30,
      presentNextWhenAllParked: false,
      customerResponseCountdownMinutes: null,
      autoReplyIdleDays: 15,
      defaultAddress: null,
      autoReplyAddress: null,
    });
  });

  it("stores every setting, updates, lists and archives", async () => {
    const input = {
      name: "Billing",
      description: "Invoices and refunds",
      calendarId: refs.calendarId,
      defaultAddressId: inboundAddressId,
      strategy: "PREFERRED_AGENT",
      preferredAgentMode: "WAIT_WHILE_BUSY",
      preferredAgentTimeoutSeconds: 5_256_000,
      order: "SLA_REMAINING",
      defaultPriority: 10,
      autoAssign: false,
      dailyAutoAssignLimit: 40,
      autoAssignOnlyInBusinessHours: true,
      autoAssignOnlyLoggedIn: false,
      routablePresences: ["AVAILABLE", "BUSY"],
      offerRequired: true,
      offerTimeoutSeconds: 86_400,
      manualParkingAllowed: false,
      autoParking: true,
      autoParkSpacingSeconds: 3600,
      presentNextWhenAllParked: true,
      customerResponseCountdownMinutes: 525_600,
      slaPolicyId: refs.slaPolicyId,
      signatureId: refs.signatureId,
      autoReplyTemplateId: refs.autoReplyTemplateId,
      autoReplyOnNew: true,
      autoReplyOnClosed: true,
      autoReplyOnPaused: true,
      autoReplyOnIdle: true,
      autoReplyIdleDays: 365,
      autoReplyAddressId: outboundAddressId,
    };
    const q = await create(input);
    const { defaultAddressId, autoReplyAddressId, ...plain } = input;
    expect(q).toMatchObject({
      ...plain,
      defaultAddress: { id: defaultAddressId },
      autoReplyAddress: { id: autoReplyAddressId },
    });
    const u = await t.ok(UPDATE, {
      id: q.id,
      input: {
        dailyAutoAssignLimit: null,
        customerResponseCountdownMinutes: null,
        strategy: "MOST_BUSY",
        description: "x",
      },
    });
    expect(u.updateQueue).toMatchObject({
      dailyAutoAssignLimit: null,
      customerResponseCountdownMinutes: null,
      strategy: "MOST_BUSY",
      autoParking: true,
      calendarId: refs.calendarId,
    });
    const list = await t.ok(`{ queues(search: "bill") { edges { node { id } } } }`);
    expect(list.queues.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([q.id]);
    await t.ok(`mutation($id: ID!) { archiveQueue(id: $id) { ... on Queue { archivedAt } } }`, { id: q.id });
    const after = await t.ok(
      `{ queues(search: "bill") { edges { node { id } } } all: queues(search: "bill", includeArchived: true) { edges { node { id } } } }`,
    );
    expect(after.queues.edges).toHaveLength(0);
    expect(after.all.edges).toHaveLength(1);
    // The archived queue's name is free again.
    expect((await create({ name: "billing" })).__typename).toBe("Queue");
  });

  it("refuses to archive a queue that still receives an address's mail or has conversations waiting", async () => {
    const q = (await create({ name: uniqueName() })) as { id: string };
    const addressId = await createAddress("archive-me@acme.test", inboundAccountId);
    const route = (queueId: string | null) =>
      t.ok(
        `mutation($id: ID!, $q: ID) { updateEmailAddress(id: $id, input: { queueId: $q }) { __typename } }`,
        { id: addressId, q: queueId },
      );
    await route(q.id);
    const raw =
      "From: a@customer.example\r\nSubject: Waiting\r\nMessage-ID: <arch-1@customer.example>\r\n\r\nhi\r\n";
    const ingested = await t.ok(
      `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw) { ... on IngestOutcome { conversation { id } } } }`,
      { a: addressId, raw },
    );
    const archive = async () =>
      (
        await t.ok(
          `mutation($id: ID!) { archiveQueue(id: $id) { __typename ... on Queue { archivedAt } ... on ConflictError { code message } } }`,
          { id: q.id },
        )
      ).archiveQueue;
    expect(await archive()).toEqual({
      __typename: "ConflictError",
      code: "QUEUE_IN_USE",
      message:
        "queue still in use: it receives the mail of archive-me@acme.test; 1 conversation(s) are waiting in it — move them first",
    });
    await route(null);
    expect(await archive()).toMatchObject({
      code: "QUEUE_IN_USE",
      message: expect.stringMatching(/^queue still in use: 1 conversation/),
    });
    const convId = Buffer.from(ingested.ingestRawMessage.conversation.id, "base64").toString().split(":")[1]!;
    await t.db.db
      .update(dbSchema.conversation)
      .set({ workState: "DONE" })
      .where(eq(dbSchema.conversation.id, convId));
    expect(await archive()).toMatchObject({ __typename: "Queue", archivedAt: expect.any(String) });
  });

  it("refuses a duplicate active name case-insensitively", async () => {
    await create({ name: "Returns" });
    const r = await create({ name: "RETURNS" });
    expect(r).toMatchObject({ __typename: "ValidationError", field: "name" });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["empty name", { name: "" }, "name"],
    ["name with control char", { name: "a\tb" }, "name"],
    ["long description", { description: "x".repeat(2001) }, "description"],
    ["preferred timeout 0", { preferredAgentTimeoutSeconds: 0 }, "preferredAgentTimeoutSeconds"],
    [
      "preferred timeout too long",
      { preferredAgentTimeoutSeconds: 5_256_001 },
      "preferredAgentTimeoutSeconds",
    ],
    ["priority negative", { defaultPriority: -1 }, "defaultPriority"],
    ["priority too high", { defaultPriority: 1001 }, "defaultPriority"],
    ["daily limit 0", { dailyAutoAssignLimit: 0 }, "dailyAutoAssignLimit"],
    [
      "business hours without calendar",
      { autoAssignOnlyInBusinessHours: true },
      "autoAssignOnlyInBusinessHours",
    ],
    ["no routable presence", { routablePresences: [] }, "routablePresences"],
    ["offer timeout 4", { offerTimeoutSeconds: 4 }, "offerTimeoutSeconds"],
    ["offer timeout too long", { offerTimeoutSeconds: 86_401 }, "offerTimeoutSeconds"],
    ["park spacing negative", { autoParkSpacingSeconds: -1 }, "autoParkSpacingSeconds"],
    ["park spacing too long", { autoParkSpacingSeconds: 3601 }, "autoParkSpacingSeconds"],
    ["countdown 0", { customerResponseCountdownMinutes: 0 }, "customerResponseCountdownMinutes"],
    ["countdown too long", { customerResponseCountdownMinutes: 525_601 }, "customerResponseCountdownMinutes"],
    ["idle days 0", { autoReplyIdleDays: 0 }, "autoReplyIdleDays"],
    ["idle days 366", { autoReplyIdleDays: 366 }, "autoReplyIdleDays"],
    ["auto-reply without template", { autoReplyOnNew: true }, "autoReplyTemplateId"],
    ["outbound-only default address", { defaultAddressId: "OUTBOUND" }, "defaultAddressId"],
    ["foreign calendar", { calendarId: "FOREIGN:calendarId" }, "calendarId"],
    ["foreign SLA policy", { slaPolicyId: "FOREIGN:slaPolicyId" }, "slaPolicyId"],
    ["foreign signature", { signatureId: "FOREIGN:signatureId" }, "signatureId"],
    [
      "foreign auto-reply template",
      { autoReplyTemplateId: "FOREIGN:autoReplyTemplateId" },
      "autoReplyTemplateId",
    ],
    ["malformed calendar", { calendarId: "garbage" }, "calendarId"],
    ["wrong-type default address", { defaultAddressId: "ACCOUNT" }, "defaultAddressId"],
    [
      "unknown auto-reply address",
      { autoReplyAddressId: globalId("EmailAddress", "00000000-0000-4000-8000-000000000000") },
      "autoReplyAddressId",
    ],
  ])("rejects %s", async (_label, patch, field) => {
    const input: Record<string, unknown> = { name: uniqueName(), ...patch };
    for (const [k, v] of Object.entries(input)) {
      if (typeof v === "string" && v.startsWith("FOREIGN:"))
        input[k] = foreignRefs[v.slice(8) as keyof typeof foreignRefs];
    }
    if (input.defaultAddressId === "OUTBOUND") input.defaultAddressId = outboundAddressId;
    if (input.defaultAddressId === "ACCOUNT") input.defaultAddressId = inboundAccountId;
    const r = await create(input);
    expect(r.__typename).toBe("ValidationError");
    expect(r.problems.map((p: { field: string }) => p.field)).toContain(field);
  });

  it("accepts the boundary values", async () => {
    const q = await create({
      name: uniqueName(),
      preferredAgentTimeoutSeconds: 1,
      offerTimeoutSeconds: 5,
      autoParkSpacingSeconds: 0,
      customerResponseCountdownMinutes: 1,
      autoReplyIdleDays: 1,
      dailyAutoAssignLimit: 1,
    });
    expect(q.__typename).toBe("Queue");
  });

  it("validates cross-field rules against the stored queue on update", async () => {
    const q = await create({
      name: uniqueName(),
      calendarId: refs.calendarId,
      autoAssignOnlyInBusinessHours: true,
    });
    const r = await t.ok(UPDATE, { id: q.id, input: { calendarId: null } });
    expect(r.updateQueue).toMatchObject({ __typename: "ValidationError", field: "calendarId" });
    const withTpl = await t.ok(UPDATE, {
      id: q.id,
      input: { autoReplyTemplateId: refs.autoReplyTemplateId, autoReplyOnClosed: true },
    });
    expect(withTpl.updateQueue.autoReplyOnClosed).toBe(true);
    const drop = await t.ok(UPDATE, { id: q.id, input: { autoReplyTemplateId: null } });
    expect(drop.updateQueue).toMatchObject({ __typename: "ValidationError", field: "autoReplyTemplateId" });
  });

  it("refuses turning an account outbound-only while its address is a queue's default", async () => {
    const accId = (
      await t.ok(
        `mutation { createMailAccount(input: { name: "Switch", imapHost: "imap.acme.test", imapUser: "u", smtpHost: "smtp.acme.test" }) { ... on MailAccount { id } } }`,
      )
    ).createMailAccount.id;
    const addr = await createAddress("switch@acme.test", accId);
    const q = await create({ name: uniqueName(), defaultAddressId: addr });
    expect(q.defaultAddress).toEqual({ id: addr });
    const toOutbound = `mutation($id: ID!) { updateMailAccount(id: $id, input: { kind: OUTBOUND_ONLY }) {
      __typename ... on MailAccount { kind } ... on ValidationError { field message } } }`;
    const r = await t.ok(toOutbound, { id: accId });
    expect(r.updateMailAccount).toMatchObject({ __typename: "ValidationError", field: "kind" });
    expect(r.updateMailAccount.message).toContain(q.name);
    await t.ok(UPDATE, { id: q.id, input: { defaultAddressId: null } });
    expect((await t.ok(toOutbound, { id: accId })).updateMailAccount).toMatchObject({
      kind: "OUTBOUND_ONLY",
    });
  });
});

describe("members and addresses", () => {
  it("adds, lists and removes agents and teams; sets addresses", async () => {
    const q = await create({ name: uniqueName() });
    const a1 = await createUserWithKey(t.db.db, t.tenantId, "AGENT", { name: "Alice" });
    const a2 = await createUserWithKey(t.db.db, t.tenantId, "AGENT", { name: "Bob" });
    const team = await t.ok(`mutation { createTeam(input: { name: "Tier 2" }) { ... on Team { id } } }`);
    const teamId = team.createTeam.id;
    const add = `mutation($q: ID!, $u: [ID!], $t: [ID!]) { addQueueMembers(queueId: $q, userIds: $u, teamIds: $t) {
      __typename ... on Queue { members { agents { id name } teams { id } } } ... on ValidationError { field problems { field } } } }`;
    const u1 = globalId("User", a1.id);
    const u2 = globalId("User", a2.id);
    const r = await t.ok(add, { q: q.id, u: [u1, u2], t: [teamId] });
    expect(r.addQueueMembers.members).toEqual({
      agents: [
        { id: u1, name: "Alice" },
        { id: u2, name: "Bob" },
      ],
      teams: [{ id: teamId }],
    });
    // Adding again is a no-op, not a duplicate.
    const again = await t.ok(add, { q: q.id, u: [u1], t: [teamId] });
    expect(again.addQueueMembers.members.agents).toHaveLength(2);

    const foreignUser = await createUserWithKey(t.db.db, other.tenantId, "AGENT");
    const bad = await t.ok(add, { q: q.id, u: [u1, globalId("User", foreignUser.id)], t: ["junk"] });
    expect(bad.addQueueMembers.__typename).toBe("ValidationError");
    expect(bad.addQueueMembers.problems.map((p: { field: string }) => p.field).sort()).toEqual([
      "teamIds[0]",
      "userIds[1]",
    ]);

    const rm = await t.ok(
      `mutation($q: ID!, $u: [ID!]) { removeQueueMembers(queueId: $q, userIds: $u) { ... on Queue { members { agents { id } teams { id } } } } }`,
      { q: q.id, u: [u1] },
    );
    expect(rm.removeQueueMembers.members).toEqual({ agents: [{ id: u2 }], teams: [{ id: teamId }] });

    const set = `mutation($q: ID!, $a: [ID!]!) { setQueueAddresses(queueId: $q, addressIds: $a) {
      __typename ... on Queue { addresses { id } } ... on ValidationError { field } } }`;
    const s1 = await t.ok(set, { q: q.id, a: [inboundAddressId, outboundAddressId] });
    expect(s1.setQueueAddresses.addresses.map((x: { id: string }) => x.id).sort()).toEqual(
      [inboundAddressId, outboundAddressId].sort(),
    );
    const s2 = await t.ok(set, { q: q.id, a: [outboundAddressId] });
    expect(s2.setQueueAddresses.addresses).toEqual([{ id: outboundAddressId }]);
    const s3 = await t.ok(set, { q: q.id, a: ["junk"] });
    expect(s3.setQueueAddresses).toEqual({ __typename: "ValidationError", field: "addressIds[0]" });
    const read = await t.ok(MEMBERS, { id: q.id });
    expect(read.node.addresses).toEqual([{ id: outboundAddressId, address: "noreply@acme.test" }]);
  });
});

describe("visibility and authorization", () => {
  it("forbids every write to agents and supervisors", async () => {
    const q = await create({ name: uniqueName() });
    for (const role of ["AGENT", "SUPERVISOR"] as const) {
      const u = await createUserWithKey(t.db.db, t.tenantId, role);
      for (const [query, vars] of [
        [CREATE, { input: { name: `by ${role}` } }],
        [UPDATE, { id: q.id, input: { name: `by ${role}` } }],
        [`mutation($id: ID!) { archiveQueue(id: $id) { __typename } }`, { id: q.id }],
        [`mutation($id: ID!) { addQueueMembers(queueId: $id, userIds: []) { __typename } }`, { id: q.id }],
        [`mutation($id: ID!) { removeQueueMembers(queueId: $id, userIds: []) { __typename } }`, { id: q.id }],
        [
          `mutation($id: ID!) { setQueueAddresses(queueId: $id, addressIds: []) { __typename } }`,
          { id: q.id },
        ],
      ] as const) {
        const r = await t.gql(query, vars, u.key);
        expect(r.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      }
    }
  });

  it("limits a supervisor with an access profile to its queues", async () => {
    const a = await create({ name: "Profile A" });
    const b = await create({ name: "Profile B" });
    const [profile] = await t.db.db
      .insert(accessProfile)
      .values({ tenantId: t.tenantId, name: "Only A" })
      .returning();
    const aUuid = Buffer.from(a.id, "base64").toString().split(":")[1]!;
    await t.db.db
      .insert(accessProfileQueue)
      .values({ tenantId: t.tenantId, accessProfileId: profile!.id, queueId: aUuid });
    const sup = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR", { accessProfileId: profile!.id });

    const list = await t.ok(`{ queues(first: 100) { edges { node { id } } } }`, {}, sup.key);
    expect(list.queues.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([a.id]);
    const seeA = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on Queue { name } } }`,
      { id: a.id },
      sup.key,
    );
    expect(seeA.node).toEqual({ name: "Profile A" });
    const seeB = await t.ok(`query($id: ID!) { node(id: $id) { id } }`, { id: b.id }, sup.key);
    expect(seeB.node).toBeNull();

    // An address routed to B does not reveal B to this supervisor.
    const addr = await t.ok(
      `mutation($q: ID!) { createEmailAddress(input: { address: "b-route@acme.test", name: "B", queueId: $q }) { ... on EmailAddress { id } } }`,
      { q: b.id },
    );
    const viaAddress = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on EmailAddress { queue { id } } } }`,
      { id: addr.createEmailAddress.id },
      sup.key,
    );
    expect(viaAddress.node.queue).toBeNull();
    // The admin sees both.
    const admin = await t.ok(`query($id: ID!) { node(id: $id) { id } }`, { id: b.id });
    expect(admin.node).toEqual({ id: b.id });
  });

  it("shows an agent without a profile the queues it is a member of, directly or via its team", async () => {
    const mine = await create({ name: uniqueName() });
    const teams = await create({ name: uniqueName() });
    const notMine = await create({ name: uniqueName() });
    const team = (await t.ok(`mutation { createTeam(input: { name: "Team V" }) { ... on Team { id } } }`))
      .createTeam.id;
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const teamUuid = Buffer.from(team, "base64").toString().split(":")[1]!;
    await t.db.db.update(user).set({ teamId: teamUuid }).where(eq(user.id, agent.id));
    await t.ok(`mutation($q: ID!, $u: [ID!]) { addQueueMembers(queueId: $q, userIds: $u) { __typename } }`, {
      q: mine.id,
      u: [globalId("User", agent.id)],
    });
    await t.ok(`mutation($q: ID!, $t: [ID!]) { addQueueMembers(queueId: $q, teamIds: $t) { __typename } }`, {
      q: teams.id,
      t: [team],
    });
    const list = await t.ok(`{ queues(first: 100) { edges { node { id } } } }`, {}, agent.key);
    const ids = list.queues.edges.map((e: { node: { id: string } }) => e.node.id);
    expect(ids.sort()).toEqual([mine.id, teams.id].sort());
    expect(ids).not.toContain(notMine.id);
  });

  it("treats another tenant's queue as not found", async () => {
    const theirs = await create({ name: "Theirs" }, other.apiKey);
    const r = await t.ok(UPDATE, { id: theirs.id, input: { name: "Mine" } });
    expect(r.updateQueue).toMatchObject({ __typename: "NotFoundError", entity: "Queue" });
    const m = await t.ok(
      `mutation($id: ID!) { addQueueMembers(queueId: $id, userIds: []) { __typename ... on NotFoundError { entity } } }`,
      { id: theirs.id },
    );
    expect(m.addQueueMembers).toEqual({ __typename: "NotFoundError", entity: "Queue" });
    const node = await t.ok(`query($id: ID!) { node(id: $id) { id } }`, { id: theirs.id });
    expect(node.node).toBeNull();
    const list = await t.ok(`{ queues(first: 100) { edges { node { name } } } }`);
    expect(list.queues.edges.map((e: { node: { name: string } }) => e.node.name)).not.toContain("Theirs");
  });
});

describe("batching", () => {
  /** Runs a query with an engine whose drizzle instance counts statements. */
  async function countQueries(source: string): Promise<number> {
    let count = 0;
    const db = drizzle(t.db.sql, {
      schema: dbSchema,
      casing: "snake_case",
      logger: { logQuery: () => void count++ },
    });
    const viewer = await loadViewer(t.db.db, t.adminId, {
      ADMIN: [...PERMISSIONS],
      SUPERVISOR: [],
      AGENT: [],
    });
    const r = await execute({
      schema,
      document: parse(source),
      contextValue: { engine: { ...t.app.engine, db }, viewer, loaders: new Map() },
    });
    expect(r.errors).toBeUndefined();
    return count;
  }

  it("loads members, addresses and address references without one query per queue", async () => {
    const source = `{ queues(first: 100) { edges { node {
      name members { agents { id } teams { id } } addresses { address queue { name } account { name } }
      defaultAddress { address } autoReplyAddress { address }
    } } } }`;
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const addQueue = async () => {
      const q = await create({
        name: uniqueName(),
        defaultAddressId: inboundAddressId,
        autoReplyAddressId: outboundAddressId,
      });
      await t.ok(
        `mutation($q: ID!, $u: [ID!]) { addQueueMembers(queueId: $q, userIds: $u) { __typename } }`,
        {
          q: q.id,
          u: [globalId("User", agent.id)],
        },
      );
      await t.ok(
        `mutation($q: ID!, $a: [ID!]!) { setQueueAddresses(queueId: $q, addressIds: $a) { __typename } }`,
        {
          q: q.id,
          a: [inboundAddressId, outboundAddressId],
        },
      );
    };
    await addQueue();
    const few = await countQueries(source);
    for (let i = 0; i < 4; i++) await addQueue();
    const many = await countQueries(source);
    // The list, members (2), addresses, their queues and accounts, default/auto-reply addresses.
    expect(few).toBeGreaterThanOrEqual(5);
    expect(many).toBe(few);
  });
});
