import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queueMember } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { decodeId, encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import { createSinkAccount, waitForStatus } from "../helpers/outbound.js";
import { buildRawMail } from "../helpers/raw-mail.js";
import { type SmtpSink, startCapturingSink } from "../helpers/smtp-sinks.js";

// What a security probe across roles, access profiles and tenants found (session 12):
// each test here failed before its fix.
let t: TestApp;
let sink: SmtpSink;
let q1: { queueId: string; addressId: string; address: string };
let q2: { queueId: string; addressId: string; address: string };
let unroutedAddr: { queueId: string; addressId: string; address: string };
let supAll: { id: string; key: string };
let supR: { id: string; key: string }; // access profile: q1 only
let agent1: { id: string; key: string }; // member of q1
let agent2: { id: string; key: string }; // member of q2
let seq = 0;

const gid = encodeId;

async function ingest(addressId: string, spec: Parameters<typeof buildRawMail>[0] = {}) {
  seq += 1;
  const r = await t.ok(
    `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw, base64: true) {
       ... on IngestOutcome { status conversation { id } } } }`,
    {
      a: gid("EmailAddress", addressId),
      raw: buildRawMail({ messageId: `gaps-${seq}@customer.example`, ...spec }).toString("base64"),
    },
  );
  return r.ingestRawMessage as { status: string; conversation: { id: string } | null };
}

beforeAll(async () => {
  t = await startTestApp({ env: { SEND_POLL_MS: "500" } });
  sink = await startCapturingSink({ starttls: false });
  const accountId = await createSinkAccount(t, sink);
  q1 = await createQueueWithAddress(t.db.db, t.tenantId, {
    address: "one@acme.test",
    addressFields: { accountId, bcc: ["hidden-audit@acme.test"] },
  });
  q2 = await createQueueWithAddress(t.db.db, t.tenantId, {
    address: "two@acme.test",
    addressFields: { accountId, spamRouting: "DROP" },
  });
  unroutedAddr = await createQueueWithAddress(t.db.db, t.tenantId, {
    address: "nowhere@acme.test",
    addressFields: { queueId: null },
  });
  supAll = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
  supR = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
  agent1 = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
  agent2 = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
  await t.db.db.insert(queueMember).values([
    { tenantId: t.tenantId, queueId: q1.queueId, userId: agent1.id },
    { tenantId: t.tenantId, queueId: q2.queueId, userId: agent2.id },
  ]);
  const profile = await t.ok(
    `mutation($i: AccessProfileInput!) { createAccessProfile(input: $i) { ... on AccessProfile { id } } }`,
    { i: { name: "Only Q1", queueIds: [gid("Queue", q1.queueId)] } },
  );
  await t.ok(`mutation($id: ID!, $i: UpdateUserInput!) { updateUser(id: $id, input: $i) { __typename } }`, {
    id: gid("User", supR.id),
    i: { accessProfileId: profile.createAccessProfile.id },
  });
});
afterAll(async () => {
  await t?.stop();
  await sink?.close();
});

describe("permission gaps", () => {
  it("a hidden BCC is not named in the timeline to an agent without SEE_BCC", async () => {
    const c = await ingest(q1.addressId, { to: q1.address, subject: "Walrus" });
    const reply = await t.ok(
      `mutation($c: ID!, $i: OutboundMessageInput!) { replyToConversation(conversationId: $c, input: $i) {
         __typename ... on Message { id } ... on Error { message } } }`,
      { c: c.conversation!.id, i: { text: "On its way" } },
      agent1.key,
    );
    expect(reply.replyToConversation.__typename).toBe("Message");
    await waitForStatus(t, decodeId(reply.replyToConversation.id, "Message"), ["SENT"]);
    const r = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on Conversation { timeline(first: 50) { edges { node { type payload } } } } } }`,
      { id: c.conversation!.id },
      agent1.key,
    );
    const sent = r.node.timeline.edges.map((e: any) => e.node).find((e: any) => e.type === "message.sent");
    expect(sent.payload.accepted).toEqual(["alice@customer.example"]);
    expect(sent.payload.bccAccepted).toBe(1);
    expect(JSON.stringify(r)).not.toContain("hidden-audit");
  });

  it("unrouted conversations: an access-profile supervisor can neither see nor act on them", async () => {
    const c = await ingest(unroutedAddr.addressId, { to: unroutedAddr.address, subject: "Lost" });
    const id = c.conversation!.id;
    const listed = async (key: string) =>
      (
        await t.ok(`{ conversations(filter: { unrouted: true }) { edges { node { id } } } }`, {}, key)
      ).conversations.edges.map((e: any) => e.node.id);
    expect(await listed(supAll.key)).toContain(id);
    expect(await listed(supR.key)).not.toContain(id);
    for (const [name, query, vars] of [
      ["pick", `mutation($c: ID!) { pickConversation(conversationId: $c) { __typename } }`, { c: id }],
      [
        "assign",
        `mutation($c: ID!, $a: ID!) { assignConversation(conversationId: $c, agentId: $a) { __typename } }`,
        { c: id, a: gid("User", agent1.id) },
      ],
      [
        "transfer",
        `mutation($c: ID!, $q: ID!) { transferConversation(conversationId: $c, queueId: $q) { __typename } }`,
        { c: id, q: gid("Queue", q1.queueId) },
      ],
    ] as const) {
      const r = await t.gql(query, vars, supR.key);
      expect(Object.values(r.data ?? {})[0], name).toMatchObject({ __typename: "NotFoundError" });
    }
    // Still where it was: nobody picked, assigned or moved it.
    const state = await t.ok(
      `query($id: ID!) { node(id: $id) { ... on Conversation { queueId assignee { id } } } }`,
      { id },
    );
    expect(state.node).toEqual({ queueId: null, assignee: null });
  });

  it("the tenant event stream: rejected mail for admins only, queue-less events only for those who see every queue, interrupts by the conversation's queue", async () => {
    const ev = `{ type conversationId queueId agentId }`;
    type Ev = { type: string; conversationId: string | null; queueId: string | null; agentId: string | null };
    const subscribe = (key: string) => {
      const out: Ev[] = [];
      const stop = t
        .ws(key)
        .subscribe<{ tenantEvents: Ev }>(
          { query: `subscription { tenantEvents ${ev} }` },
          { next: (v) => v.data && out.push(v.data.tenantEvents), error: () => {}, complete: () => {} },
        );
      return { out, stop };
    };
    const admin = subscribe(t.adminKey);
    const all = subscribe(supAll.key);
    const restricted = subscribe(supR.key);
    await new Promise((r) => setTimeout(r, 500));

    const inQ1 = await ingest(q1.addressId, { to: q1.address, subject: "In one" });
    await ingest(unroutedAddr.addressId, { to: unroutedAddr.address, subject: "Nowhere" });
    const spam = await ingest(q2.addressId, {
      to: q2.address,
      subject: "Spam",
      headers: { "X-Spam-Flag": "YES" },
    });
    expect(spam.status).toBe("rejected");
    // agent1 is given its q1 conversation (its ACTIVE one) and is interrupted by a voice call.
    await t.ok(
      `mutation($c: ID!, $a: ID!) { assignConversation(conversationId: $c, agentId: $a) { __typename } }`,
      { c: inQ1.conversation!.id, a: gid("User", agent1.id) },
    );
    await t.ok(`mutation($a: ID!) { interruptAgent(agentId: $a) { __typename } }`, {
      a: gid("User", agent1.id),
    });
    // Presence of an agent of q1 and of one of q2 only.
    for (const a of [agent1, agent2]) {
      await t.ok(`mutation { setPresence(presence: AWAY, reason: "lunch") { __typename } }`, {}, a.key);
    }
    await new Promise((r) => setTimeout(r, 1200));
    for (const s of [admin, all, restricted]) s.stop();

    const types = (s: { out: Ev[] }) => s.out.map((e) => e.type);
    expect(types(admin)).toContain("message.rejected");
    expect(types(all)).not.toContain("message.rejected");
    expect(types(restricted)).not.toContain("message.rejected");
    expect(types(all)).toContain("conversation.unrouted");
    expect(types(restricted)).not.toContain("conversation.unrouted");
    // Queue-less events reach the restricted supervisor only about its own agents.
    const presence = (s: { out: Ev[] }) =>
      s.out.filter((e) => e.type === "agent.presence_changed").map((e) => e.agentId);
    expect(presence(all).sort()).toEqual([gid("User", agent1.id), gid("User", agent2.id)].sort());
    expect(presence(restricted)).toEqual([gid("User", agent1.id)]);
    expect(restricted.out.filter((e) => e.queueId === null && e.type !== "agent.presence_changed")).toEqual(
      [],
    );
    // The interrupt names its conversation's queue, so the restricted supervisor of q1 gets it.
    const interrupted = admin.out.find((e) => e.type === "agent.interrupted");
    expect(interrupted?.conversationId).toBe(inQ1.conversation!.id);
    expect(interrupted?.queueId).toBe(gid("Queue", q1.queueId));
    expect(types(restricted)).toContain("agent.interrupted");
  });

  it("contacts: agents and access-profile supervisors see only customers of conversations they may see", async () => {
    await ingest(q2.addressId, {
      from: "Zed <zed-only-q2@customer.example>",
      to: q2.address,
      subject: "Zebra",
    });
    await ingest(q1.addressId, { from: "Wal <wal-q1@customer.example>", to: q1.address, subject: "Walrus" });
    const search = async (key: string, s: string) =>
      (
        await t.ok(`query($s: String) { contacts(search: $s) { edges { node { id email } } } }`, { s }, key)
      ).contacts.edges.map((e: any) => e.node);
    for (const key of [agent1.key, supR.key]) {
      expect(await search(key, "zed-only")).toEqual([]);
      expect((await search(key, "wal-q1")).map((c: any) => c.email)).toEqual(["wal-q1@customer.example"]);
    }
    const [zed] = await search(supAll.key, "zed-only");
    expect(zed.email).toBe("zed-only-q2@customer.example");
    const node = `query($id: ID!) { node(id: $id) { ... on Contact { email } } }`;
    expect((await t.ok(node, { id: zed.id }, agent1.key)).node).toBeNull();
    expect((await t.ok(node, { id: zed.id }, supR.key)).node).toBeNull();
    expect((await t.ok(node, { id: zed.id }, agent2.key)).node).toEqual({
      email: "zed-only-q2@customer.example",
    });
  });

  it("an access-profile supervisor cannot interrupt or resume agents outside its queues", async () => {
    for (const m of ["interruptAgent", "resumeAgent"]) {
      const r = await t.gql(
        `mutation($a: ID!) { ${m}(agentId: $a) { __typename } }`,
        { a: gid("User", agent2.id) },
        supR.key,
      );
      expect(r.data?.[m], m).toEqual({ __typename: "NotFoundError" });
    }
    const own = await t.gql(
      `mutation($a: ID!) { interruptAgent(agentId: $a) { __typename } }`,
      { a: gid("User", agent1.id) },
      supR.key,
    );
    expect(own.data?.interruptAgent).toEqual({ __typename: "AgentInterruption" });
    await t.ok(
      `mutation($a: ID!) { resumeAgent(agentId: $a) { __typename } }`,
      { a: gid("User", agent1.id) },
      supR.key,
    );
  });

  it("transferConversation takes only the tenant's own live skills", async () => {
    const c = await ingest(q1.addressId, { to: q1.address, subject: "Skills" });
    const other = await createTenantWithAdmin(t.db.db, {
      tenantName: "Other",
      adminEmail: "admin@other.test",
    });
    const foreign = await t.ok(
      `mutation { createSkill(input: { name: "foreign-skill" }) { ... on Skill { id } } }`,
      {},
      other.apiKey,
    );
    for (const skill of [foreign.createSkill.id, gid("Skill", "00000000-0000-4000-8000-000000000000")]) {
      const r = await t.ok(
        `mutation($c: ID!, $q: ID!, $s: [ID!]) { transferConversation(conversationId: $c, queueId: $q, requiredSkillIds: $s) {
           __typename ... on ValidationError { field } } }`,
        { c: c.conversation!.id, q: gid("Queue", q2.queueId), s: [skill] },
      );
      expect(r.transferConversation).toEqual({ __typename: "ValidationError", field: "requiredSkillIds[0]" });
    }
  });
});
