import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { conversation, event, message } from "../../src/db/schema/index.js";
import { createTenantWithAdmin } from "../../src/engine/auth.js";
import { DAY, ManualClock } from "../../src/engine/clock.js";
import { type IngestResult, ingestMessages } from "../../src/engine/ingest/ingest.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { ingestRaw } from "../helpers/ingest.js";
import { buildRawMail, type RawMailSpec } from "../helpers/raw-mail.js";

// Threading faults a probe found (session 13): a long References that names only the
// thread's root, and the mails a customer sends after the reopen window to a closed
// conversation — each opened a new conversation of its own.

const clock = new ManualClock("2026-03-02T09:00:00Z");
let t: TestApp;
let A: { tenantId: string; addressId: string };
let n = 0;
const uid = (p = "m") => `${p}-${++n}-${randomBytes(3).toString("hex")}@customer.example`;

const send = (spec: RawMailSpec, receivedAt = clock.now()) =>
  ingestRaw(t.app.engine, A, buildRawMail(spec), { receivedAt });
function stored(r: IngestResult) {
  if (r.status !== "stored") throw new Error(`not stored: ${JSON.stringify(r)}`);
  return r;
}

beforeAll(async () => {
  t = await startTestApp({ clock });
  A = {
    tenantId: t.tenantId,
    ...(await createQueueWithAddress(t.db.db, t.tenantId, { address: "support@acme.test" })),
  };
});
afterAll(async () => {
  await t?.stop();
});

describe("threading: follow-ups", () => {
  it("a reply whose long References names only the thread's root joins the conversation the root started", async () => {
    const root = uid("root");
    const a = stored(await send({ messageId: root, subject: "Long thread" }));
    const references = [`<${root}>`, ...Array.from({ length: 120 }, () => `<${uid("elsewhere")}>`)].join(" ");
    const r = stored(
      await send({ messageId: uid(), subject: "Re: Long thread", headers: { References: references } }),
    );
    expect(r.conversationId).toBe(a.conversationId);
  });

  async function closedLongAgo() {
    const id = uid("old");
    const closedAt = new Date(clock.now().getTime() - 60 * DAY);
    const a = stored(
      await send({ messageId: id, subject: "Closed case" }, new Date(closedAt.getTime() - DAY)),
    );
    await t.db.db
      .update(conversation)
      .set({ status: "CLOSED", workState: "DONE", closedAt })
      .where(eq(conversation.id, a.conversationId));
    return { a, id };
  }

  it("after the reopen window the first mail opens a new linked conversation, and the next ones join it", async () => {
    const { a, id } = await closedLongAgo();
    const reply = () =>
      send({
        messageId: uid(),
        subject: `Re: Closed case [#${a.ticketNumber}]`,
        headers: { "In-Reply-To": `<${id}>` },
      });
    const r1 = stored(await reply());
    expect(r1.created).toBe(true);
    const [c1] = await t.db.db.select().from(conversation).where(eq(conversation.id, r1.conversationId));
    expect(c1!.previousConversationId).toBe(a.conversationId);
    const r2 = stored(await reply());
    const r3 = stored(await reply());
    expect([r2.conversationId, r3.conversationId]).toEqual([r1.conversationId, r1.conversationId]);
    expect(r2.created).toBe(false);
    const msgs = await t.db.db.select().from(message).where(eq(message.conversationId, r1.conversationId));
    expect(msgs).toHaveLength(3);
    // Once the follow-up is closed too, the next mail opens another one.
    await t.db.db
      .update(conversation)
      .set({ status: "CLOSED", workState: "DONE", closedAt: new Date(clock.now().getTime() - 40 * DAY) })
      .where(eq(conversation.id, r1.conversationId));
    const r4 = stored(await reply());
    expect(r4.created).toBe(true);
    expect(r4.conversationId).not.toBe(r1.conversationId);
    // ... linked to the newest of the chain, which the next mails join in turn.
    const [c4] = await t.db.db.select().from(conversation).where(eq(conversation.id, r4.conversationId));
    expect(c4!.previousConversationId).toBe(r1.conversationId);
    expect(stored(await reply()).conversationId).toBe(r4.conversationId);
  });

  it("a follow-up closed inside its reopen window is reopened by the next reply to the old mail", async () => {
    // Until session 16 a CLOSED follow-up was passed over and each reply opened another one.
    const { a, id } = await closedLongAgo();
    const reply = () =>
      send({ messageId: uid(), subject: "Re: Closed case", headers: { "In-Reply-To": `<${id}>` } });
    const r1 = stored(await reply());
    expect(r1.created).toBe(true);
    await t.db.db
      .update(conversation)
      .set({ status: "CLOSED", workState: "DONE", closedAt: new Date(clock.now().getTime() - DAY) })
      .where(eq(conversation.id, r1.conversationId));
    const r2 = stored(await reply());
    expect(r2.created).toBe(false);
    expect(r2.conversationId).toBe(r1.conversationId);
    const [c1] = await t.db.db.select().from(conversation).where(eq(conversation.id, r1.conversationId));
    expect(c1!.status).toBe("REOPENED");
    const [old] = await t.db.db.select().from(conversation).where(eq(conversation.id, a.conversationId));
    expect(old!.status).toBe("CLOSED");
  });

  it("a chain of 25 follow-ups: the next reply to the old mail joins the newest, open one (re-probe, session 16)", async () => {
    // The walk along the chain stopped after 20 links, and from there every reply to the
    // old mail opened another conversation.
    const { a, id } = await closedLongAgo();
    const reply = () =>
      send({ messageId: uid(), subject: "Re: Closed case", headers: { "In-Reply-To": `<${id}>` } });
    let newest = a.conversationId;
    for (let i = 0; i < 25; i++) {
      const r = stored(await reply());
      expect(r.created, `link ${i}`).toBe(true);
      const [c] = await t.db.db.select().from(conversation).where(eq(conversation.id, r.conversationId));
      expect(c!.previousConversationId, `link ${i}`).toBe(newest);
      newest = r.conversationId;
      await t.db.db
        .update(conversation)
        .set({ status: "CLOSED", workState: "DONE", closedAt: new Date(clock.now().getTime() - 40 * DAY) })
        .where(eq(conversation.id, newest));
    }
    // The newest, reopened by hand (as an agent would), takes the next two replies.
    await t.db.db
      .update(conversation)
      .set({ status: "ACTIVE", closedAt: null })
      .where(eq(conversation.id, newest));
    const r1 = stored(await reply());
    const r2 = stored(await reply());
    expect([r1.conversationId, r2.conversationId]).toEqual([newest, newest]);
  });

  it("two such mails at once open one conversation, not two", async () => {
    const { a, id } = await closedLongAgo();
    const rs = await Promise.all(
      [0, 1].map(() =>
        send({
          messageId: uid(),
          subject: `Re: Closed case [#${a.ticketNumber}]`,
          headers: { "In-Reply-To": `<${id}>` },
        }),
      ),
    );
    const ids = rs.map((r) => stored(r).conversationId);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[0]).not.toBe(a.conversationId);
  });

  it("by ticket number, everyone copied or written to in the conversation belongs to it; the tenant's own addresses never do", async () => {
    const tk = await createQueueWithAddress(t.db.db, t.tenantId, {
      address: "team@acme.test",
      addressFields: { threadingMode: "TICKET_ONLY" },
    });
    const to = { tenantId: t.tenantId, addressId: tk.addressId };
    const sendTo = (spec: RawMailSpec) =>
      ingestRaw(t.app.engine, to, buildRawMail(spec), { receivedAt: clock.now() });
    const a = stored(
      await sendTo({
        messageId: uid(),
        subject: "Team issue",
        from: "hank@customer.example",
        to: "team@acme.test",
        headers: { Cc: "ivy@customer.example" },
      }),
    );
    // The agent writes to a supplier from the conversation.
    await t.db.db.insert(message).values({
      tenantId: t.tenantId,
      conversationId: a.conversationId,
      direction: "OUTBOUND",
      messageIdHeader: uid("ours"),
      from: { address: "team@acme.test", name: "Support" },
      to: [{ address: "vendor@supplier.example", name: "" }],
      subject: "Re: Team issue",
      receivedAt: clock.now(),
      outboundStatus: "SENT",
    });
    const answer = (from: string) =>
      sendTo({ messageId: uid(), subject: `Re: Team issue [#${a.ticketNumber}]`, from });
    // Ivy, copied by the customer, answers all; the supplier answers.
    expect(stored(await answer("ivy@customer.example")).conversationId).toBe(a.conversationId);
    expect(stored(await answer("Vendor@Supplier.example")).conversationId).toBe(a.conversationId);
    // A stranger with the number, and mail forged as from our own address, open new ones.
    expect(stored(await answer("stranger@elsewhere.example")).created).toBe(true);
    expect(stored(await answer("team@acme.test")).created).toBe(true);
  });

  describe("a reply that arrived before the mail it answers", () => {
    async function eventsOf(conversationId: string) {
      return t.db.db.select().from(event).where(eq(event.conversationId, conversationId));
    }

    it("the late original joins the reply's conversation, as a message of the same customer", async () => {
      const original = uid("late");
      const replyId = uid();
      const reply = stored(
        await send({
          messageId: replyId,
          subject: "Re: Invoice 77",
          from: "jane@customer.example",
          headers: { "In-Reply-To": `<${original}>` },
        }),
      );
      expect(reply.created).toBe(true);
      const late = stored(
        await send({ messageId: original, subject: "Invoice 77", from: "Jane <jane@customer.example>" }),
      );
      expect(late.conversationId).toBe(reply.conversationId);
      expect(late.created).toBe(false);
      const msgs = await t.db.db
        .select()
        .from(message)
        .where(eq(message.conversationId, reply.conversationId));
      expect(msgs.map((m) => m.messageIdHeader).sort()).toEqual([original, replyId].sort());
      const threaded = (await eventsOf(reply.conversationId)).filter(
        (e) => e.type === "conversation.threaded",
      );
      expect(threaded.map((e) => e.payload)).toEqual([
        { via: "earlier-reply", matched: original, senderIsMember: true },
      ]);
    });

    it("a colleague the reply copied sends the original: it joins too", async () => {
      const original = uid("late");
      const reply = stored(
        await send({
          messageId: uid(),
          subject: "Re: Outage",
          from: "dan@customer.example",
          headers: { "In-Reply-To": `<${original}>`, Cc: "erin@customer.example" },
        }),
      );
      const late = stored(
        await send({ messageId: original, subject: "Outage", from: "erin@customer.example" }),
      );
      expect(late.conversationId).toBe(reply.conversationId);
    });

    it("a stranger's mail with that Message-ID opens its own conversation, and the refused match is on its timeline", async () => {
      const original = uid("late");
      const reply = stored(
        await send({
          messageId: uid(),
          subject: "Re: Private",
          from: "kim@customer.example",
          headers: { "In-Reply-To": `<${original}>` },
        }),
      );
      const other = stored(
        await send({ messageId: original, subject: "Hello", from: "mallory@elsewhere.example" }),
      );
      expect(other.created).toBe(true);
      expect(other.conversationId).not.toBe(reply.conversationId);
      const created = (await eventsOf(other.conversationId)).find((e) => e.type === "conversation.created");
      expect(created!.payload).toMatchObject({
        rejectedThreadMatches: [
          { conversationId: reply.conversationId, via: "earlier-reply", reason: "sender-not-member" },
        ],
      });
    });

    it("an address threading by ticket number only does not look", async () => {
      const tk = await createQueueWithAddress(t.db.db, t.tenantId, {
        address: "tickets@acme.test",
        addressFields: { threadingMode: "TICKET_ONLY" },
      });
      const to = { tenantId: t.tenantId, addressId: tk.addressId };
      const sendTo = (spec: RawMailSpec) =>
        ingestRaw(t.app.engine, to, buildRawMail(spec), { receivedAt: clock.now() });
      const original = uid("late");
      const reply = stored(
        await sendTo({
          messageId: uid(),
          subject: "Re: Order",
          from: "lee@customer.example",
          to: "tickets@acme.test",
          headers: { "In-Reply-To": `<${original}>` },
        }),
      );
      const late = stored(
        await sendTo({
          messageId: original,
          subject: "Order",
          from: "lee@customer.example",
          to: "tickets@acme.test",
        }),
      );
      expect(late.created).toBe(true);
      expect(late.conversationId).not.toBe(reply.conversationId);
    });

    it("in one batch (an IMAP backlog), the reply first and the original after it", async () => {
      const original = uid("late");
      const mails = [
        buildRawMail({
          messageId: uid(),
          subject: "Re: Backlog",
          from: "pat@customer.example",
          headers: { "In-Reply-To": `<${original}>` },
        }),
        buildRawMail({ messageId: original, subject: "Backlog", from: "pat@customer.example" }),
      ];
      const inputs = await Promise.all(
        mails.map(async (raw) => ({
          ...A,
          raw,
          parsed: await t.app.engine.mime.parse(raw),
          receivedAt: clock.now(),
          source: { kind: "smtp" as const, mailFrom: "pat@customer.example", rcptTo: [] },
        })),
      );
      const [reply, late] = (await ingestMessages(t.app.engine, inputs)).map(stored);
      expect(reply!.created).toBe(true);
      expect(late!.conversationId).toBe(reply!.conversationId);
    });

    it("never across tenants", async () => {
      const other = await createTenantWithAdmin(t.db.db, {
        tenantName: "Other",
        adminEmail: "admin@other.test",
      });
      const B = {
        tenantId: other.tenantId,
        ...(await createQueueWithAddress(t.db.db, other.tenantId, { address: "help@other.test" })),
      };
      const original = uid("late");
      const reply = stored(
        await send({
          messageId: uid(),
          subject: "Re: Cross",
          from: "max@customer.example",
          headers: { "In-Reply-To": `<${original}>` },
        }),
      );
      const late = stored(
        await ingestRaw(
          t.app.engine,
          B,
          buildRawMail({
            messageId: original,
            subject: "Cross",
            from: "max@customer.example",
            to: "help@other.test",
          }),
          { receivedAt: clock.now() },
        ),
      );
      expect(late.created).toBe(true);
      expect(late.conversationId).not.toBe(reply.conversationId);
    });
  });
});
