import { afterAll, beforeAll, expect, it } from "vitest";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";

// STYLE 9: DataLoaders per request, no N+1. A page of 5 or of 20 conversations with their
// contacts, assignees, messages, attachments and timelines costs the same number of statements.
let counting = false;
let count = 0;
let t: TestApp;

beforeAll(async () => {
  t = await startTestApp({
    onQuery: () => {
      if (counting) count++;
    },
  });
  const addr = await createQueueWithAddress(t.db.db, t.tenantId);
  for (let i = 0; i < 20; i++) {
    const raw = buildRawMail({
      from: `c${i}@customer.example`,
      subject: `Case ${i}`,
      attachments: [{ filename: "a.txt", contentType: "text/plain", content: Buffer.from("x") }],
    });
    await t.ok(
      `mutation($a: ID!, $r: String!) { ingestRawMessage(addressId: $a, raw: $r, base64: true) { __typename } }`,
      {
        a: encodeId("EmailAddress", addr.addressId),
        r: raw.toString("base64"),
      },
    );
  }
});
afterAll(async () => {
  await t?.stop();
});

async function statementsFor(first: number): Promise<number> {
  // Authenticate once outside the count (key lookup is per request, not per row).
  await t.ok("{ viewer { role } }");
  count = 0;
  counting = true;
  const d = await t.ok(
    `query($n: Int!) { conversations(first: $n) { edges { node { id contact { email } assignee { name }
      messages(last: 10) { edges { node { subject attachments { filename } } } }
      timeline(first: 1) { edges { node { type } } pageInfo { hasNextPage } } } } } }`,
    { n: first },
  );
  counting = false;
  expect(d.conversations.edges).toHaveLength(first);
  // Each conversation's own first event (its mail received), with more after it.
  for (const e of d.conversations.edges) {
    expect(e.node.timeline.edges.map((x: { node: { type: string } }) => x.node.type)).toEqual([
      "message.received",
    ]);
    expect(e.node.timeline.pageInfo.hasNextPage).toBe(true);
  }
  return count;
}

it("costs the same statements for 5 or 20 conversations", async () => {
  // Background work (routing passes, the sweep) shares the pool and can only add
  // statements to a sample, so the minimum of a few samples is the request's own cost.
  await t.app.routing.idle();
  const small = Math.min(await statementsFor(5), await statementsFor(5), await statementsFor(5));
  const large = Math.min(await statementsFor(20), await statementsFor(20), await statementsFor(20));
  expect(large).toBe(small);
  expect(large).toBeLessThan(12);
});
