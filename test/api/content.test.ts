import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createUserWithKey } from "../helpers/fixtures.js";

let t: TestApp;
let agent: { id: string; key: string };
let agent2: { id: string; key: string };
let supervisorKey: string;
let other: { tenantId: string; userId: string; apiKey: string };
beforeAll(async () => {
  t = await startTestApp();
  agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
  agent2 = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
  supervisorKey = (await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR")).key;
  other = await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "x@other.test" });
});
afterAll(async () => {
  await t?.stop();
});

const RESULT = (type: string, fields: string) => `__typename
  ... on ${type} { ${fields} }
  ... on ValidationError { field problems { field message } }
  ... on NotFoundError { entity }`;

/** create/update/archive operations of one content type, named after its mutations. */
function ops(type: string, inputType: string, fields: string) {
  return {
    create: `mutation($input: ${inputType}!) { create${type}(input: $input) { ${RESULT(type, fields)} } }`,
    update: `mutation($id: ID!, $input: ${inputType}!) { update${type}(id: $id, input: $input) { ${RESULT(type, fields)} } }`,
    archive: `mutation($id: ID!) { archive${type}(id: $id) { ${RESULT(type, fields)} } }`,
  };
}

const SIG = ops("Signature", "SignatureInput", "id name text html archivedAt user { id }");
const BRANDED = ops("BrandedTemplate", "BrandedTemplateInput", "id name html archivedAt");
const CANNED = ops("CannedResponse", "CannedResponseInput", "id name subject text html archivedAt");
const AUTO = ops("AutoReplyTemplate", "AutoReplyTemplateInput", "id name subject text html archivedAt");

const ASSIGN = `mutation($userId: ID!, $signatureId: ID) { assignUserSignature(userId: $userId, signatureId: $signatureId) {
  ${RESULT("AssignUserSignaturePayload", "user { id } signature { id name }")} } }`;
const USER_SIG = `query($id: ID!) { node(id: $id) { ... on User { signature { id name } } } }`;
const MY_SIG = `{ viewer { user { signature { id name text } } } }`;

const userGid = (id: string) => Buffer.from(`User:${id}`).toString("base64");

async function create(op: string, input: Record<string, unknown>, key?: string) {
  const d = await t.ok(op, { input }, key);
  const r = Object.values(d)[0] as {
    __typename: string;
    id: string;
    problems?: { field: string; message: string }[];
  };
  return r;
}

describe("signatures", () => {
  it("creates with sanitised HTML and tags, updates, lists and archives", async () => {
    const s = await create(SIG.create, {
      name: "Support",
      text: "Kind regards\n{{agent.name}} ({{agent.alias}}), {{company}}",
      html: '<p onmouseover="steal()">Regards, <b>{{agent.name}}</b><script>alert(1)</script> <a href="javascript:alert(1)">x</a> <a href="mailto:{{agent.email}}">mail</a></p>',
    });
    expect(s).toMatchObject({ __typename: "Signature", name: "Support", user: null });
    const html = (s as unknown as { html: string }).html;
    expect(html).not.toMatch(/script|onmouseover|javascript:/i);
    expect(html).toContain("<b>{{agent.name}}</b>");
    expect(html).toContain('href="mailto:{{agent.email}}"');

    const u = await t.ok(SIG.update, { id: s.id, input: { html: null, text: "Bye" } });
    expect(u.updateSignature).toMatchObject({ html: null, text: "Bye", name: "Support" });
    const l = await t.ok(`{ signatures(search: "supp") { edges { node { id } } } }`, {}, supervisorKey);
    expect(l.signatures.edges.map((e: any) => e.node.id)).toContain(s.id);
    const a = await t.ok(SIG.archive, { id: s.id });
    expect(a.archiveSignature.archivedAt).not.toBeNull();
  });

  it.each([
    [{ name: "" }, "name"],
    [{ name: "ok", text: "Hi {{agent.phone}}" }, "text"],
    [{ name: "ok", html: "<p>{{agent.nmae}}</p>" }, "html"],
    [{ name: "ok", text: "x".repeat(100_001) }, "text"],
  ])("rejects %j naming %s", async (input, field) => {
    const r = await create(SIG.create, input);
    expect(r.__typename).toBe("ValidationError");
    expect(r.problems!.map((p) => p.field)).toContain(field);
  });

  it("gives a user at most one signature: assigning a new one detaches the old", async () => {
    const first = await create(SIG.create, { name: "First", text: "1" });
    const second = await create(SIG.create, { name: "Second", text: "2" });

    const a1 = await t.ok(ASSIGN, { userId: userGid(agent.id), signatureId: first.id });
    expect(a1.assignUserSignature).toMatchObject({
      user: { id: userGid(agent.id) },
      signature: { id: first.id },
    });
    expect((await t.ok(MY_SIG, {}, agent.key)).viewer.user.signature).toMatchObject({
      id: first.id,
      text: "1",
    });

    const a2 = await t.ok(ASSIGN, { userId: userGid(agent.id), signatureId: second.id });
    expect(a2.assignUserSignature.signature.id).toBe(second.id);
    expect((await t.ok(MY_SIG, {}, agent.key)).viewer.user.signature.id).toBe(second.id);
    // The old one still exists, but belongs to nobody now.
    const old = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on Signature { archivedAt user { id } } } }`,
      {
        id: first.id,
      },
    );
    expect(old.node).toEqual({ archivedAt: null, user: null });

    // A signature held by another user moves; that user is left without one.
    await t.ok(ASSIGN, { userId: userGid(agent2.id), signatureId: second.id });
    expect((await t.ok(MY_SIG, {}, agent.key)).viewer.user.signature).toBeNull();
    expect((await t.ok(MY_SIG, {}, agent2.key)).viewer.user.signature.id).toBe(second.id);

    // Re-assigning the same one is a no-op, null removes it.
    await t.ok(ASSIGN, { userId: userGid(agent2.id), signatureId: second.id });
    expect((await t.ok(USER_SIG, { id: userGid(agent2.id) })).node.signature.id).toBe(second.id);
    const cleared = await t.ok(ASSIGN, { userId: userGid(agent2.id), signatureId: null });
    expect(cleared.assignUserSignature.signature).toBeNull();
    expect((await t.ok(MY_SIG, {}, agent2.key)).viewer.user.signature).toBeNull();
  });

  it("detaches an archived signature and refuses to assign archived ones", async () => {
    const s = await create(SIG.create, { name: "Temp", text: "t" });
    await t.ok(ASSIGN, { userId: userGid(agent.id), signatureId: s.id });
    await t.ok(SIG.archive, { id: s.id });
    expect((await t.ok(MY_SIG, {}, agent.key)).viewer.user.signature).toBeNull();
    const r = await t.ok(ASSIGN, { userId: userGid(agent.id), signatureId: s.id });
    expect(r.assignUserSignature).toMatchObject({ __typename: "ValidationError", field: "signatureId" });
  });

  it("lets agents read only their own signature", async () => {
    const mine = await create(SIG.create, { name: "Agent2 own", text: "mine" });
    const queueSig = await create(SIG.create, { name: "Queue sig", text: "q" });
    await t.ok(ASSIGN, { userId: userGid(agent2.id), signatureId: mine.id });

    const list = await t.ok(`{ signatures { edges { node { id } } } }`, {}, agent2.key);
    expect(list.signatures.edges.map((e: any) => e.node.id)).toEqual([mine.id]);
    const n = await t.ok(`query($id: ID!) { node(id: $id) { id } }`, { id: queueSig.id }, agent2.key);
    expect(n.node).toBeNull();
    // Another agent's signature is not visible through the User either: agents see no other users.
    expect((await t.ok(USER_SIG, { id: userGid(agent2.id) }, agent.key)).node).toBeNull();
    expect((await t.ok(USER_SIG, { id: userGid(agent2.id) }, supervisorKey)).node.signature.id).toBe(mine.id);
  });

  it("lets only ADMIN write and hides other tenants' signatures and users", async () => {
    const s = await create(SIG.create, { name: "Guarded", text: "g" });
    for (const key of [agent.key, supervisorKey]) {
      for (const [q, v] of [
        [SIG.create, { input: { name: "x" } }],
        [SIG.update, { id: s.id, input: { name: "x" } }],
        [SIG.archive, { id: s.id }],
        [ASSIGN, { userId: userGid(agent.id), signatureId: s.id }],
      ] as const) {
        const r = await t.gql(q, v, key);
        expect(r.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      }
    }
    const upd = await t.ok(SIG.update, { id: s.id, input: { name: "x" } }, other.apiKey);
    expect(upd.updateSignature).toMatchObject({ __typename: "NotFoundError", entity: "Signature" });
    // Foreign admin assigning our signature to their user, or their signature to our user.
    const theirs = await create(SIG.create, { name: "Theirs" }, other.apiKey);
    const x1 = await t.ok(ASSIGN, { userId: userGid(other.userId), signatureId: s.id }, other.apiKey);
    expect(x1.assignUserSignature).toMatchObject({ __typename: "NotFoundError", entity: "Signature" });
    const x2 = await t.ok(ASSIGN, { userId: userGid(agent.id), signatureId: theirs.id }, other.apiKey);
    expect(x2.assignUserSignature).toMatchObject({ __typename: "NotFoundError", entity: "User" });
  });
});

describe("branded templates", () => {
  const PAGE =
    '<html><body style="margin:0"><table width="600"><tr><td>{{content}}</td></tr></table></body></html>';

  it("creates a sanitised document, updates and archives", async () => {
    const b = await create(BRANDED.create, {
      name: "Brand",
      html: PAGE.replace("<table", '<script>alert(1)</script><img src="x" onerror="alert(1)"><table'),
    });
    expect(b.__typename).toBe("BrandedTemplate");
    const html = (b as unknown as { html: string }).html;
    expect(html).toContain("{{content}}");
    expect(html).toContain('<body style="margin:0">');
    expect(html).not.toMatch(/script|onerror/);
    const u = await t.ok(BRANDED.update, { id: b.id, input: { name: "Brand 2" } });
    expect(u.updateBrandedTemplate).toMatchObject({ name: "Brand 2", html });
    const l = await t.ok(`{ brandedTemplates { edges { node { id } } } }`, {}, agent.key);
    expect(l.brandedTemplates.edges.map((e: any) => e.node.id)).toContain(b.id);
    expect((await t.ok(BRANDED.archive, { id: b.id })).archiveBrandedTemplate.archivedAt).not.toBeNull();
  });

  it.each([
    ["<p>no placeholder</p>", "found 0"],
    ["<p>{{content}}</p><p>{{content}}</p>", "found 2"],
    ["<p>{{ content }}</p>", "found 0"],
    // A placeholder only inside a script is removed by sanitising, so it does not count.
    ["<p>x</p><script>{{content}}</script>", "found 0"],
  ])("rejects %j on html", async (html, found) => {
    const r = await create(BRANDED.create, { name: "Bad", html });
    expect(r).toMatchObject({ __typename: "ValidationError", field: "html" });
    expect(r.problems![0]!.message).toContain(found);
  });

  it("requires html on create and checks it on update", async () => {
    const r = await create(BRANDED.create, { name: "No html" });
    expect(r).toMatchObject({ __typename: "ValidationError", field: "html" });
    const b = await create(BRANDED.create, { name: "Ok", html: PAGE });
    const u = await t.ok(BRANDED.update, { id: b.id, input: { html: "<p>gone</p>" } });
    expect(u.updateBrandedTemplate).toMatchObject({ __typename: "ValidationError", field: "html" });
    const big = await create(BRANDED.create, {
      name: "Big",
      html: `{{content}}${"<p>x</p>".repeat(62_500)}`,
    });
    expect(big).toMatchObject({ __typename: "ValidationError", field: "html" });
    expect(big.problems![0]!.message).toContain("at most 500,000 characters");
  });
});

describe("canned responses", () => {
  it("are written by ADMIN and read by every role", async () => {
    const c = await create(CANNED.create, {
      name: "Refund policy",
      subject: "About your refund",
      text: "Refunds take 5 days.",
      html: '<p>Refunds take <a href="javascript:void(0)">5 days</a>.</p>',
    });
    expect(c).toMatchObject({ __typename: "CannedResponse", subject: "About your refund" });
    expect((c as unknown as { html: string }).html).toBe("<p>Refunds take <a>5 days</a>.</p>");
    for (const key of [agent.key, supervisorKey]) {
      const l = await t.ok(`{ cannedResponses(search: "refund") { edges { node { id text } } } }`, {}, key);
      expect(l.cannedResponses.edges).toEqual([{ node: { id: c.id, text: "Refunds take 5 days." } }]);
      for (const [q, v] of [
        [CANNED.create, { input: { name: "x" } }],
        [CANNED.update, { id: c.id, input: { name: "x" } }],
        [CANNED.archive, { id: c.id }],
      ] as const) {
        const r = await t.gql(q, v, key);
        expect(r.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      }
    }
    const u = await t.ok(CANNED.update, { id: c.id, input: { subject: null } });
    expect(u.updateCannedResponse).toMatchObject({ subject: null, name: "Refund policy" });
    expect((await t.ok(CANNED.archive, { id: c.id })).archiveCannedResponse.archivedAt).not.toBeNull();
    const gone = await t.ok(`{ cannedResponses(search: "refund") { edges { node { id } } } }`, {}, agent.key);
    expect(gone.cannedResponses.edges).toHaveLength(0);
  });

  it.each([
    [{ name: "" }, "name"],
    [{ name: "ok", subject: "two\r\nBcc: victim@example.com" }, "subject"],
    [{ name: "ok", subject: "s".repeat(501) }, "subject"],
  ])("rejects %j naming %s", async (input, field) => {
    const r = await create(CANNED.create, input);
    expect(r.problems!.map((p) => p.field)).toContain(field);
  });

  it("hides other tenants' canned responses", async () => {
    const c = await create(CANNED.create, { name: "Ours" });
    const r = await t.ok(CANNED.archive, { id: c.id }, other.apiKey);
    expect(r.archiveCannedResponse).toMatchObject({ __typename: "NotFoundError", entity: "CannedResponse" });
    const l = await t.ok(`{ cannedResponses { edges { node { id } } } }`, {}, other.apiKey);
    expect(l.cannedResponses.edges.map((e: any) => e.node.id)).not.toContain(c.id);
  });
});

describe("auto-reply templates", () => {
  it("creates with every allowed tag, defaults the subject and updates", async () => {
    const text =
      "Dear @{consumer}, we received your mail on @{date} at @{time} in @{queue} (@{ticket_id}). " +
      "@{agent} of @{company} will answer by @{next_working_date}.";
    const a = await create(AUTO.create, { name: "Ack", text, html: `<p>${text}</p>` });
    expect(a).toMatchObject({ __typename: "AutoReplyTemplate", subject: null, text });
    const u = await t.ok(AUTO.update, { id: a.id, input: { subject: "We got it [@{ticket_id}]" } });
    expect(u.updateAutoReplyTemplate).toMatchObject({ subject: "We got it [@{ticket_id}]", text });
    const l = await t.ok(`{ autoReplyTemplates { edges { node { id } } } }`, {}, agent.key);
    expect(l.autoReplyTemplates.edges.map((e: any) => e.node.id)).toContain(a.id);
    expect((await t.ok(AUTO.archive, { id: a.id })).archiveAutoReplyTemplate.archivedAt).not.toBeNull();
  });

  it.each([
    [{ text: "Hi @{customer}" }, "text", "@{customer}"],
    [{ html: "<p>@{agent_name}</p>" }, "html", "@{agent_name}"],
    [{ subject: "Re @{Ticket_ID}" }, "subject", "@{Ticket_ID}"],
    [{ text: "empty @{}" }, "text", "@{}"],
  ])("rejects unknown tags: %j on %s", async (input, field, tag) => {
    const r = await create(AUTO.create, { name: "Bad", ...input });
    expect(r).toMatchObject({ __typename: "ValidationError", field });
    expect(r.problems![0]!.message).toContain(`unknown tag ${tag}`);
  });

  it("checks tags on update and lets only ADMIN write", async () => {
    const a = await create(AUTO.create, { name: "Guarded", text: "Hello @{consumer}" });
    const bad = await t.ok(AUTO.update, { id: a.id, input: { text: "@{oops}" } });
    expect(bad.updateAutoReplyTemplate).toMatchObject({ __typename: "ValidationError", field: "text" });
    for (const key of [agent.key, supervisorKey]) {
      const r = await t.gql(AUTO.update, { id: a.id, input: { name: "x" } }, key);
      expect(r.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    }
    const f = await t.ok(AUTO.update, { id: a.id, input: { name: "x" } }, other.apiKey);
    expect(f.updateAutoReplyTemplate).toMatchObject({
      __typename: "NotFoundError",
      entity: "AutoReplyTemplate",
    });
  });
});
