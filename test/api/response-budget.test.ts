import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contact, conversation, message } from "../../src/db/schema/index.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";

// The cost limit counts a message body as one field, whatever its size. A fourth re-probe
// (session 16) repeated a 16.8 MB body through nodes(ids:) and aliases: ~512 MB of response
// at 1 % of the cost limit, and with inlineHtml (a new copy each) the process ran out of
// heap. A response now carries at most GRAPHQL_MAX_RESPONSE_BODY_MB of bodies.

let t: TestApp;
let convId: string;
const body = "x".repeat(400 * 1024); // 0.4 MB of text and of HTML

beforeAll(async () => {
  t = await startTestApp({ env: { GRAPHQL_MAX_RESPONSE_BODY_MB: "1" } });
  const { queueId } = await createQueueWithAddress(t.db.db, t.tenantId);
  const [c] = await t.db.db
    .insert(contact)
    .values({ tenantId: t.tenantId, email: "big@customer.example" })
    .returning({ id: contact.id });
  const now = new Date();
  const [conv] = await t.db.db
    .insert(conversation)
    .values({
      tenantId: t.tenantId,
      ticketNumber: 900_001,
      subject: "big",
      contactId: c!.id,
      queueId,
      receivedAt: now,
      lastActivityAt: now,
      statusChangedAt: now,
    })
    .returning({ id: conversation.id });
  convId = conv!.id;
  await t.db.db.insert(message).values({
    tenantId: t.tenantId,
    conversationId: convId,
    direction: "INBOUND",
    subject: "big",
    text: body,
    html: `<p>${body}</p><img src="cid:logo@x">`,
    receivedAt: now,
  });
});
afterAll(async () => {
  await t?.stop();
});

const ask = (field: string, copies: number) =>
  t.gql(
    `query($ids: [ID!]!) { nodes(ids: $ids) { ... on Conversation { messages(first: 1) { edges { node { ${field} } } } } } }`,
    { ids: Array.from({ length: copies }, () => encodeId("Conversation", convId)) },
  );

describe("message bodies per response", () => {
  it("serves bodies up to the budget", async () => {
    const r = await ask("text", 2);
    expect(r.errors).toBeUndefined();
    expect(JSON.stringify(r.data).length).toBeGreaterThan(800 * 1024);
  });

  it.each(["text", "html", "inlineHtml"])(
    "refuses %s past it with RESPONSE_TOO_LARGE, not a crash",
    async (field) => {
      const r = await ask(field, 4);
      expect(new Set(r.errors?.map((e) => e.extensions?.code))).toEqual(new Set(["RESPONSE_TOO_LARGE"]));
    },
  );

  it("counts each request on its own", async () => {
    for (let i = 0; i < 3; i++) expect((await ask("html", 2)).errors).toBeUndefined();
  });
});
