import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { user } from "../../src/db/schema/index.js";
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
  ... on ConflictError { code }
  ... on ForbiddenError { message }`;
const USER_FIELDS = `id email name alias role archivedAt
  team { id name } accessProfile { id name }
  inboxLimit { mode value } effectiveInboxLimit { off limit source }
  skills { proficiency skill { id name } }`;

const CREATE_USER = `mutation($input: CreateUserInput!) { createUser(input: $input) { ${RESULT} ... on User { ${USER_FIELDS} } } }`;
const UPDATE_USER = `mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) { ${RESULT} ... on User { ${USER_FIELDS} } } }`;
const ARCHIVE_USER = `mutation($id: ID!) { archiveUser(id: $id) { ${RESULT} ... on User { id archivedAt } } }`;
const CREATE_TEAM = `mutation($input: TeamInput!) { createTeam(input: $input) { ... on Team { id } } }`;
const CREATE_SKILL = `mutation($input: SkillInput!) { createSkill(input: $input) { ${RESULT} ... on Skill { id name description archivedAt } } }`;
const SET_SKILLS = `mutation($userId: ID!, $skills: [AgentSkillInput!]!) { setAgentSkills(userId: $userId, skills: $skills) { ${RESULT} ... on User { skills { proficiency skill { name } } } } }`;
const CREATE_KEY = `mutation($userId: ID!, $name: String!) { createApiKey(userId: $userId, name: $name) { ${RESULT} ... on CreatedApiKey { key apiKey { id name prefix userId createdAt lastUsedAt revokedAt } } } }`;

let counter = 0;
async function newUser(input: Record<string, unknown> = {}, key?: string) {
  counter += 1;
  const r = await t.ok(
    CREATE_USER,
    { input: { email: `person${counter}@acme.test`, name: `Person ${counter}`, role: "AGENT", ...input } },
    key,
  );
  expect(r.createUser.__typename).toBe("User");
  return r.createUser;
}
async function newTeam(name: string, inboxLimit?: Record<string, unknown>) {
  const r = await t.ok(CREATE_TEAM, { input: { name, inboxLimit } });
  return r.createTeam.id as string;
}
async function newSkill(name: string) {
  const r = await t.ok(CREATE_SKILL, { input: { name } });
  expect(r.createSkill.__typename).toBe("Skill");
  return r.createSkill.id as string;
}

describe("users", () => {
  it("creates, reads, lists, updates and archives a user", async () => {
    const teamId = await newTeam("Tier 1", { mode: "LIMIT", value: 4 });
    const created = await newUser({
      email: "Ada@Acme.TEST",
      name: " Ada Lovelace ",
      alias: "Ada",
      teamId,
      inboxLimit: { mode: "LIMIT", value: 3 },
    });
    expect(created).toMatchObject({
      email: "ada@acme.test",
      name: "Ada Lovelace",
      alias: "Ada",
      role: "AGENT",
      team: { id: teamId, name: "Tier 1" },
      inboxLimit: { mode: "LIMIT", value: 3 },
      effectiveInboxLimit: { off: false, limit: 3, source: "AGENT" },
      skills: [],
      archivedAt: null,
    });

    const got = await t.ok(`query($id: ID!) { user(id: $id) { email } node(id: $id) { id } }`, {
      id: created.id,
    });
    expect(got).toEqual({ user: { email: "ada@acme.test" }, node: { id: created.id } });

    const upd = await t.ok(UPDATE_USER, {
      id: created.id,
      input: { role: "SUPERVISOR", alias: null, teamId: null, inboxLimit: { mode: "DEFAULT" } },
    });
    expect(upd.updateUser).toMatchObject({
      role: "SUPERVISOR",
      alias: null,
      team: null,
      inboxLimit: { mode: "DEFAULT", value: null },
      effectiveInboxLimit: { limit: 5, source: "SYSTEM" },
    });
    // Omitted fields stay as they were.
    expect(upd.updateUser.email).toBe("ada@acme.test");

    const arch = await t.ok(ARCHIVE_USER, { id: created.id });
    expect(arch.archiveUser.archivedAt).toBeTruthy();
    const lists = await t.ok(
      `{ a: users(search: "lovelace") { edges { node { id } } } b: users(search: "lovelace", includeArchived: true) { edges { node { id } } } }`,
    );
    expect(lists.a.edges).toHaveLength(0);
    expect(lists.b.edges.map((e: any) => e.node.id)).toEqual([created.id]);
  });

  it("filters by search (name, email, alias), role and team", async () => {
    const teamId = await newTeam("Filter team");
    const a = await newUser({ name: "Grace Hopper", email: "grace@navy.test", teamId });
    const b = await newUser({ name: "Someone", alias: "Hopper-alias", role: "SUPERVISOR" });
    const c = await newUser({ name: "Other", email: "hopper@mail.test" });
    const ids = (r: any) => r.edges.map((e: any) => e.node.id).sort();
    const r = await t.ok(
      `query($team: ID!) {
        s: users(search: "hopper") { edges { node { id } } }
        r: users(search: "hopper", role: SUPERVISOR) { edges { node { id } } }
        tm: users(teamId: $team) { edges { node { id } } }
        bad: users(teamId: "garbage") { edges { node { id } } }
        pct: users(search: "%") { edges { node { id } } }
      }`,
      { team: teamId },
    );
    expect(ids(r.s)).toEqual([a.id, b.id, c.id].sort());
    expect(ids(r.r)).toEqual([b.id]);
    expect(ids(r.tm)).toEqual([a.id]);
    expect(r.bad.edges).toEqual([]);
    expect(r.pct.edges).toEqual([]);
  });

  it("pages through users with first/after", async () => {
    const r1 = await t.ok(`{ users(first: 2) { edges { node { id } } pageInfo { hasNextPage endCursor } } }`);
    expect(r1.users.edges).toHaveLength(2);
    expect(r1.users.pageInfo.hasNextPage).toBe(true);
    const r2 = await t.ok(`query($a: String) { users(first: 2, after: $a) { edges { node { id } } } }`, {
      a: r1.users.pageInfo.endCursor,
    });
    expect(r2.users.edges[0].node.id).not.toBe(r1.users.edges[0].node.id);
  });

  it.each([
    [{ email: "not-an-email" }, "email"],
    [{ email: "" }, "email"],
    [{ email: "a@b.test\r\nBcc: x@y.test" }, "email"],
    [{ name: "" }, "name"],
    [{ name: "   " }, "name"],
    [{ name: "x".repeat(101) }, "name"],
    [{ name: "bad\u0007name" }, "name"],
    [{ alias: "x".repeat(101) }, "alias"],
    [{ inboxLimit: { mode: "LIMIT", value: 1001 } }, "inboxLimit"],
    [{ inboxLimit: { mode: "LIMIT", value: -1 } }, "inboxLimit"],
    [{ inboxLimit: { mode: "LIMIT" } }, "inboxLimit"],
    [{ teamId: "garbage" }, "teamId"],
    [{ teamId: gid("Team", "00000000-0000-4000-8000-000000000000") }, "teamId"],
    [{ teamId: gid("Skill", "00000000-0000-4000-8000-000000000000") }, "teamId"],
    [{ accessProfileId: gid("AccessProfile", "00000000-0000-4000-8000-000000000000") }, "accessProfileId"],
  ])("createUser rejects %j naming the field", async (override, field) => {
    counter += 1;
    const input = { email: `valid${counter}@acme.test`, name: "Valid", role: "AGENT", ...override };
    const r = await t.ok(CREATE_USER, { input });
    expect(r.createUser).toMatchObject({ __typename: "ValidationError", field });
  });

  it("accepts the inbox limit bounds 0 and 1,000 and OFF", async () => {
    for (const inboxLimit of [{ mode: "LIMIT", value: 0 }, { mode: "LIMIT", value: 1000 }, { mode: "OFF" }]) {
      const u = await newUser({ inboxLimit });
      expect(u.inboxLimit.mode).toBe(inboxLimit.mode);
    }
  });

  it("rejects a foreign or archived team as a reference", async () => {
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "o@other.test" });
    const foreignTeam = await t.ok(CREATE_TEAM, { input: { name: "Foreign" } }, other.apiKey);
    const archived = await newTeam("Soon archived");
    await t.ok(`mutation($id: ID!) { archiveTeam(id: $id) { __typename } }`, { id: archived });
    for (const teamId of [foreignTeam.createTeam.id, archived]) {
      const r = await t.ok(CREATE_USER, {
        input: { email: "ref@acme.test", name: "Ref", role: "AGENT", teamId },
      });
      expect(r.createUser).toMatchObject({ __typename: "ValidationError", field: "teamId" });
    }
  });

  it("reports every invalid field at once", async () => {
    const r = await t.ok(CREATE_USER, {
      input: { email: "nope", name: "", role: "AGENT", inboxLimit: { mode: "LIMIT", value: 5000 } },
    });
    expect(r.createUser.problems.map((p: any) => p.field).sort()).toEqual(["email", "inboxLimit", "name"]);
  });

  it("keeps emails unique per tenant, case-insensitively, on create and update", async () => {
    const u = await newUser({ email: "dup@acme.test" });
    const again = await t.ok(CREATE_USER, { input: { email: "DUP@acme.test", name: "Dup", role: "AGENT" } });
    expect(again.createUser).toMatchObject({ __typename: "ValidationError", field: "email" });
    const other = await newUser();
    const upd = await t.ok(UPDATE_USER, { id: other.id, input: { email: "Dup@Acme.test" } });
    expect(upd.updateUser).toMatchObject({ __typename: "ValidationError", field: "email" });
    // Archived users keep their address (the index is not partial).
    await t.ok(ARCHIVE_USER, { id: u.id });
    const afterArchive = await t.ok(CREATE_USER, {
      input: { email: "dup@acme.test", name: "D", role: "AGENT" },
    });
    expect(afterArchive.createUser).toMatchObject({ __typename: "ValidationError", field: "email" });
    // Another tenant may use the same address.
    const tenant2 = await createTenantWithAdmin(t.db.db, { tenantName: "T2", adminEmail: "a@t2.test" });
    const there = await t.ok(
      CREATE_USER,
      { input: { email: "dup@acme.test", name: "D", role: "AGENT" } },
      tenant2.apiKey,
    );
    expect(there.createUser.__typename).toBe("User");
  });

  it("stops an archived user's keys from authenticating", async () => {
    const u = await newUser();
    const k = await t.ok(CREATE_KEY, { userId: u.id, name: "desk" });
    const key = k.createApiKey.key as string;
    expect((await t.ok(`{ viewer { user { id } } }`, {}, key)).viewer.user.id).toBe(u.id);
    await t.ok(ARCHIVE_USER, { id: u.id });
    const r = await t.gql(`{ viewer { role } }`, {}, key);
    expect(r.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    // Archiving again is a no-op, not an error.
    expect((await t.ok(ARCHIVE_USER, { id: u.id })).archiveUser.__typename).toBe("User");
    // No new key for an archived user.
    const again = await t.ok(CREATE_KEY, { userId: u.id, name: "again" });
    expect(again.createApiKey).toMatchObject({ __typename: "NotFoundError", entity: "User" });
    // Its keys were revoked, so restoring the user does not revive them.
    const keys = await t.ok(`query($u: ID) { apiKeys(userId: $u) { revokedAt } }`, { u: u.id });
    expect(keys.apiKeys[0].revokedAt).toBeTruthy();
    const restored = await t.ok(
      `mutation($id: ID!) { restoreUser(id: $id) { __typename ... on User { archivedAt } } }`,
      { id: u.id },
    );
    expect(restored.restoreUser).toEqual({ __typename: "User", archivedAt: null });
    expect((await t.gql(`{ viewer { role } }`, {}, key)).errors?.[0]?.extensions?.code).toBe(
      "UNAUTHENTICATED",
    );
    const fresh = await t.ok(CREATE_KEY, { userId: u.id, name: "new desk" });
    expect((await t.ok(`{ viewer { user { id } } }`, {}, fresh.createApiKey.key)).viewer.user.id).toBe(u.id);
  });

  it("never lets the tenant lose its last active ADMIN", async () => {
    const tenant = await createTenantWithAdmin(t.db.db, { tenantName: "Solo", adminEmail: "solo@solo.test" });
    const me = gid("User", tenant.userId);
    const demote = await t.ok(UPDATE_USER, { id: me, input: { role: "AGENT" } }, tenant.apiKey);
    expect(demote.updateUser).toMatchObject({ __typename: "ConflictError", code: "LAST_ADMIN" });
    const archive = await t.ok(ARCHIVE_USER, { id: me }, tenant.apiKey);
    expect(archive.archiveUser).toMatchObject({ __typename: "ConflictError", code: "LAST_ADMIN" });
    // With a second admin it is allowed.
    const second = await t.ok(
      CREATE_USER,
      { input: { email: "two@solo.test", name: "Two", role: "ADMIN" } },
      tenant.apiKey,
    );
    const ok = await t.ok(UPDATE_USER, { id: second.createUser.id, input: { role: "AGENT" } }, tenant.apiKey);
    expect(ok.updateUser.role).toBe("AGENT");
    const ok2 = await t.ok(UPDATE_USER, { id: me, input: { name: "Still admin" } }, tenant.apiKey);
    expect(ok2.updateUser.__typename).toBe("User");
  });

  it("keeps one ADMIN when two admins demote each other at the same time", async () => {
    const tenant = await createTenantWithAdmin(t.db.db, { tenantName: "Duo", adminEmail: "one@duo.test" });
    const two = await createUserWithKey(t.db.db, tenant.tenantId, "ADMIN");
    const q = `mutation($id: ID!) { updateUser(id: $id, input: { role: AGENT }) { __typename ... on ConflictError { code } } }`;
    const results = await Promise.all([
      t.ok(q, { id: gid("User", two.id) }, tenant.apiKey),
      t.ok(q, { id: gid("User", tenant.userId) }, two.key),
    ]);
    const kinds = results.map((r) => r.updateUser.__typename).sort();
    expect(kinds).toEqual(["ConflictError", "User"]);
    const admins = await t.db.db
      .select({ id: user.id })
      .from(user)
      .where(and(eq(user.tenantId, tenant.tenantId), eq(user.role, "ADMIN")));
    expect(admins).toHaveLength(1);
  });

  it("computes the effective inbox limit from agent, team and system default", async () => {
    const teamOff = await newTeam("Off team", { mode: "OFF" });
    const team6 = await newTeam("Six team", { mode: "LIMIT", value: 6 });
    const cases: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ teamId: team6 }, { off: false, limit: 6, source: "TEAM" }],
      [{ teamId: teamOff }, { off: true, limit: null, source: "TEAM" }],
      [
        { teamId: teamOff, inboxLimit: { mode: "LIMIT", value: 2 } },
        { off: false, limit: 2, source: "AGENT" },
      ],
      [
        { teamId: team6, inboxLimit: { mode: "OFF" } },
        { off: true, limit: null, source: "AGENT" },
      ],
      [{}, { off: false, limit: 5, source: "SYSTEM" }],
    ];
    for (const [input, expected] of cases) {
      const u = await newUser(input);
      expect(u.effectiveInboxLimit).toEqual(expected);
    }
    // A change of the team's default shows through on the next read.
    await t.ok(
      `mutation($id: ID!) { updateTeam(id: $id, input: { inboxLimit: { mode: LIMIT, value: 1 } }) { __typename } }`,
      {
        id: team6,
      },
    );
    const u = await newUser({ teamId: team6 });
    expect(u.effectiveInboxLimit).toEqual({ off: false, limit: 1, source: "TEAM" });
  });
});

describe("user authorization", () => {
  it("lets an AGENT read only itself", async () => {
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const other = await newUser();
    const me = gid("User", agent.id);
    const r = await t.ok(
      `query($me: ID!, $other: ID!) {
        users(includeArchived: true) { edges { node { id } } }
        mine: user(id: $me) { id } theirs: user(id: $other) { id }
        n: node(id: $other) { id } ns: nodes(ids: [$other]) { id }
        viewer { user { id } }
      }`,
      { me, other: other.id },
      agent.key,
    );
    expect(r.users.edges.map((e: any) => e.node.id)).toEqual([me]);
    expect(r.mine).toEqual({ id: me });
    expect(r.theirs).toBeNull();
    expect(r.n).toBeNull();
    expect(r.ns).toEqual([null]);
    expect(r.viewer.user.id).toBe(me);
  });

  it("lets a SUPERVISOR read every user but change none", async () => {
    const sup = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    const other = await newUser();
    const r = await t.ok(
      `query($id: ID!) { user(id: $id) { id } users { edges { node { id } } } }`,
      { id: other.id },
      sup.key,
    );
    expect(r.user).toEqual({ id: other.id });
    expect(r.users.edges.length).toBeGreaterThan(2);
  });

  it.each(["AGENT", "SUPERVISOR"] as const)("forbids every user/skill write to a %s", async (role) => {
    const u = await createUserWithKey(t.db.db, t.tenantId, role);
    const target = await newUser();
    const skillId = await newSkill(`auth-${role}`);
    const writes: [string, Record<string, unknown>][] = [
      [CREATE_USER, { input: { email: `w-${role}@acme.test`, name: "W", role: "ADMIN" } }],
      [UPDATE_USER, { id: target.id, input: { name: "Hacked" } }],
      [UPDATE_USER, { id: gid("User", u.id), input: { role: "ADMIN" } }],
      [ARCHIVE_USER, { id: target.id }],
      [`mutation($id: ID!) { restoreUser(id: $id) { __typename } }`, { id: target.id }],
      [SET_SKILLS, { userId: gid("User", u.id), skills: [{ skillId, proficiency: 10 }] }],
      [CREATE_SKILL, { input: { name: `by-${role}` } }],
      [
        `mutation($id: ID!) { updateSkill(id: $id, input: { name: "renamed" }) { __typename } }`,
        { id: skillId },
      ],
      [`mutation($id: ID!) { archiveSkill(id: $id) { __typename } }`, { id: skillId }],
    ];
    for (const [q, v] of writes) {
      const r = await t.gql(q, v, u.key);
      expect(r.errors?.[0]?.extensions?.code, q).toBe("FORBIDDEN");
    }
    const still = await t.ok(`query($id: ID!) { user(id: $id) { name } }`, { id: target.id });
    expect(still.user.name).toBe(target.name);
  });

  it("treats foreign-tenant and malformed user IDs as not found", async () => {
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "Far", adminEmail: "far@far.test" });
    const foreign = gid("User", other.userId);
    const r = await t.ok(`query($id: ID!) { user(id: $id) { id } node(id: $id) { id } }`, { id: foreign });
    expect(r).toEqual({ user: null, node: null });
    for (const id of [foreign, "nonsense", gid("Team", other.userId)]) {
      const u = await t.ok(UPDATE_USER, { id, input: { name: "X" } });
      expect(u.updateUser).toMatchObject({ __typename: "NotFoundError", entity: "User" });
      const a = await t.ok(ARCHIVE_USER, { id });
      expect(a.archiveUser).toMatchObject({ __typename: "NotFoundError", entity: "User" });
      const s = await t.ok(SET_SKILLS, { userId: id, skills: [] });
      expect(s.setAgentSkills).toMatchObject({ __typename: "NotFoundError", entity: "User" });
    }
    const list = await t.ok(`{ users(search: "far") { edges { node { id } } } }`);
    expect(list.users.edges).toEqual([]);
  });
});

describe("skills", () => {
  it("creates, lists, updates and archives skills", async () => {
    const r = await t.ok(CREATE_SKILL, { input: { name: "lang:de", description: "German" } });
    expect(r.createSkill).toMatchObject({ name: "lang:de", description: "German", archivedAt: null });
    const id = r.createSkill.id;
    const u = await t.ok(
      `mutation($id: ID!) { updateSkill(id: $id, input: { name: "lang:de-DE" }) { ... on Skill { name description } } }`,
      { id },
    );
    expect(u.updateSkill).toEqual({ name: "lang:de-DE", description: "German" });
    const got = await t.ok(`query($id: ID!) { skill(id: $id) { name } node(id: $id) { id } }`, { id });
    expect(got).toEqual({ skill: { name: "lang:de-DE" }, node: { id } });
    await t.ok(`mutation($id: ID!) { archiveSkill(id: $id) { ... on Skill { archivedAt } } }`, { id });
    const lists = await t.ok(
      `{ a: skills(search: "lang:de") { edges { node { id } } } b: skills(search: "LANG:DE", includeArchived: true) { edges { node { id archivedAt } } } }`,
    );
    expect(lists.a.edges).toEqual([]);
    expect(lists.b.edges).toHaveLength(1);
    expect(lists.b.edges[0].node.archivedAt).toBeTruthy();
  });

  it.each([
    ["", "name"],
    ["a", "name"],
    ["x".repeat(31), "name"],
    ["two words", "name"],
    ["slash/no", "name"],
    ["semi;colon", "name"],
    ["emoji😀", "name"],
  ])("rejects the skill name %j", async (name, field) => {
    const r = await t.ok(CREATE_SKILL, { input: { name } });
    expect(r.createSkill).toMatchObject({ __typename: "ValidationError", field });
  });

  it("rejects a missing name and a long description", async () => {
    const a = await t.ok(CREATE_SKILL, { input: { description: "no name" } });
    expect(a.createSkill).toMatchObject({ __typename: "ValidationError", field: "name" });
    const b = await t.ok(CREATE_SKILL, { input: { name: "desc-long", description: "x".repeat(501) } });
    expect(b.createSkill).toMatchObject({ __typename: "ValidationError", field: "description" });
  });

  it.each(["ab", "x".repeat(30), "tier_1.v2:b-c", "Français"])("accepts the skill name %j", async (name) => {
    const r = await t.ok(CREATE_SKILL, { input: { name } });
    expect(r.createSkill).toMatchObject({ __typename: "Skill", name });
  });

  it("keeps names unique per tenant case-insensitively, archived ones included", async () => {
    const id = await newSkill("Billing");
    const dup = await t.ok(CREATE_SKILL, { input: { name: "BILLING" } });
    expect(dup.createSkill).toMatchObject({ __typename: "ValidationError", field: "name" });
    const other = await newSkill("Billing2");
    const ren = await t.ok(
      `mutation($id: ID!) { updateSkill(id: $id, input: { name: "billing" }) { __typename ... on ValidationError { field } } }`,
      { id: other },
    );
    expect(ren.updateSkill).toEqual({ __typename: "ValidationError", field: "name" });
    await t.ok(`mutation($id: ID!) { archiveSkill(id: $id) { __typename } }`, { id });
    const afterArchive = await t.ok(CREATE_SKILL, { input: { name: "billing" } });
    expect(afterArchive.createSkill.__typename).toBe("ValidationError");
    // Renaming the archived skill frees its name.
    await t.ok(`mutation($id: ID!) { updateSkill(id: $id, input: { name: "billing-old" }) { __typename } }`, {
      id,
    });
    const fresh = await t.ok(CREATE_SKILL, { input: { name: "billing" } });
    expect(fresh.createSkill.__typename).toBe("Skill");
  });

  it("treats foreign skills as not found and hides them from lists", async () => {
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "S2", adminEmail: "s@s2.test" });
    const theirs = await t.ok(CREATE_SKILL, { input: { name: "theirs" } }, other.apiKey);
    const id = theirs.createSkill.id;
    const r = await t.ok(`query($id: ID!) { skill(id: $id) { id } node(id: $id) { id } }`, { id });
    expect(r).toEqual({ skill: null, node: null });
    const upd = await t.ok(
      `mutation($id: ID!) { updateSkill(id: $id, input: { name: "mine" }) { __typename ... on NotFoundError { entity } } }`,
      { id },
    );
    expect(upd.updateSkill).toEqual({ __typename: "NotFoundError", entity: "Skill" });
    const list = await t.ok(`{ skills(search: "theirs") { edges { node { id } } } }`);
    expect(list.skills.edges).toEqual([]);
    // Same name is free in this tenant.
    expect((await t.ok(CREATE_SKILL, { input: { name: "theirs" } })).createSkill.__typename).toBe("Skill");
  });

  it("lets every role read skills", async () => {
    await newSkill("readable");
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const r = await t.ok(`{ skills(search: "readable") { edges { node { name } } } }`, {}, agent.key);
    expect(r.skills.edges).toEqual([{ node: { name: "readable" } }]);
  });
});

describe("agent skills", () => {
  it("replaces the whole set and lists active skills by name", async () => {
    const u = await newUser();
    const fr = await newSkill("as-french");
    const de = await newSkill("as-german");
    const es = await newSkill("as-spanish");
    const first = await t.ok(SET_SKILLS, {
      userId: u.id,
      skills: [
        { skillId: de, proficiency: 7 },
        { skillId: fr, proficiency: 3 },
      ],
    });
    expect(first.setAgentSkills.skills).toEqual([
      { proficiency: 3, skill: { name: "as-french" } },
      { proficiency: 7, skill: { name: "as-german" } },
    ]);
    const second = await t.ok(SET_SKILLS, { userId: u.id, skills: [{ skillId: es, proficiency: 10 }] });
    expect(second.setAgentSkills.skills).toEqual([{ proficiency: 10, skill: { name: "as-spanish" } }]);
    // Archiving a skill removes it from the agent's list.
    await t.ok(SET_SKILLS, {
      userId: u.id,
      skills: [
        { skillId: es, proficiency: 10 },
        { skillId: fr, proficiency: 1 },
      ],
    });
    await t.ok(`mutation($id: ID!) { archiveSkill(id: $id) { __typename } }`, { id: fr });
    const after = await t.ok(`query($id: ID!) { user(id: $id) { skills { skill { name } } } }`, { id: u.id });
    expect(after.user.skills).toEqual([{ skill: { name: "as-spanish" } }]);
    const cleared = await t.ok(SET_SKILLS, { userId: u.id, skills: [] });
    expect(cleared.setAgentSkills.skills).toEqual([]);
  });

  it("validates proficiency, duplicates and skill references", async () => {
    const u = await newUser();
    const ok = await newSkill("av-ok");
    const archived = await newSkill("av-archived");
    await t.ok(`mutation($id: ID!) { archiveSkill(id: $id) { __typename } }`, { id: archived });
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "S3", adminEmail: "s@s3.test" });
    const foreign = (await t.ok(CREATE_SKILL, { input: { name: "av-foreign" } }, other.apiKey)).createSkill
      .id;
    const cases: [unknown[], string][] = [
      [[{ skillId: ok, proficiency: 0 }], "skills[0].proficiency"],
      [[{ skillId: ok, proficiency: 11 }], "skills[0].proficiency"],
      [[{ skillId: ok, proficiency: -3 }], "skills[0].proficiency"],
      [
        [
          { skillId: ok, proficiency: 5 },
          { skillId: ok, proficiency: 6 },
        ],
        "skills[1].skillId",
      ],
      [[{ skillId: foreign, proficiency: 5 }], "skills[0].skillId"],
      [[{ skillId: archived, proficiency: 5 }], "skills[0].skillId"],
      [
        [
          { skillId: ok, proficiency: 5 },
          { skillId: "garbage", proficiency: 5 },
        ],
        "skills[1].skillId",
      ],
    ];
    for (const [skills, field] of cases) {
      const r = await t.ok(SET_SKILLS, { userId: u.id, skills });
      expect(r.setAgentSkills, JSON.stringify(skills)).toMatchObject({
        __typename: "ValidationError",
        field,
      });
    }
    // Nothing was written by the rejected calls.
    const after = await t.ok(`query($id: ID!) { user(id: $id) { skills { proficiency } } }`, { id: u.id });
    expect(after.user.skills).toEqual([]);
  });

  it("loads skills, team and limits for a page of users with a constant number of queries", async () => {
    const teamId = await newTeam("Batch team", { mode: "LIMIT", value: 2 });
    const s1 = await newSkill("nq-one");
    const s2 = await newSkill("nq-two");
    const make = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const u = await newUser({ teamId, name: `Batch ${counter}` });
        await t.ok(SET_SKILLS, {
          userId: u.id,
          skills: [
            { skillId: s1, proficiency: 5 },
            { skillId: s2, proficiency: 6 },
          ],
        });
      }
    };
    const session = (t.app.engine.db as any).session;
    const original = session.logger;
    let queries = 0;
    session.logger = { logQuery: () => (queries += 1) };
    const q = `query($team: ID!) { users(teamId: $team, first: 50) { edges { node {
      skills { proficiency skill { name } } team { name } effectiveInboxLimit { limit } accessProfile { name }
    } } } }`;
    try {
      await make(2);
      queries = 0;
      const small = await t.ok(q, { team: teamId });
      const forTwo = queries;
      await make(6);
      queries = 0;
      const big = await t.ok(q, { team: teamId });
      const forEight = queries;
      expect(small.users.edges).toHaveLength(2);
      expect(big.users.edges).toHaveLength(8);
      expect(big.users.edges[7].node.skills).toHaveLength(2);
      expect(forTwo).toBeGreaterThan(0);
      expect(forEight).toBe(forTwo);
    } finally {
      session.logger = original;
    }
  });
});

describe("API keys", () => {
  it("issues a key once, lists metadata without the secret, and revokes it", async () => {
    const u = await newUser();
    const c = await t.ok(CREATE_KEY, { userId: u.id, name: " CRM integration " });
    const { key, apiKey } = c.createApiKey;
    expect(key).toMatch(/^sb_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    expect(apiKey).toMatchObject({
      name: "CRM integration",
      userId: u.id,
      lastUsedAt: null,
      revokedAt: null,
    });
    expect(key.startsWith(`sb_${apiKey.prefix}_`)).toBe(true);

    const who = await t.ok(`{ viewer { user { id } } }`, {}, key);
    expect(who.viewer.user.id).toBe(u.id);

    const list = await t.gql(
      `query($u: ID) { apiKeys(userId: $u) { id name prefix createdAt lastUsedAt revokedAt } }`,
      {
        u: u.id,
      },
    );
    expect(list.errors).toBeUndefined();
    const keys = (list.data as any).apiKeys;
    expect(keys).toHaveLength(1);
    expect(keys[0].lastUsedAt).toBeTruthy();
    // The secret is everything after `sb_<prefix>_`; base64url secrets may contain "_" too
    // (splitting on "_" once gave a one-character fragment that the list contained by chance).
    const secret = key.slice(`sb_${apiKey.prefix}_`.length);
    expect(secret.length).toBeGreaterThanOrEqual(40);
    expect(JSON.stringify(list)).not.toContain(secret);

    const rev = await t.ok(
      `mutation($id: ID!) { revokeApiKey(id: $id) { __typename ... on ApiKey { revokedAt } } }`,
      { id: apiKey.id },
    );
    expect(rev.revokeApiKey.revokedAt).toBeTruthy();
    const after = await t.gql(`{ viewer { role } }`, {}, key);
    expect(after.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    // Revoking twice is harmless and keeps the first time.
    const again = await t.ok(`mutation($id: ID!) { revokeApiKey(id: $id) { ... on ApiKey { revokedAt } } }`, {
      id: apiKey.id,
    });
    expect(again.revokeApiKey.revokedAt).toBe(rev.revokeApiKey.revokedAt);
  });

  it("lets a non-admin manage only its own keys", async () => {
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const sup = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    const victim = await newUser();
    const victimKey = (await t.ok(CREATE_KEY, { userId: victim.id, name: "v" })).createApiKey.apiKey.id;

    const own = await t.ok(CREATE_KEY, { userId: gid("User", agent.id), name: "mine" }, agent.key);
    expect(own.createApiKey.__typename).toBe("CreatedApiKey");
    const mine = await t.ok(`{ apiKeys { name } }`, {}, agent.key);
    expect(mine.apiKeys.map((k: any) => k.name).sort()).toEqual(["mine", "test"]);

    const a1 = await t.ok(CREATE_KEY, { userId: victim.id, name: "steal" }, agent.key);
    expect(a1.createApiKey).toMatchObject({ __typename: "NotFoundError", entity: "User" });
    const s1 = await t.ok(CREATE_KEY, { userId: victim.id, name: "steal" }, sup.key);
    expect(s1.createApiKey.__typename).toBe("ForbiddenError");
    const a2 = await t.gql(`query($u: ID) { apiKeys(userId: $u) { id } }`, { u: victim.id }, agent.key);
    expect(a2.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    const s2 = await t.gql(`query($u: ID) { apiKeys(userId: $u) { id } }`, { u: victim.id }, sup.key);
    expect(s2.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    for (const k of [agent.key, sup.key]) {
      const r = await t.ok(
        `mutation($id: ID!) { revokeApiKey(id: $id) { __typename ... on NotFoundError { entity } } }`,
        { id: victimKey },
        k,
      );
      expect(r.revokeApiKey).toEqual({ __typename: "NotFoundError", entity: "ApiKey" });
      const n = await t.ok(`query($id: ID!) { node(id: $id) { id } }`, { id: victimKey }, k);
      expect(n.node).toBeNull();
    }
    const stillListed = await t.ok(`query($u: ID) { apiKeys(userId: $u) { revokedAt } }`, { u: victim.id });
    expect(stillListed.apiKeys).toEqual([{ revokedAt: null }]);
  });

  it("rejects bad names and foreign users or keys", async () => {
    const u = await newUser();
    for (const name of ["", "   ", "x".repeat(101)]) {
      const r = await t.ok(CREATE_KEY, { userId: u.id, name });
      expect(r.createApiKey).toMatchObject({ __typename: "ValidationError", field: "name" });
    }
    const other = await createTenantWithAdmin(t.db.db, { tenantName: "K2", adminEmail: "k@k2.test" });
    const r = await t.ok(CREATE_KEY, { userId: gid("User", other.userId), name: "x" });
    expect(r.createApiKey).toMatchObject({ __typename: "NotFoundError", entity: "User" });
    const theirKey = await t.ok(
      CREATE_KEY,
      { userId: gid("User", other.userId), name: "theirs" },
      other.apiKey,
    );
    const rv = await t.ok(`mutation($id: ID!) { revokeApiKey(id: $id) { __typename } }`, {
      id: theirKey.createApiKey.apiKey.id,
    });
    expect(rv.revokeApiKey.__typename).toBe("NotFoundError");
    const l = await t.gql(`query($u: ID) { apiKeys(userId: $u) { id } }`, { u: gid("User", other.userId) });
    expect(l.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    // The foreign key still works for its owner.
    expect((await t.ok(`{ viewer { role } }`, {}, theirKey.createApiKey.key)).viewer.role).toBe("ADMIN");
  });
});
