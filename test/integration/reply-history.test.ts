import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brandedTemplate, queueMember, signature, tenant } from "../../src/db/schema/index.js";
import { HOUR, ManualClock, MINUTE } from "../../src/engine/clock.js";
import {
  type ComposeInput,
  compose,
  DEFAULT_COMPOSE_LIMITS,
  type PreviousMessage,
} from "../../src/engine/outbound/compose.js";
import { quoteText } from "../../src/engine/outbound/text.js";
import { decodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress, createUserWithKey } from "../helpers/fixtures.js";
import {
  capturedWith,
  createSinkAccount,
  ingestAt,
  parseCaptured,
  waitForStatus,
} from "../helpers/outbound.js";
import { buildRawMail } from "../helpers/raw-mail.js";
import { type SmtpSink, startCapturingSink } from "../helpers/smtp-sinks.js";

/**
 * A reply with history quotes earlier messages; our own earlier replies are quoted without
 * the history they themselves quoted. Before, each reply quoted the previous replies whole
 * (with their quotes), so a conversation's replies doubled in size each round: 1.5 KB,
 * 3 KB, 6 KB … 25 MB at the 15th reply here, and TOO_LARGE from the 16th (sooner with
 * longer messages). The limit of quoted messages (20) is exact now: older messages are
 * not quoted at all, not even inside a quoted reply.
 */

const ROUNDS = 15;
const START = new Date("2026-03-02T08:00:00Z");
const clock = new ManualClock(START);
let t: TestApp;
let sink: SmtpSink;
let addr: { queueId: string; addressId: string; address: string };
let agent: { id: string; key: string };

const REPLY = `mutation($c: ID!, $i: OutboundMessageInput!) {
  replyToConversation(conversationId: $c, input: $i) {
    __typename
    ... on Message { id }
    ... on Error { message }
  } }`;

const pad = (n: number) => String(n).padStart(2, "0");
const customerToken = (round: number) => `customer-note-${pad(round)}`;
const agentToken = (round: number) => `agent-answer-${pad(round)}`;

function occurrences(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

beforeAll(async () => {
  t = await startTestApp({ clock });
  sink = await startCapturingSink({ starttls: false });
  const [tpl] = await t.db.db
    .insert(brandedTemplate)
    .values({
      tenantId: t.tenantId,
      name: "Brand",
      html: '<html><body><div class="brand-frame">{{content}}</div><p>ACME footer</p></body></html>',
    })
    .returning();
  const [sig] = await t.db.db
    .insert(signature)
    .values({ tenantId: t.tenantId, name: "Q", text: "Cheers, {{agent.name}} ({{company}})" })
    .returning();
  await t.db.db.update(tenant).set({ company: "ACME Corp" }).where(eq(tenant.id, t.tenantId));
  const accountId = await createSinkAccount(t, sink);
  addr = await createQueueWithAddress(t.db.db, t.tenantId, {
    queue: { signatureId: sig!.id },
    addressFields: {
      accountId,
      address: "history@acme.test",
      displayName: "ACME Support",
      ticketPlacement: "END",
      ticketDelimiter: "SQUARE",
      // Every reply carries the signature and a branded template: both are part of what
      // a quoted earlier reply shows, and neither may bring that reply's history along.
      signaturePolicy: "ALL",
      historyPolicy: "ALWAYS",
      brandedTemplateId: tpl!.id,
    },
  });
  agent = await createUserWithKey(t.db.db, t.tenantId, "AGENT", { name: "Ann Agent" });
  await t.db.db.insert(queueMember).values({ tenantId: t.tenantId, queueId: addr.queueId, userId: agent.id });
});

afterAll(async () => {
  await t?.stop();
  await sink?.close();
});

describe("quoted history over many reply rounds", () => {
  it(`${ROUNDS} rounds: every reply is sent, quotes each earlier message once, and grows linearly`, async () => {
    const max = DEFAULT_COMPOSE_LIMITS.maxQuotedMessages;
    // Distinctive text of every message so far, oldest first.
    const tokens: string[] = [];
    const sizes: number[] = [];
    let conversationId: string | null = null;
    let ticketNumber = 0;
    let lastOutboundId: string | null = null;

    for (let round = 1; round <= ROUNDS; round++) {
      clock.set(START.getTime() + round * HOUR);
      const threading: Record<string, string> = lastOutboundId
        ? { "In-Reply-To": `<${lastOutboundId}>`, References: `<${lastOutboundId}>` }
        : {};
      const ingested = await ingestAt(
        t,
        addr.addressId,
        buildRawMail({
          to: addr.address,
          subject: round === 1 ? "Paper jam" : `Re: Paper jam [#${ticketNumber}]`,
          messageId: `round-${round}@customer.example`,
          date: clock.now().toUTCString(),
          headers: threading,
          // The customer answers on top without quoting: every copy of an earlier message
          // in our reply then comes from our own quoting.
          text: `Still jammed (${customerToken(round)}).\nTray 2 this time.`,
        }),
      );
      expect(ingested.status).toBe("stored");
      conversationId ??= ingested.conversation!.id;
      ticketNumber = ingested.conversation!.ticketNumber;
      expect(ingested.conversation!.id).toBe(conversationId);
      tokens.push(customerToken(round));

      clock.advance(10 * MINUTE);
      const r = await t.ok(
        REPLY,
        { c: conversationId, i: { text: `Please try this (${agentToken(round)}).\nThen restart.` } },
        agent.key,
      );
      expect(r.replyToConversation, `reply of round ${round}`).toMatchObject({ __typename: "Message" });
      const sent = await waitForStatus(t, decodeId(r.replyToConversation.id, "Message"), ["SENT", "FAILED"]);
      expect(sent.outboundStatus, `reply of round ${round}`).toBe("SENT");
      lastOutboundId = sent.messageIdHeader;
      const captured = capturedWith(sink, sent.messageIdHeader);
      sizes.push(captured.raw.length);
      const mail = await parseCaptured(captured.raw);
      const text = mail.text ?? "";
      const html = typeof mail.html === "string" ? mail.html : "";

      // The agent's own text once, above the history.
      expect(occurrences(text, agentToken(round))).toBe(1);
      expect(occurrences(html, agentToken(round))).toBe(1);
      // The newest `max` earlier messages, each exactly once in both parts, newest first;
      // older ones are past the documented limit and not quoted at all.
      const quoted = tokens.slice(-max).reverse();
      const dropped = tokens.slice(0, Math.max(0, tokens.length - max));
      let previous = text.indexOf(agentToken(round));
      for (const token of quoted) {
        expect(occurrences(text, token), `${token} in the text of reply ${round}`).toBe(1);
        expect(occurrences(html, token), `${token} in the HTML of reply ${round}`).toBe(1);
        const at = text.indexOf(token);
        expect(at, `${token} after the newer messages in reply ${round}`).toBeGreaterThan(previous);
        previous = at;
      }
      for (const token of dropped) {
        expect(occurrences(text, token), `${token} beyond the limit in reply ${round}`).toBe(0);
        expect(occurrences(html, token), `${token} beyond the limit in reply ${round}`).toBe(0);
      }
      // Quoted earlier replies keep what the customer saw: the agent's text and signature.
      expect(occurrences(text, "Cheers, Ann Agent (ACME Corp)")).toBe(1 + Math.floor(quoted.length / 2));
      tokens.push(agentToken(round));
    }

    // Each round adds two quoted messages of about the same size, so a reply grows by a
    // bounded step, about the first one (exponential growth doubles the step each round).
    const firstStep = sizes[1]! - sizes[0]!;
    for (let i = 2; i < sizes.length; i++) {
      expect(
        sizes[i]! - sizes[i - 1]!,
        `growth from reply ${i} to ${i + 1} (sizes ${sizes.join(", ")})`,
      ).toBeLessThanOrEqual(firstStep * 1.5);
    }
    expect(sizes[ROUNDS - 1]!).toBeLessThan(8 * sizes[1]!);
  }, 180_000);
});

describe("customers quoting our previous reply", () => {
  // The customer's client quotes our whole previous reply below their new text, as Gmail
  // does in both parts. Quoted whole, each inbound mail carried the whole history again
  // and our reply quoted it: 1.6 KB, 3.8 KB, 8.0 KB … 21.7 MB at the 14th reply, and the
  // 15th customer mail was too large to take in. Now the client's quote is cut and only
  // the customer's text is quoted: 1.6 KB, 2.7 KB, 3.7 KB … 11.9 KB at the 15th reply.
  const customerText = (round: number) => `customer-text-${pad(round)}`;
  const agentText = (round: number) => `agent-reply-${pad(round)}`;

  /** Gmail's attribution: `On Mon, Mar 2, 2026 at 9:10 AM Name <addr> wrote:`. */
  function gmailAttribution(at: Date, name: string, address: string, html: boolean): string {
    const day = at.toLocaleDateString("en-US", {
      weekday: "short",
      month: "short",
      day: "numeric",
      year: "numeric",
      timeZone: "UTC",
    });
    const time = at.toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit", timeZone: "UTC" });
    const who = html ? `${name} &lt;<a href="mailto:${address}">${address}</a>&gt;` : `${name} <${address}>`;
    return `On ${day} at ${time} ${who} wrote:`;
  }

  it(`${ROUNDS} rounds: each customer text is quoted once and replies grow linearly`, async () => {
    const max = DEFAULT_COMPOSE_LIMITS.maxQuotedMessages;
    const tokens: string[] = [];
    const sizes: number[] = [];
    let conversationId: string | null = null;
    let ticketNumber = 0;
    let previous: { id: string; date: Date; text: string; html: string } | null = null;
    let lastText = "";
    let lastHtml = "";

    for (let round = 1; round <= ROUNDS; round++) {
      clock.set(START.getTime() + 30 * 24 * HOUR + round * HOUR);
      const own = `Still smearing (${customerText(round)}).`;
      const mail: { text: string; html: string; headers: Record<string, string> } = previous
        ? {
            text: `${own}\nPage 3 this time.\n\n${gmailAttribution(previous.date, "ACME Support", addr.address, false)}\n\n${quoteText(previous.text)}\n`,
            html:
              `<div dir="ltr">${own}<br>Page 3 this time.</div><br><div class="gmail_quote">` +
              `<div dir="ltr" class="gmail_attr">${gmailAttribution(previous.date, "ACME Support", addr.address, true)}<br></div>` +
              `<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex">` +
              `${previous.html.replace(/<\/?(?:html|head|body)\b[^>]*>/gi, "")}</blockquote></div>`,
            headers: { "In-Reply-To": `<${previous.id}>`, References: `<${previous.id}>` },
          }
        : {
            text: `${own}\nPage 3 this time.`,
            html: `<div dir="ltr">${own}<br>Page 3 this time.</div>`,
            headers: {},
          };
      const ingested = await ingestAt(
        t,
        addr.addressId,
        buildRawMail({
          from: "Carla Customer <carla@customer.example>",
          to: addr.address,
          subject: round === 1 ? "Toner smear" : `Re: Toner smear [#${ticketNumber}]`,
          messageId: `quoting-${round}@customer.example`,
          date: clock.now().toUTCString(),
          ...mail,
        }),
      );
      expect(ingested.status).toBe("stored");
      conversationId ??= ingested.conversation!.id;
      ticketNumber = ingested.conversation!.ticketNumber;
      expect(ingested.conversation!.id).toBe(conversationId);
      tokens.push(customerText(round));

      clock.advance(10 * MINUTE);
      const r = await t.ok(
        REPLY,
        { c: conversationId, i: { text: `Clean the drum (${agentText(round)}).\nThen print again.` } },
        agent.key,
      );
      expect(r.replyToConversation, `reply of round ${round}`).toMatchObject({ __typename: "Message" });
      const sent = await waitForStatus(t, decodeId(r.replyToConversation.id, "Message"), ["SENT", "FAILED"]);
      expect(sent.outboundStatus, `reply of round ${round}`).toBe("SENT");
      const captured = capturedWith(sink, sent.messageIdHeader);
      sizes.push(captured.raw.length);
      const parsed = await parseCaptured(captured.raw);
      lastText = parsed.text ?? "";
      lastHtml = typeof parsed.html === "string" ? parsed.html : "";
      previous = { id: sent.messageIdHeader!, date: clock.now(), text: lastText, html: lastHtml };

      // Every message within the limit once, in both parts: the customer's text only
      // from their own message, never again from their client's copy of our reply.
      for (const token of [...tokens.slice(-max), agentText(round)]) {
        expect(occurrences(lastText, token), `${token} in the text of reply ${round}`).toBe(1);
        expect(occurrences(lastHtml, token), `${token} in the HTML of reply ${round}`).toBe(1);
      }
      for (const token of tokens.slice(0, Math.max(0, tokens.length - max))) {
        expect(occurrences(lastText, token), `${token} beyond the limit in reply ${round}`).toBe(0);
        expect(occurrences(lastHtml, token), `${token} beyond the limit in reply ${round}`).toBe(0);
      }
      tokens.push(agentText(round));
    }

    // What each customer wrote is quoted with its second line, not only its token.
    expect(occurrences(lastText, "> Page 3 this time.")).toBe(Math.ceil(max / 2));
    expect(sizes[ROUNDS - 1]!, `sizes ${sizes.join(", ")}`).toBeLessThan(8 * sizes[1]!);
  }, 180_000);
});

describe("quoting our earlier replies (composition)", () => {
  const OURS = "mail.acme.example";
  const customer = (n: number, text: string): PreviousMessage => ({
    messageId: `<c${n}@customer.example>`,
    from: { name: "Carla", address: "carla@customer.example" },
    to: [{ address: "support@acme.example" }],
    date: new Date(Date.UTC(2024, 2, n, 9)),
    text,
    html: null,
  });

  function reply(messages: PreviousMessage[], body: { text?: string; html?: string }, domain = OURS) {
    const input: ComposeInput = {
      kind: "REPLY",
      address: {
        displayName: "ACME Support",
        fromAddress: "support@acme.example",
        replyTo: [],
        bcc: [],
        ticketFormat: { placement: "END", delimiter: "SQUARE" },
        signaturePolicy: "ALL",
        historyPolicy: "ALWAYS",
        templateHtml: '<div class="brand">{{content}}</div><p>footer</p>',
      },
      subjectOptions: { appendTicketOnFirstReply: false, agentsMayEditSubject: false },
      conversation: { ticketNumber: 7, subject: "Widget", isFirstReply: false, messages },
      agent: { name: "Ann", alias: null, email: "ann@acme.example" },
      companyName: "ACME",
      signature: { text: "Regards, {{agent.name}}", html: null },
      body,
      messageIdDomain: domain,
      now: new Date(Date.UTC(2024, 2, messages.length + 1, 10)),
      randomId: () => `r${messages.length}`,
    };
    return compose(input);
  }

  /** A composed reply as the conversation stores it. */
  function stored(mail: ReturnType<typeof compose>): PreviousMessage {
    return {
      messageId: mail.messageId,
      from: mail.from,
      to: mail.to,
      date: mail.date,
      text: mail.text,
      html: mail.html,
    };
  }

  it("a reply stored before this change, with nested history, is quoted without it", () => {
    const c1 = customer(1, "first-problem");
    const r1 = stored(reply([c1], { text: "first-answer" }));
    const c2 = customer(3, "second-problem");
    // The outline every reply had before: the earlier reply quoted whole, with its own
    // quotes, so first-problem is there twice. Built from a reply of today by putting
    // the quoted earlier reply back whole.
    const current = reply([c1, r1, c2], { text: "second-answer" });
    const cut = (html: string) => html.replace(/<div class="sb-quote">[\s\S]*?<\/blockquote><\/div>/, "");
    const old = {
      ...stored(current),
      messageId: "<r2@mail.acme.example>",
      text: current.text.replace(quoteText(r1.text!.split("\n\nOn ")[0]!), quoteText(r1.text!)),
      html: current.html!.replace(cut(r1.html!), r1.html!),
    };
    expect(old.text.split("first-problem").length - 1).toBe(2);
    expect(old.html.split("first-problem").length - 1).toBe(2);
    const r2 = old;

    const mail = reply([c1, r1, c2, r2, customer(5, "third-problem")], { html: "<p>third-answer</p>" });
    for (const token of [
      "first-problem",
      "first-answer",
      "second-problem",
      "second-answer",
      "third-problem",
    ]) {
      expect(mail.text.split(token).length - 1, `${token} in the text`).toBe(1);
      expect(mail.html!.split(token).length - 1, `${token} in the HTML`).toBe(1);
    }
    // Quoted replies keep their signature and, in HTML, the template they were sent in.
    expect(mail.text).toContain("> second-answer\n> \n> -- \n> Regards, Ann");
    expect(mail.html!.split("<p>footer</p>").length - 1).toBe(3);
    expect(mail.html!.split('<div class="sb-quote">').length - 1).toBe(5);
  });

  it("keeps a quote the agent typed above their own text", () => {
    const c1 = customer(1, "problem");
    const typed = "On 2024-03-01 09:00, Carla <carla@customer.example> wrote:\n> pasted-line\n\nmy-own-note";
    const r1 = stored(reply([c1], { text: typed }));
    const mail = reply([c1, r1, customer(3, "again")], { text: "answer" });
    expect(mail.text).toContain(">> pasted-line\n> \n> my-own-note\n> \n> -- \n> Regards, Ann");
    expect(mail.text.split("> problem").length - 1).toBe(1);
  });

  it("mail from elsewhere loses its client's trailing quote, not one answered below", () => {
    const trailing: PreviousMessage = {
      ...customer(2, "from-elsewhere\n\nOn 2024-03-01 09:00, Bob <bob@x.example> wrote:\n> cut-quote"),
      messageId: "<x1@other.example>",
    };
    const answered = customer(3, "On 2024-03-01 09:00, Bob <bob@x.example> wrote:\n> kept-quote\nmy-answer");
    const mail = reply([customer(1, "problem"), trailing, answered], { text: "answer" });
    expect(mail.text).toContain("> from-elsewhere");
    expect(mail.text).not.toContain("cut-quote");
    expect(mail.text).toContain(">> kept-quote\n> my-answer");
  });
});
