import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queue, queueMember } from "../../src/db/schema/index.js";
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

const gid = (type: string, id: string) => Buffer.from(`${type}:${id}`).toString("base64");
const RESULT = `__typename
  ... on ValidationError { field problems { field message } }
  ... on NotFoundError { entity }
  ... on ConflictError { code }`;
const PROFILE = `id name allQueues queueIds archivedAt`;
const CREATE = `mutation($input: AccessProfileInput!) { createAccessProfile(input: $input) { ${RESULT} ... on AccessProfile { ${PROFILE} } } }`;
const UPDATE = `mutation($id: ID!, $input: AccessProfileInput!) { updateAccessProfile(id: $id, input: $input) { ${RESULT} ... on AccessProfile { ${PROFILE} } } }`;
const ARCHIVE = `mutation($id: ID!) { archiveAccessProfile(id: $id) { ${RESULT} ... on AccessProfile { ${PROFILE} } } }`;
const UPDATE_USER = `mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { ${RESULT} ... on User { accessProfile { id } } } }`;

/** Queues are written directly: the queue API is built elsewhere. Returns the raw UUID. */
async function makeQueue(name: string, tenantId = t.tenantId, archived = false): Promise<string> {
  const [row] = await t.db.db
    .insert(queue)
    .values({ tenantId, name, archivedAt: archived ? new Date() : null })
    .returning({ id: queue.id });
  return row!.id;
}

describe("access profiles", () => {
  it("creates, reads, lists, updates and archives a profile", async () => {
    const a = await makeQueue("CRUD A");
    const b = await makeQueue("CRUD B");
    const c = await t.ok(CREATE, { input: { name: "Billing only", queueIds: [gid("Queue", a)] } });
    expect(c.createAccessProfile).toMatchObject({
      __typename: "AccessProfile",
      name: "Billing only",
      allQueues: false,
      queueIds: [gid("Queue", a)],
    });
    const id = c.createAccessProfile.id;
    const both = await t.ok(UPDATE, { id, input: { queueIds: [gid("Queue", a), gid("Queue", b)] } });
    expect([...both.updateAccessProfile.queueIds].sort()).toEqual([gid("Queue", a), gid("Queue", b)].sort());
    const renamed = await t.ok(UPDATE, { id, input: { name: "Billing+" } });
    expect(renamed.updateAccessProfile.queueIds).toHaveLength(2);
    const all = await t.ok(UPDATE, { id, input: { allQueues: true } });
    expect(all.updateAccessProfile).toMatchObject({ allQueues: true, queueIds: [] });
    const got = await t.ok(`query($id: ID!) { accessProfile(id: $id) { name } node(id: $id) { id } }`, {
      id,
    });
    expect(got).toEqual({ accessProfile: { name: "Billing+" }, node: { id } });
    const arch = await t.ok(ARCHIVE, { id });
    expect(arch.archiveAccessProfile.archivedAt).toBeTruthy();
    const lists = await t.ok(
      `{ a: accessProfiles(search: "billing") { edges { node { id } } } b: accessProfiles(search: "billing", includeArchived: true) { edges { node { id } } } }`,
    );
    expect(lists.a.edges).toEqual([]);
    expect(lists.b.edges).toEqual([{ node: { id } }]);
  });

  it("validates names and queue references", async () => {
    const mine = await makeQueue("Valid Q");
    const archivedQ = await makeQueue("Archived Q", t.tenantId, true);
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "Q2", adminEmail: "q@q2.test" });
    const foreignQ = await makeQueue("Foreign Q", other.tenantId);
    await t.ok(CREATE, { input: { name: "Taken" } });
    const cases: [Record<string, unknown>, string][] = [
      [{}, "name"],
      [{ name: "" }, "name"],
      [{ name: "x".repeat(101) }, "name"],
      [{ name: "TAKEN" }, "name"],
      [{ name: "ok", queueIds: [gid("Queue", mine), gid("Queue", foreignQ)] }, "queueIds[1]"],
      [{ name: "ok", queueIds: [gid("Queue", archivedQ)] }, "queueIds[0]"],
      [{ name: "ok", queueIds: [gid("Queue", "00000000-0000-4000-8000-000000000000")] }, "queueIds[0]"],
      [{ name: "ok", queueIds: ["garbage"] }, "queueIds[0]"],
      [{ name: "ok", queueIds: [gid("Team", mine)] }, "queueIds[0]"],
      [{ name: "ok", queueIds: [gid("Queue", mine), gid("Queue", mine)] }, "queueIds[1]"],
      [{ name: "ok", allQueues: true, queueIds: [gid("Queue", mine)] }, "queueIds"],
    ];
    for (const [input, field] of cases) {
      const r = await t.ok(CREATE, { input });
      expect(r.createAccessProfile, JSON.stringify(input)).toMatchObject({
        __typename: "ValidationError",
        field,
      });
    }
    // An update with a foreign queue leaves the set unchanged.
    const p = await t.ok(CREATE, { input: { name: "Keep", queueIds: [gid("Queue", mine)] } });
    const bad = await t.ok(UPDATE, {
      id: p.createAccessProfile.id,
      input: { queueIds: [gid("Queue", foreignQ)] },
    });
    expect(bad.updateAccessProfile).toMatchObject({ __typename: "ValidationError", field: "queueIds[0]" });
    const still = await t.ok(`query($id: ID!) { accessProfile(id: $id) { queueIds } }`, {
      id: p.createAccessProfile.id,
    });
    expect(still.accessProfile.queueIds).toEqual([gid("Queue", mine)]);
  });

  it("limits a SUPERVISOR's visible queues to its profile, from the next request on", async () => {
    const qa = await makeQueue("Visible A");
    const qb = await makeQueue("Visible B");
    const sup = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    const viewerQueues = async (key: string) =>
      (await t.ok(`{ viewer { queueIds } }`, {}, key)).viewer.queueIds as string[] | null;

    // No profile: a supervisor sees every queue (null = all).
    expect(await viewerQueues(sup.key)).toBeNull();
    const p = await t.ok(CREATE, { input: { name: "Only A", queueIds: [gid("Queue", qa)] } });
    const profileId = p.createAccessProfile.id;
    const assigned = await t.ok(UPDATE_USER, {
      id: gid("User", sup.id),
      input: { accessProfileId: profileId },
    });
    expect(assigned.updateUser.accessProfile).toEqual({ id: profileId });
    expect(await viewerQueues(sup.key)).toEqual([gid("Queue", qa)]);
    expect(await viewerQueues(sup.key)).not.toContain(gid("Queue", qb));

    await t.ok(UPDATE, { id: profileId, input: { queueIds: [gid("Queue", qb)] } });
    expect(await viewerQueues(sup.key)).toEqual([gid("Queue", qb)]);
    await t.ok(UPDATE, { id: profileId, input: { allQueues: true } });
    expect(await viewerQueues(sup.key)).toBeNull();
    // ADMINs always see everything, whatever profile they hold.
    await t.ok(UPDATE, { id: profileId, input: { allQueues: false, queueIds: [gid("Queue", qa)] } });
    const admin = await createUserWithKey(t.db.db, t.tenantId, "ADMIN");
    await t.ok(UPDATE_USER, { id: gid("User", admin.id), input: { accessProfileId: profileId } });
    expect(await viewerQueues(admin.key)).toBeNull();
    // Clearing the profile restores the role default.
    await t.ok(UPDATE_USER, { id: gid("User", sup.id), input: { accessProfileId: null } });
    expect(await viewerQueues(sup.key)).toBeNull();
  });

  it("gives an AGENT without a profile its member queues and lets it read only its own profile", async () => {
    const qa = await makeQueue("Member A");
    await makeQueue("Member B");
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    await t.db.db.insert(queueMember).values({ tenantId: t.tenantId, queueId: qa, userId: agent.id });
    expect((await t.ok(`{ viewer { queueIds } }`, {}, agent.key)).viewer.queueIds).toEqual([
      gid("Queue", qa),
    ]);

    const mine = (await t.ok(CREATE, { input: { name: "Agent own", queueIds: [gid("Queue", qa)] } }))
      .createAccessProfile.id;
    const notMine = (await t.ok(CREATE, { input: { name: "Someone else's" } })).createAccessProfile.id;
    await t.ok(UPDATE_USER, { id: gid("User", agent.id), input: { accessProfileId: mine } });
    const r = await t.ok(
      `query($a: ID!, $b: ID!) { a: accessProfile(id: $a) { name } b: accessProfile(id: $b) { name } n: node(id: $b) { id } viewer { user { accessProfile { name } } } }`,
      { a: mine, b: notMine },
      agent.key,
    );
    expect(r).toEqual({
      a: { name: "Agent own" },
      b: null,
      n: null,
      viewer: { user: { accessProfile: { name: "Agent own" } } },
    });
    const list = await t.gql(`{ accessProfiles { edges { node { id } } } }`, {}, agent.key);
    expect(list.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
  });

  it("refuses to archive a profile still held by active users, and to assign an archived one", async () => {
    const held = (await t.ok(CREATE, { input: { name: "Held", allQueues: true } })).createAccessProfile.id;
    const u = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    await t.ok(UPDATE_USER, { id: gid("User", u.id), input: { accessProfileId: held } });
    const r = await t.ok(ARCHIVE, { id: held });
    expect(r.archiveAccessProfile).toMatchObject({ __typename: "ConflictError", code: "IN_USE" });
    await t.ok(UPDATE_USER, { id: gid("User", u.id), input: { accessProfileId: null } });
    const ok = await t.ok(ARCHIVE, { id: held });
    expect(ok.archiveAccessProfile.archivedAt).toBeTruthy();
    const assign = await t.ok(UPDATE_USER, { id: gid("User", u.id), input: { accessProfileId: held } });
    expect(assign.updateUser).toMatchObject({ __typename: "ValidationError", field: "accessProfileId" });
    // The name of an archived profile is free again (partial unique index).
    const again = await t.ok(CREATE, { input: { name: "Held" } });
    expect(again.createAccessProfile.__typename).toBe("AccessProfile");
  });

  it("forbids writes to AGENT and SUPERVISOR and hides foreign profiles", async () => {
    const own = (await t.ok(CREATE, { input: { name: "Guarded" } })).createAccessProfile.id;
    for (const role of ["AGENT", "SUPERVISOR"] as const) {
      const u = await createUserWithKey(t.db.db, t.tenantId, role);
      for (const [q, v] of [
        [CREATE, { input: { name: `by ${role}` } }],
        [UPDATE, { id: own, input: { allQueues: true } }],
        [ARCHIVE, { id: own }],
      ] as const) {
        const r = await t.gql(q, v, u.key);
        expect(r.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      }
    }
    const sup = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    const list = await t.ok(`{ accessProfiles(search: "guarded") { edges { node { name } } } }`, {}, sup.key);
    expect(list.accessProfiles.edges).toEqual([{ node: { name: "Guarded" } }]);

    const other = await createTenantWithAdmin(t.db.db, { tenantName: "P2", adminEmail: "p@p2.test" });
    const theirs = (await t.ok(CREATE, { input: { name: "Theirs" } }, other.apiKey)).createAccessProfile.id;
    const get = await t.ok(`query($id: ID!) { accessProfile(id: $id) { id } node(id: $id) { id } }`, {
      id: theirs,
    });
    expect(get).toEqual({ accessProfile: null, node: null });
    for (const [q, v, key] of [
      [UPDATE, { id: theirs, input: { name: "Mine" } }, "updateAccessProfile"],
      [ARCHIVE, { id: theirs }, "archiveAccessProfile"],
      [UPDATE, { id: "garbage", input: { name: "Mine" } }, "updateAccessProfile"],
    ] as const) {
      const r = await t.ok(q, v);
      expect(r[key]).toMatchObject({ __typename: "NotFoundError", entity: "AccessProfile" });
    }
    const me = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const assign = await t.ok(UPDATE_USER, { id: gid("User", me.id), input: { accessProfileId: theirs } });
    expect(assign.updateUser).toMatchObject({ __typename: "ValidationError", field: "accessProfileId" });
  });
});
