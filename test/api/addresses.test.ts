import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createReferencedObjects } from "../helpers/channel-fixtures.js";
import { createUserWithKey } from "../helpers/fixtures.js";

let t: TestApp;
let refs: Awaited<ReturnType<typeof createReferencedObjects>>;
let foreignRefs: Awaited<ReturnType<typeof createReferencedObjects>>;
let other: Awaited<ReturnType<typeof createTenantWithAdmin>>;
let accountId: string;
let outboundAccountId: string;
let queueId: string;

const ADDRESS_FIELDS = `id address name displayName fromAddress replyTo bcc account { id kind } queue { id name }
  requiredSkillIds language priority spamRouting spamQueue { id } outboundAllowed forceTls ticketPlacement ticketDelimiter
  threadingMode signaturePolicy historyPolicy brandedTemplateId slaPolicyId archivedAt`;

const CREATE = `mutation($input: EmailAddressInput!) { createEmailAddress(input: $input) {
  __typename
  ... on EmailAddress { ${ADDRESS_FIELDS} }
  ... on ValidationError { field problems { field message } }
} }`;
const UPDATE = `mutation($id: ID!, $input: EmailAddressInput!) { updateEmailAddress(id: $id, input: $input) {
  __typename
  ... on EmailAddress { ${ADDRESS_FIELDS} }
  ... on ValidationError { field problems { field message } }
  ... on NotFoundError { entity }
} }`;

let n = 0;
const unique = () => `support${++n}@acme.test`;

beforeAll(async () => {
  t = await startTestApp();
  refs = await createReferencedObjects(t.db.db, t.tenantId);
  other = await createTenantWithAdmin(t.db.db, { tenantName: "Other", adminEmail: "x@other.test" });
  foreignRefs = await createReferencedObjects(t.db.db, other.tenantId);
  const acc = await t.ok(
    `mutation { createMailAccount(input: { name: "Main", imapHost: "imap.acme.test", imapUser: "u", smtpHost: "smtp.acme.test" }) { ... on MailAccount { id } } }`,
  );
  accountId = acc.createMailAccount.id;
  const out = await t.ok(
    `mutation { createMailAccount(input: { name: "Out", kind: OUTBOUND_ONLY, smtpHost: "smtp.acme.test" }) { ... on MailAccount { id } } }`,
  );
  outboundAccountId = out.createMailAccount.id;
  const q = await t.ok(`mutation { createQueue(input: { name: "Support" }) { ... on Queue { id } } }`);
  queueId = q.createQueue.id;
});
afterAll(async () => {
  await t?.stop();
});

async function create(input: Record<string, unknown>) {
  return (await t.ok(CREATE, { input })).createEmailAddress;
}

describe("email addresses", () => {
  it("creates with every field, reads it back, updates and archives", async () => {
    const input = {
      address: "Help@Acme.test",
      name: "Help desk",
      displayName: "Acme Support",
      fromAddress: "noreply@acme.test",
      replyTo: "help@acme.test",
      bcc: ["audit@acme.test", "archive@acme.test"],
      accountId,
      queueId,
      requiredSkillIds: [refs.skillId],
      language: "de-CH",
      priority: 50,
      spamRouting: "QUEUE",
      spamQueueId: queueId,
      outboundAllowed: false,
      forceTls: true,
      ticketPlacement: "START",
      ticketDelimiter: "CURLY",
      threadingMode: "TICKET_ONLY",
      signaturePolicy: "FIRST_REPLY",
      historyPolicy: "AGENT_DECIDES",
      brandedTemplateId: refs.brandedTemplateId,
      slaPolicyId: refs.slaPolicyId,
    };
    const a = await create(input);
    expect(a).toMatchObject({
      __typename: "EmailAddress",
      address: "Help@Acme.test",
      name: "Help desk",
      displayName: "Acme Support",
      fromAddress: "noreply@acme.test",
      replyTo: "help@acme.test",
      bcc: ["audit@acme.test", "archive@acme.test"],
      account: { id: accountId, kind: "INBOUND_OUTBOUND" },
      queue: { id: queueId, name: "Support" },
      requiredSkillIds: [refs.skillId],
      language: "de-CH",
      priority: 50,
      spamRouting: "QUEUE",
      spamQueue: { id: queueId },
      outboundAllowed: false,
      forceTls: true,
      ticketPlacement: "START",
      ticketDelimiter: "CURLY",
      threadingMode: "TICKET_ONLY",
      signaturePolicy: "FIRST_REPLY",
      historyPolicy: "AGENT_DECIDES",
      brandedTemplateId: refs.brandedTemplateId,
      slaPolicyId: refs.slaPolicyId,
    });
    const u = await t.ok(UPDATE, {
      id: a.id,
      input: { bcc: [], replyTo: null, spamRouting: "DROP", brandedTemplateId: null, priority: null },
    });
    expect(u.updateEmailAddress).toMatchObject({
      bcc: [],
      replyTo: null,
      spamRouting: "DROP",
      brandedTemplateId: null,
      priority: null,
      displayName: "Acme Support",
    });
    const list = await t.ok(`{ emailAddresses(search: "help") { edges { node { id } } } }`);
    expect(list.emailAddresses.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([a.id]);
    const arch = await t.ok(
      `mutation($id: ID!) { archiveEmailAddress(id: $id) { ... on EmailAddress { archivedAt } } }`,
      { id: a.id },
    );
    expect(arch.archiveEmailAddress.archivedAt).not.toBeNull();
    const after = await t.ok(`{ emailAddresses(search: "help") { edges { node { id } } } }`);
    expect(after.emailAddresses.edges).toHaveLength(0);
  });

  // An archived address could never be used again, by this tenant or any other (the unique
  // index held archived rows), and edits to it were accepted and did nothing (config probe,
  // session 17).
  it("an archived address is free again, in this tenant and in another; the archived one takes no edits", async () => {
    const address = unique();
    const a = await create({ address: address.toUpperCase(), name: "Retired" });
    await t.ok(`mutation($id: ID!) { archiveEmailAddress(id: $id) { __typename } }`, { id: a.id });
    const edit = await t.ok(
      `mutation($id: ID!, $input: EmailAddressInput!) { updateEmailAddress(id: $id, input: $input) {
        __typename ... on ConflictError { code message } } }`,
      { id: a.id, input: { name: "Still here?" } },
    );
    expect(edit.updateEmailAddress).toEqual({
      __typename: "ConflictError",
      code: "ARCHIVED",
      message: "this address is archived: create it again to use it",
    });
    const again = await create({ address, name: "Back" });
    expect(again).toMatchObject({ __typename: "EmailAddress", address });
    expect(again.id).not.toBe(a.id);
    // Live, it is taken again: for this tenant and for every other.
    expect(await create({ address, name: "Twice" })).toMatchObject({
      __typename: "ValidationError",
      problems: [{ field: "address", message: "this address is already in use" }],
    });
    await t.ok(`mutation($id: ID!) { archiveEmailAddress(id: $id) { __typename } }`, { id: again.id });
    const theirs = (await t.ok(CREATE, { input: { address, name: "Theirs" } }, other.apiKey))
      .createEmailAddress;
    expect(theirs).toMatchObject({ __typename: "EmailAddress", address });
  });

  it("refuses threading by ticket number only with a hidden ticket number, naming the field sent", async () => {
    const both = await create({
      address: unique(),
      name: "Both",
      threadingMode: "TICKET_ONLY",
      ticketPlacement: "HIDDEN",
    });
    expect(both).toMatchObject({ __typename: "ValidationError", field: "threadingMode" });
    const a = await create({ address: unique(), name: "Ticket only", threadingMode: "TICKET_ONLY" });
    const hide = await t.ok(UPDATE, { id: a.id, input: { ticketPlacement: "HIDDEN" } });
    expect(hide.updateEmailAddress).toMatchObject({
      __typename: "ValidationError",
      problems: [
        {
          field: "ticketPlacement",
          message: "HIDDEN leaves nothing to thread by under threadingMode TICKET_ONLY",
        },
      ],
    });
    // Switching both in one call is fine.
    const swap = await t.ok(UPDATE, {
      id: a.id,
      input: { ticketPlacement: "HIDDEN", threadingMode: "REFERENCES_THEN_TICKET" },
    });
    expect(swap.updateEmailAddress).toMatchObject({
      ticketPlacement: "HIDDEN",
      threadingMode: "REFERENCES_THEN_TICKET",
    });
  });

  it("applies the documented defaults", async () => {
    const a = await create({ address: unique(), name: "Defaults" });
    expect(a).toMatchObject({
      displayName: "",
      fromAddress: null,
      bcc: [],
      account: null,
      queue: null,
      spamRouting: "TAG",
      outboundAllowed: true,
      forceTls: false,
      ticketPlacement: "END",
      ticketDelimiter: "SQUARE",
      threadingMode: "REFERENCES_THEN_TICKET",
      signaturePolicy: "ALL",
      historyPolicy: "ALWAYS",
    });
  });

  it("refuses an address used by any tenant, case-insensitively", async () => {
    await create({ address: "sales@acme.test", name: "Sales" });
    const again = await create({ address: "SALES@acme.test", name: "Sales 2" });
    expect(again).toMatchObject({ __typename: "ValidationError", field: "address" });
    const theirs = await t.ok(
      CREATE,
      { input: { address: "Sales@ACME.test", name: "Theirs" } },
      other.apiKey,
    );
    expect(theirs.createEmailAddress).toMatchObject({ __typename: "ValidationError", field: "address" });
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["missing address", { address: undefined }, "address"],
    ["invalid address", { address: "not an address" }, "address"],
    ["address with CRLF", { address: "a@acme.test\r\nBcc: x@evil.test" }, "address"],
    ["empty name", { name: "" }, "name"],
    ["name with line break", { name: "a\nb" }, "name"],
    ["display name with CRLF", { displayName: "Acme\r\nBcc: x@evil.test" }, "displayName"],
    ["display name with NUL", { displayName: "Acme\u0000" }, "displayName"],
    ["invalid from", { fromAddress: "nope" }, "fromAddress"],
    ["from with LF", { fromAddress: "a@acme.test\nX: y" }, "fromAddress"],
    ["invalid reply-to", { replyTo: "x@" }, "replyTo"],
    ["six bcc", { bcc: ["a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test", "f@x.test"] }, "bcc"],
    ["invalid bcc", { bcc: ["ok@x.test", "bad"] }, "bcc[1]"],
    ["bcc with CRLF", { bcc: ["a@x.test\r\nSubject: hi"] }, "bcc[0]"],
    ["repeated bcc", { bcc: ["a@x.test", "A@x.test"] }, "bcc"],
    ["bad language", { language: "english please" }, "language"],
    ["priority too high", { priority: 1001 }, "priority"],
    ["priority negative", { priority: -1 }, "priority"],
    ["spam QUEUE without queue", { spamRouting: "QUEUE" }, "spamQueueId"],
    [
      "unknown account",
      { accountId: Buffer.from("MailAccount:00000000-0000-4000-8000-000000000000").toString("base64") },
      "accountId",
    ],
    ["malformed queue id", { queueId: "garbage" }, "queueId"],
    ["foreign skill", { requiredSkillIds: ["SKILL"] }, "requiredSkillIds[0]"],
    ["foreign branded template", { brandedTemplateId: "FOREIGN_TPL" }, "brandedTemplateId"],
    ["foreign SLA policy", { slaPolicyId: "FOREIGN_SLA" }, "slaPolicyId"],
  ])("rejects %s", async (_label, patch, field) => {
    const input: Record<string, unknown> = { address: unique(), name: "Bad", ...patch };
    if (input.requiredSkillIds) input.requiredSkillIds = [foreignRefs.skillId];
    if (input.brandedTemplateId === "FOREIGN_TPL") input.brandedTemplateId = foreignRefs.brandedTemplateId;
    if (input.slaPolicyId === "FOREIGN_SLA") input.slaPolicyId = foreignRefs.slaPolicyId;
    const r = await create(input);
    expect(r.__typename).toBe("ValidationError");
    expect(r.problems.map((p: { field: string }) => p.field)).toContain(field);
  });

  it("keeps five BCC addresses", async () => {
    const bcc = ["a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test"];
    expect((await create({ address: unique(), name: "Five", bcc })).bcc).toEqual(bcc);
  });

  it("refuses moving a queue's default address onto an outbound-only account, and archiving it", async () => {
    const a = await create({ address: unique(), name: "Default", accountId });
    await t.ok(
      `mutation($id: ID!, $a: ID!) { updateQueue(id: $id, input: { defaultAddressId: $a }) { __typename } }`,
      {
        id: queueId,
        a: a.id,
      },
    );
    const r = await t.ok(UPDATE, { id: a.id, input: { accountId: outboundAccountId } });
    expect(r.updateEmailAddress).toMatchObject({ __typename: "ValidationError", field: "accountId" });
    const arch = await t.ok(`mutation($id: ID!) { archiveEmailAddress(id: $id) { __typename } }`, {
      id: a.id,
    });
    expect(arch.archiveEmailAddress.__typename).toBe("ConflictError");
    // Not a default address any more: both are allowed.
    await t.ok(
      `mutation($id: ID!) { updateQueue(id: $id, input: { defaultAddressId: null }) { __typename } }`,
      {
        id: queueId,
      },
    );
    const ok = await t.ok(UPDATE, { id: a.id, input: { accountId: outboundAccountId } });
    expect(ok.updateEmailAddress.account).toEqual({ id: outboundAccountId, kind: "OUTBOUND_ONLY" });
  });

  it("lets every user read addresses but shows BCC and the account only to those allowed", async () => {
    const a = await create({ address: unique(), name: "Visible", bcc: ["audit@acme.test"], accountId });
    const agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT");
    const supervisor = await createUserWithKey(t.db.db, t.tenantId, "SUPERVISOR");
    const q = `query($id: ID!) { node(id: $id) { ... on EmailAddress { address bcc account { id } } } }`;
    expect((await t.ok(q, { id: a.id }, agent.key)).node).toEqual({
      address: a.address,
      bcc: null,
      account: null,
    });
    // Supervisors hold SEE_BCC by default (tenant role permissions).
    expect((await t.ok(q, { id: a.id }, supervisor.key)).node.bcc).toEqual(["audit@acme.test"]);
    for (const key of [agent.key, supervisor.key]) {
      const w = await t.gql(CREATE, { input: { address: unique(), name: "Nope" } }, key);
      expect(w.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      const u = await t.gql(UPDATE, { id: a.id, input: { name: "Nope" } }, key);
      expect(u.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    }
  });

  it("treats another tenant's address as not found", async () => {
    const theirs = await t.ok(CREATE, { input: { address: unique(), name: "Theirs" } }, other.apiKey);
    const r = await t.ok(UPDATE, { id: theirs.createEmailAddress.id, input: { name: "Mine" } });
    expect(r.updateEmailAddress).toMatchObject({ __typename: "NotFoundError", entity: "EmailAddress" });
    const node = await t.ok(`query($id: ID!) { node(id: $id) { id } }`, { id: theirs.createEmailAddress.id });
    expect(node.node).toBeNull();
  });
});
