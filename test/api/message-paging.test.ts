import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contact, conversation, message } from "../../src/db/schema/index.js";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";

// `Conversation.messages` is a connection (session 16). Before, it was every message of
// the conversation in one list: a thread of thousands of mails (a monitoring system that
// writes every minute under one ticket number) came back whole, under each of 30 aliases.

let t: TestApp;
let longConv: string;
let shortConv: string;
const N = 530; // more messages than a page may hold (500)
const statements: string[] = [];
let recording = false;

beforeAll(async () => {
  t = await startTestApp({ onQuery: (q) => void (recording && statements.push(q)) });
  const { queueId } = await createQueueWithAddress(t.db.db, t.tenantId);
  const [c] = await t.db.db
    .insert(contact)
    .values({ tenantId: t.tenantId, email: "monitor@customer.example" })
    .returning({ id: contact.id });
  const base = Date.parse("2026-11-01T00:00:00Z");
  const convs = await t.db.db
    .insert(conversation)
    .values(
      [0, 1].map((i) => ({
        tenantId: t.tenantId,
        ticketNumber: 800_000 + i,
        subject: `alerts ${i}`,
        contactId: c!.id,
        queueId,
        receivedAt: new Date(base),
        lastActivityAt: new Date(base),
        statusChangedAt: new Date(base),
      })),
    )
    .returning({ id: conversation.id });
  longConv = convs[0]!.id;
  shortConv = convs[1]!.id;
  // Every third pair of messages shares its received time, so the order needs the tie-breaks.
  await t.db.db.insert(message).values(
    Array.from({ length: N }, (_, i) => ({
      tenantId: t.tenantId,
      conversationId: longConv,
      direction: "INBOUND" as const,
      subject: `alert ${i}`,
      receivedAt: new Date(base + Math.floor(i / 2) * 1000),
      createdAt: new Date(base + i),
    })),
  );
  await t.db.db.insert(message).values(
    [0, 1, 2].map((i) => ({
      tenantId: t.tenantId,
      conversationId: shortConv,
      direction: "INBOUND" as const,
      subject: `short ${i}`,
      receivedAt: new Date(base + i * 1000),
    })),
  );
});
afterAll(async () => {
  await t?.stop();
});

interface Page {
  edges: { cursor: string; node: { subject: string } }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

async function page(conv: string, args: string, key?: string): Promise<Page> {
  const d = await t.ok<{ node: { messages: Page } }>(
    `query($id: ID!) { node(id: $id) { ... on Conversation { messages${args ? `(${args})` : ""} {
       edges { cursor node { subject } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } } }`,
    { id: encodeId("Conversation", conv) },
    key,
  );
  return d.node.messages;
}
const subjects = (p: Page) => p.edges.map((e) => e.node.subject);
const all = Array.from({ length: N }, (_, i) => `alert ${i}`);

describe("Conversation.messages", () => {
  it("serves 100 by default, oldest first, and says more follow", async () => {
    const p = await page(longConv, "");
    expect(subjects(p)).toEqual(all.slice(0, 100));
    expect(p.pageInfo).toMatchObject({ hasNextPage: true, hasPreviousPage: false });
  });

  it("pages forward to the end with nothing left out or doubled", async () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (let i = 0; i < 10; i++) {
      const p: Page = await page(longConv, after ? `first: 120, after: "${after}"` : "first: 120");
      seen.push(...subjects(p));
      if (!p.pageInfo.hasNextPage) break;
      expect(p.pageInfo.hasPreviousPage).toBe(after !== null);
      after = p.pageInfo.endCursor;
    }
    expect(seen).toEqual(all);
  });

  it("pages back from the newest with last/before, each page oldest first", async () => {
    const newest = await page(longConv, "last: 20");
    expect(subjects(newest)).toEqual(all.slice(N - 20));
    expect(newest.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
    const seen = subjects(newest);
    let before = newest.pageInfo.startCursor;
    for (let i = 0; i < 10 && before; i++) {
      const p = await page(longConv, `last: 200, before: "${before}"`);
      expect(p.pageInfo.hasNextPage).toBe(true);
      seen.unshift(...subjects(p));
      before = p.pageInfo.hasPreviousPage ? p.pageInfo.startCursor : null;
    }
    expect(seen).toEqual(all);
  });

  it("serves a size over the cap as the cap (500), with more to come", async () => {
    // Cursors only: with each node's fields, 500 a page is over the default cost limit.
    const lean = async (args: string) =>
      (
        await t.ok(
          `query($id: ID!) { node(id: $id) { ... on Conversation { messages(${args}) {
             edges { cursor } pageInfo { hasNextPage hasPreviousPage } } } } }`,
          { id: encodeId("Conversation", longConv) },
        )
      ).node.messages;
    const fwd = await lean("first: 501");
    expect(fwd.edges).toHaveLength(500);
    expect(fwd.pageInfo.hasNextPage).toBe(true);
    const back = await lean("last: 501");
    expect(back.edges).toHaveLength(500);
    // The oldest of the newest 500 is message 30.
    expect(back.edges[0].cursor).toBe((await page(longConv, "first: 31")).pageInfo.endCursor);
    expect(back.pageInfo.hasPreviousPage).toBe(true);
  });

  it("a short thread fits one page either way", async () => {
    for (const args of ["", "first: 3", "last: 3", "last: 50"]) {
      const p = await page(shortConv, args);
      expect(subjects(p), args).toEqual(["short 0", "short 1", "short 2"]);
      expect(p.pageInfo.hasNextPage || p.pageInfo.hasPreviousPage, args).toBe(false);
    }
    expect((await page(shortConv, "first: 0")).edges).toEqual([]);
  });

  it("refuses mixed directions, negative sizes and cursors the server did not make", async () => {
    const id = encodeId("Conversation", longConv);
    const ask = (args: string) =>
      t.gql(
        `query($id: ID!) { node(id: $id) { ... on Conversation { messages(${args}) { edges { cursor } } } } }`,
        {
          id,
        },
      );
    const someCursor = (await page(longConv, "first: 1")).pageInfo.endCursor!;
    for (const [args, code] of [
      [`first: 5, before: "${someCursor}"`, "BAD_USER_INPUT"],
      [`last: 5, after: "${someCursor}"`, "BAD_USER_INPUT"],
      ["first: 1, last: 1", "BAD_USER_INPUT"],
      ["first: -1", "BAD_USER_INPUT"],
      ["last: -1", "BAD_USER_INPUT"],
      [`after: "bm90YXV1aWQ"`, "VALIDATION"],
      [`before: "${Buffer.from("OffsetConnection:3").toString("base64")}"`, "VALIDATION"],
    ] as const) {
      const r = await ask(args);
      expect(
        r.errors?.map((e) => e.extensions?.code),
        args,
      ).toEqual([code]);
    }
  });

  it("a cursor of another conversation gives an empty page, never its messages", async () => {
    const foreign = (await page(longConv, "first: 1")).pageInfo.endCursor!;
    const p = await page(shortConv, `first: 10, after: "${foreign}"`);
    expect(p.edges).toEqual([]);
    expect(p.pageInfo.hasNextPage).toBe(false);
  });

  it("is one statement for a page of conversations, whatever their number", async () => {
    const q = `{ conversations(first: 10) { edges { node { messages(last: 5) { edges { node { subject } } } } } } }`;
    statements.length = 0;
    recording = true;
    const d = await t.ok(q);
    recording = false;
    const lists = d.conversations.edges.map((e: { node: { messages: Page } }) => subjects(e.node.messages));
    expect(lists).toContainEqual(all.slice(N - 5));
    expect(lists).toContainEqual(["short 0", "short 1", "short 2"]);
    expect(statements.filter((s) => /from "message"/i.test(s))).toHaveLength(1);
  });

  it("the cost limit counts the page size", async () => {
    const aliases = Array.from(
      { length: 30 },
      (_, i) =>
        `a${i}: conversations(first: 200) { edges { node { messages(first: 500) { edges { node { subject } } } } } }`,
    ).join(" ");
    const r = await t.gql(`{ ${aliases} }`);
    expect(r.errors?.[0]?.message).toMatch(/cost/i);
  });
});
