import fc from "fast-check";
import type { ParsedMail } from "mailparser";
import { simpleParser } from "mailparser";
import { describe, expect, it } from "vitest";
import { buildRawMime } from "../../src/connectors/smtp-out.js";
import type { TicketDelimiter, TicketPlacement } from "../../src/engine/domain.js";
import type { ComposedMail, ComposeInput, PreviousMessage } from "../../src/engine/outbound/compose.js";
import {
  capReferences,
  compose,
  estimateMimeSize,
  renderSignatureTags,
  validateTemplate,
} from "../../src/engine/outbound/compose.js";
import { ComposeError } from "../../src/engine/outbound/errors.js";

const NOW = new Date("2024-03-02T10:00:00Z");

function customerMessage(overrides: Partial<PreviousMessage> = {}): PreviousMessage {
  return {
    messageId: "<cust-2@customer.example>",
    references: "<root@acme.example> <cust-1@customer.example>",
    from: { name: "Carla Customer", address: "carla@customer.example" },
    to: [{ address: "support@acme.example" }],
    date: new Date("2024-03-01T10:00:00Z"),
    subject: "Re: Broken widget",
    text: "It is still broken.\nPlease help.",
    html: null,
    ...overrides,
  };
}

function input(overrides: Partial<ComposeInput> = {}): ComposeInput {
  return {
    kind: "REPLY",
    address: {
      displayName: "ACME Support",
      fromAddress: "support@acme.example",
      replyTo: [],
      bcc: [],
      ticketFormat: { placement: "END", delimiter: "SQUARE" },
      signaturePolicy: "NONE",
      historyPolicy: "NEVER",
      templateHtml: null,
    },
    subjectOptions: { appendTicketOnFirstReply: false, agentsMayEditSubject: false },
    conversation: {
      ticketNumber: 42,
      subject: "Broken widget",
      isFirstReply: false,
      messages: [
        customerMessage({
          messageId: "<cust-1@customer.example>",
          references: null,
          date: new Date("2024-02-28T08:00:00Z"),
          text: "My widget is broken.",
          subject: "Broken widget",
        }),
        customerMessage(),
      ],
    },
    agent: { name: "Ann Agent", alias: "Annie", email: "ann@acme.example" },
    companyName: "ACME Corp",
    signature: { text: "Regards, {{agent.name}} ({{company}})", html: null },
    body: { text: "Thanks, we are on it." },
    messageIdDomain: "mail.acme.example",
    now: NOW,
    randomId: () => "fixed-id",
    ...overrides,
  };
}

function withAddress(
  overrides: Partial<ComposeInput["address"]>,
  rest: Partial<ComposeInput> = {},
): ComposeInput {
  const base = input(rest);
  return { ...base, address: { ...base.address, ...overrides } };
}

function withConversation(
  overrides: Partial<ComposeInput["conversation"]>,
  rest: Partial<ComposeInput> = {},
) {
  const base = input(rest);
  return { ...base, conversation: { ...base.conversation, ...overrides } };
}

function composeError(fn: () => unknown): ComposeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ComposeError) return err;
    throw err;
  }
  throw new Error("expected a ComposeError");
}

async function parse(mail: ComposedMail): Promise<{ parsed: ParsedMail; raw: string; headerBlock: string }> {
  const rawBuf = await buildRawMime(mail);
  const raw = rawBuf.toString("utf8");
  const headerBlock = raw.slice(0, raw.indexOf("\r\n\r\n"));
  return { parsed: await simpleParser(rawBuf), raw, headerBlock };
}

/** Names of the top-level header fields, lower-case, as a receiver would split them. */
function headerNames(headerBlock: string): string[] {
  return headerBlock
    .split("\r\n")
    .filter((l) => !/^[ \t]/.test(l))
    .map((l) => l.slice(0, l.indexOf(":")).toLowerCase());
}

const EXPECTED_HEADERS = new Set([
  "from",
  "reply-to",
  "to",
  "cc",
  "subject",
  "message-id",
  "date",
  "in-reply-to",
  "references",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "auto-submitted",
  "x-auto-response-suppress",
]);

describe("compose: identity and threading headers", () => {
  it("mints our own Message-ID and uses the injected time", () => {
    const mail = compose(input());
    expect(mail.messageId).toBe("<fixed-id@mail.acme.example>");
    expect(mail.date).toEqual(NOW);
    expect(compose(input({ randomId: undefined })).messageId).toMatch(
      /^<[a-z0-9]+\.[0-9a-f]{32}@mail\.acme\.example>$/,
    );
  });

  it("replies to the newest message: In-Reply-To is its id, References its References + its id", () => {
    const mail = compose(input());
    expect(mail.inReplyTo).toBe("<cust-2@customer.example>");
    expect(mail.references).toEqual([
      "<root@acme.example>",
      "<cust-1@customer.example>",
      "<cust-2@customer.example>",
    ]);
  });

  it("answers the message chosen by targetMessageId", () => {
    const mail = compose(withConversation({ targetMessageId: "cust-1@customer.example" }));
    expect(mail.inReplyTo).toBe("<cust-1@customer.example>");
    expect(mail.references).toEqual(["<cust-1@customer.example>"]);
  });

  it("drops invalid message ids taken from inbound mail", () => {
    const mail = compose(
      withConversation({
        messages: [
          customerMessage({
            messageId: "no id here",
            references:
              "<ok@x.example> <bad id@x.example> <also\u0000bad@x.example> garbage <fine@y.example>",
          }),
        ],
      }),
    );
    expect(mail.inReplyTo).toBeNull();
    expect(mail.references).toEqual(["<ok@x.example>", "<fine@y.example>"]);
  });

  it("caps a long References chain, keeping the first and the latest ids", () => {
    const refs = Array.from({ length: 30 }, (_, i) => `<r${i}@x.example>`).join(" ");
    const mail = compose(withConversation({ messages: [customerMessage({ references: refs })] }));
    expect(mail.references).toHaveLength(20);
    expect(mail.references[0]).toBe("<r0@x.example>");
    expect(mail.references.at(-1)).toBe("<cust-2@customer.example>");
    expect(mail.references.at(-2)).toBe("<r29@x.example>");
    expect(mail.references).not.toContain("<r1@x.example>");
    expect(capReferences(["a", "b", "c", "d"], 3)).toEqual(["a", "c", "d"]);
    expect(capReferences(["a", "b"], 3)).toEqual(["a", "b"]);
  });

  it("a NEW conversation has no In-Reply-To or References", () => {
    const mail = compose(
      withConversation(
        { messages: [] },
        { kind: "NEW", recipients: { to: [{ address: "new@customer.example" }] } },
      ),
    );
    expect(mail.inReplyTo).toBeNull();
    expect(mail.references).toEqual([]);
  });

  it("a forward keeps References but has no In-Reply-To", () => {
    const mail = compose(
      input({ kind: "FORWARD", recipients: { to: [{ address: "expert@partner.example" }] } }),
    );
    expect(mail.inReplyTo).toBeNull();
    expect(mail.references.at(-1)).toBe("<cust-2@customer.example>");
  });

  it("refuses a reply when there is nothing to reply to", () => {
    const err = composeError(() => compose(withConversation({ messages: [] })));
    expect(err.code).toBe("NO_MESSAGE_TO_REPLY_TO");
  });

  it("refuses an invalid Message-ID domain and an unknown time zone", () => {
    expect(composeError(() => compose(input({ messageIdDomain: "bad domain" }))).code).toBe(
      "INVALID_MESSAGE_ID_DOMAIN",
    );
    expect(composeError(() => compose(input({ messageIdDomain: "a.example\r\nX: y" }))).code).toBe(
      "INVALID_MESSAGE_ID_DOMAIN",
    );
    expect(composeError(() => compose(input({ timeZone: "Mars/Olympus" }))).code).toBe("INVALID_TIME_ZONE");
  });
});

describe("compose: subject and ticket number", () => {
  it("gives a reply exactly one Re:", () => {
    const mail = compose(withConversation({ subject: "RE: Re: AW: Broken widget" }));
    expect(mail.subject).toBe("Re: Broken widget [#42]");
  });

  it.each<[TicketPlacement, TicketDelimiter, string]>([
    ["END", "SQUARE", "Re: Broken widget [#42]"],
    ["END", "CURLY", "Re: Broken widget {#42}"],
    ["END", "NONE", "Re: Broken widget #42"],
    ["START", "SQUARE", "Re: [#42] Broken widget"],
    ["START", "CURLY", "Re: {#42} Broken widget"],
    ["START", "NONE", "Re: #42 Broken widget"],
    ["HIDDEN", "SQUARE", "Re: Broken widget"],
  ])("placement %s, delimiter %s → %j", (placement, delimiter, expected) => {
    const mail = compose(withAddress({ ticketFormat: { placement, delimiter } }));
    expect(mail.subject).toBe(expected);
  });

  it("replaces a stale token instead of adding a second one", () => {
    const mail = compose(withConversation({ subject: "Re: Broken widget [#42]" }));
    expect(mail.subject).toBe("Re: Broken widget [#42]");
  });

  // Found by a probe (2026-11-23): "Order #98765 not delivered" was answered as
  // "Re: Order not delivered [#42]", "Invoice #2024-17 wrong" as "Re: Invoice -17 wrong".
  it.each<[string, TicketPlacement, string]>([
    ["Order #98765 not delivered", "END", "Re: Order #98765 not delivered [#42]"],
    ["Invoice #2024-17 wrong", "END", "Re: Invoice #2024-17 wrong [#42]"],
    ["Re: Order #98765 not delivered [#42]", "END", "Re: Order #98765 not delivered [#42]"],
    ["Order #98765 not delivered", "HIDDEN", "Re: Order #98765 not delivered"],
  ])("keeps the customer's own #number in %j (placement %s)", (subject, placement, expected) => {
    const base = withAddress({ ticketFormat: { placement, delimiter: "SQUARE" } });
    const mail = compose({ ...base, conversation: { ...base.conversation, subject } });
    expect(mail.subject).toBe(expected);
  });

  it("forward gets one Fwd: and the token", () => {
    const mail = compose(
      withConversation(
        { subject: "Re: Fwd: Broken widget" },
        { kind: "FORWARD", recipients: { to: [{ address: "expert@partner.example" }] } },
      ),
    );
    expect(mail.subject).toBe("Fwd: Broken widget [#42]");
  });

  it("NEW uses the conversation subject and requires one", () => {
    const recipients = { to: [{ address: "new@customer.example" }] };
    const mail = compose(
      withConversation({ subject: "Your order", messages: [] }, { kind: "NEW", recipients }),
    );
    expect(mail.subject).toBe("Your order [#42]");
    const err = composeError(() =>
      compose(withConversation({ subject: "  ", messages: [] }, { kind: "NEW", recipients })),
    );
    expect(err).toMatchObject({ code: "SUBJECT_REQUIRED", field: "subject" });
  });

  it("appendTicketOnFirstReply puts the token on the first reply even when the address hides it", () => {
    const opts = { appendTicketOnFirstReply: true, agentsMayEditSubject: false };
    const hidden = { placement: "HIDDEN" as const, delimiter: "CURLY" as const };
    const first = compose({
      ...withAddress({ ticketFormat: hidden }),
      subjectOptions: opts,
      conversation: { ...input().conversation, isFirstReply: true },
    });
    expect(first.subject).toBe("Re: Broken widget {#42}");
    const later = compose({ ...withAddress({ ticketFormat: hidden }), subjectOptions: opts });
    expect(later.subject).toBe("Re: Broken widget");
    const off = compose({
      ...withAddress({ ticketFormat: hidden }),
      conversation: { ...input().conversation, isFirstReply: true },
    });
    expect(off.subject).toBe("Re: Broken widget");
  });

  it("refuses a subject edit unless agents may edit subjects", () => {
    const err = composeError(() => compose(input({ subjectOverride: "New topic" })));
    expect(err).toMatchObject({ code: "SUBJECT_EDIT_NOT_ALLOWED", field: "subjectOverride" });
    const allowed = compose(
      input({
        subjectOverride: "New topic",
        subjectOptions: { appendTicketOnFirstReply: false, agentsMayEditSubject: true },
      }),
    );
    expect(allowed.subject).toBe("New topic [#42]");
  });

  it("an empty override is no edit", () => {
    expect(compose(input({ subjectOverride: "   " })).subject).toBe("Re: Broken widget [#42]");
  });

  it("refuses the two mutually exclusive subject options together", () => {
    const err = composeError(() =>
      compose(input({ subjectOptions: { appendTicketOnFirstReply: true, agentsMayEditSubject: true } })),
    );
    expect(err).toMatchObject({ code: "CONFLICTING_SUBJECT_OPTIONS", field: "subjectOptions" });
  });

  it("an auto-reply subject is Re: + the original subject, without a token", () => {
    const mail = compose(input({ kind: "AUTO_REPLY", agent: null }));
    expect(mail.subject).toBe("Re: Broken widget");
    expect(mail.headers["Auto-Submitted"]).toBe("auto-replied");
  });
});

describe("compose: signature", () => {
  const sig = {
    text: "Regards, {{agent.name}} aka {{ agent.alias }} <{{agent.email}}> — {{company}} {{unknown}}",
    html: "<p>Regards, <b>{{agent.name}}</b> aka {{agent.alias}} &lt;{{agent.email}}&gt; — {{company}} {{unknown}}</p>",
  };

  it.each([
    ["ALL", false, true],
    ["ALL", true, true],
    ["FIRST_REPLY", true, true],
    ["FIRST_REPLY", false, false],
    ["NONE", true, false],
  ] as const)("policy %s, first reply %s → signature %s", (policy, isFirstReply, expected) => {
    const mail = compose(
      withAddress({ signaturePolicy: policy }, { conversation: { ...input().conversation, isFirstReply } }),
    );
    expect(mail.text.includes("-- \nRegards, Ann Agent (ACME Corp)")).toBe(expected);
  });

  it("renders every tag, escapes values in HTML, keeps unknown tags", () => {
    const mail = compose(
      withAddress(
        { signaturePolicy: "ALL" },
        {
          signature: sig,
          agent: { name: "Ann <script>x</script> & Co", alias: null, email: "ann@acme.example" },
          body: { html: "<p>Thanks</p>" },
        },
      ),
    );
    expect(mail.text).toContain(
      "Regards, Ann <script>x</script> & Co aka Ann <script>x</script> & Co <ann@acme.example> — ACME Corp {{unknown}}",
    );
    expect(mail.html).toContain("<b>Ann &lt;script&gt;x&lt;/script&gt; &amp; Co</b>");
    expect(mail.html).not.toContain("<script>");
    expect(mail.html).toContain("&lt;ann@acme.example&gt; — ACME Corp {{unknown}}");
  });

  it("uses the alias when there is one", () => {
    expect(
      renderSignatureTags(
        "{{agent.alias}}",
        { agentName: "A", agentAlias: "Annie", agentEmail: "", company: "" },
        false,
      ),
    ).toBe("Annie");
    const mail = compose(
      withAddress({ signaturePolicy: "ALL" }, { signature: { text: "{{agent.alias}}", html: null } }),
    );
    expect(mail.text).toContain("-- \nAnnie");
  });

  it("auto-replies never carry an agent signature", () => {
    const mail = compose(withAddress({ signaturePolicy: "ALL" }, { kind: "AUTO_REPLY", agent: null }));
    expect(mail.text).not.toContain("-- \n");
  });
});

describe("compose: quoted history", () => {
  it.each([
    ["ALWAYS", undefined, true],
    ["ALWAYS", false, true],
    ["NEVER", true, false],
    ["AGENT_DECIDES", true, true],
    ["AGENT_DECIDES", false, false],
    ["AGENT_DECIDES", undefined, false],
  ] as const)("policy %s, agent choice %s → quoted %s", (policy, includeHistory, expected) => {
    const mail = compose(
      withAddress({ historyPolicy: policy }, { includeHistory, body: { html: "<p>Hi</p>" } }),
    );
    expect(mail.text.includes("> It is still broken.\n> Please help.")).toBe(expected);
    expect(mail.html?.includes('<blockquote type="cite"') ?? false).toBe(expected);
  });

  it("quotes newest first with an attribution in the tenant's time zone", () => {
    const mail = compose(withAddress({ historyPolicy: "ALWAYS" }, { timeZone: "Europe/Berlin" }));
    const newer = mail.text.indexOf("On 2024-03-01 11:00, Carla Customer <carla@customer.example> wrote:");
    const older = mail.text.indexOf("On 2024-02-28 09:00, Carla Customer <carla@customer.example> wrote:");
    expect(newer).toBeGreaterThan(0);
    expect(older).toBeGreaterThan(newer);
    expect(mail.text).toContain("> My widget is broken.");
  });

  it("quotes at most maxQuotedMessages, keeping the newest", () => {
    const messages = Array.from({ length: 5 }, (_, i) =>
      customerMessage({ messageId: `<m${i}@customer.example>`, text: `message number ${i}` }),
    );
    const mail = compose(
      withAddress(
        { historyPolicy: "ALWAYS" },
        { conversation: { ...input().conversation, messages }, limits: { maxQuotedMessages: 2 } },
      ),
    );
    expect(mail.text).toContain("> message number 4");
    expect(mail.text).toContain("> message number 3");
    expect(mail.text).not.toContain("message number 2");
  });

  it("sanitises quoted customer HTML", () => {
    const mail = compose(
      withAddress(
        { historyPolicy: "ALWAYS" },
        {
          body: { html: "<p>Hi</p>" },
          conversation: {
            ...input().conversation,
            messages: [
              customerMessage({
                html: '<p onclick="x()">Old <script>steal()</script><img src="https://t.example/p.gif"></p>',
                text: null,
              }),
            ],
          },
        },
      ),
    );
    expect(mail.html).toContain("<blockquote");
    expect(mail.html).not.toMatch(/script|onclick/);
    expect(mail.text).toContain("> Old");
  });

  it("unbalanced customer HTML or signature cannot break out of its wrapper", () => {
    const mail = compose(
      withAddress(
        { historyPolicy: "ALWAYS", signaturePolicy: "ALL" },
        {
          body: { html: "<div><b>unclosed agent markup" },
          signature: { html: "</p></div></div><p>sig", text: null },
          conversation: {
            ...input().conversation,
            messages: [
              customerMessage({ html: "</blockquote></div><p>escaped?</p><blockquote><div>", text: null }),
            ],
          },
        },
      ),
    );
    const html = mail.html ?? "";
    expect(html).toMatch(
      /^<div><b>unclosed agent markup<\/b><\/div>\n<div class="sb-signature">(?:<p><\/p>)?<p>sig<\/p><\/div>\n/,
    );
    expect(html).toMatch(
      /<blockquote type="cite" style="[^"]*"><p>escaped\?<\/p><blockquote><div><\/div><\/blockquote><\/blockquote><\/div>$/,
    );
  });

  it("a forward carries the forwarded message regardless of the history policy", () => {
    const mail = compose(
      withAddress(
        { historyPolicy: "NEVER" },
        { kind: "FORWARD", recipients: { to: [{ address: "expert@partner.example" }] }, body: {} },
      ),
    );
    expect(mail.text).toContain("---------- Forwarded message ----------");
    expect(mail.text).toContain("From: Carla Customer <carla@customer.example>");
    expect(mail.text).toContain("It is still broken.");
  });
});

describe("compose: HTML body, text alternative and template", () => {
  it("sanitises the agent's HTML with the allow-list", () => {
    const mail = compose(
      input({
        body: {
          html:
            '<p style="color: red; background-image: url(https://t.example/x)">Hi <b>there</b></p>' +
            '<a href="javascript:alert(1)">bad</a><a href="https://ok.example/">ok</a>' +
            '<img src="cid:logo@acme" onerror="x()"><iframe src="https://evil.example"></iframe>' +
            "<form><input name=a></form><script>alert(1)</script>",
        },
      }),
    );
    expect(mail.html).toContain('<p style="color:red">Hi <b>there</b></p>');
    expect(mail.html).toContain('<a href="https://ok.example/">ok</a>');
    expect(mail.html).toContain('<img src="cid:logo@acme" />');
    expect(mail.html).not.toMatch(/javascript:|onerror|iframe|<form|<input|<script|url\(/);
  });

  it("generates the text alternative from the HTML when no text is given", () => {
    const mail = compose(input({ body: { html: "<p>Hello <b>Carla</b></p><p>Second paragraph</p>" } }));
    expect(mail.text).toBe("Hello Carla\n\nSecond paragraph");
  });

  it("keeps the agent's own text when both are given, and text-only mail has no HTML", () => {
    const both = compose(input({ body: { html: "<p>HTML version</p>", text: "Text version" } }));
    expect(both.text).toBe("Text version");
    expect(both.html).toContain("HTML version");
    expect(compose(input()).html).toBeNull();
  });

  it("wraps the HTML body in the branded template", () => {
    const templateHtml =
      '<html><head><title>ACME</title></head><body><table width="100%"><tr><td>{{content}}</td></tr></table><p>ACME Corp footer</p><script>x()</script></body></html>';
    const mail = compose(withAddress({ templateHtml }, { body: { html: "<p>Agent text</p>" } }));
    expect(mail.html).toMatch(
      /^<html><head><title>ACME<\/title><\/head><body><table width="100%"><tr><td><p>Agent text<\/p>/,
    );
    expect(mail.html).toContain("</td></tr></table><p>ACME Corp footer</p></body></html>");
    expect(mail.html).not.toContain("<script>");
    expect(mail.text).not.toContain("footer");
  });

  it("turns a text-only body into HTML when a template must wrap it", () => {
    const mail = compose(
      withAddress({ templateHtml: "<div>{{content}}</div>" }, { body: { text: "Line 1\nLine <2>" } }),
    );
    expect(mail.html).toBe("<div><p>Line 1<br>Line &lt;2&gt;</p></div>");
  });

  it("refuses a template without exactly one {{content}} in text position", () => {
    for (const t of [
      "<div>no placeholder</div>",
      "<div>{{content}}{{content}}</div>",
      '<a title="{{content}}">x</a>',
    ]) {
      expect(composeError(() => validateTemplate(t))).toMatchObject({
        code: "INVALID_TEMPLATE",
        field: "address.templateHtml",
      });
    }
    expect(composeError(() => compose(withAddress({ templateHtml: "<div>none</div>" }))).code).toBe(
      "INVALID_TEMPLATE",
    );
  });

  it("refuses an empty body, except on a forward", () => {
    expect(composeError(() => compose(input({ body: { text: "  ", html: "" } }))).code).toBe("EMPTY_BODY");
  });
});

describe("compose: recipients", () => {
  it("a reply goes to the message's Reply-To, else its From", () => {
    expect(compose(input()).to).toEqual([{ name: "Carla Customer", address: "carla@customer.example" }]);
    const mail = compose(
      withConversation({
        messages: [customerMessage({ replyTo: [{ name: "Desk", address: "desk@customer.example" }] })],
      }),
    );
    expect(mail.to).toEqual([{ name: "Desk", address: "desk@customer.example" }]);
  });

  it("reply-all copies the other recipients but never our own addresses", () => {
    const mail = compose(
      withConversation(
        {
          messages: [
            customerMessage({
              to: [{ address: "SUPPORT@acme.example" }, { address: "boss@customer.example" }],
              cc: [
                { name: "Carla again", address: "carla@customer.example" },
                { address: "peer@customer.example" },
                { address: "bad address" },
              ],
            }),
          ],
        },
        { kind: "REPLY_ALL" },
      ),
    );
    expect(mail.to.map((a) => a.address)).toEqual(["carla@customer.example"]);
    expect(mail.cc.map((a) => a.address)).toEqual(["boss@customer.example", "peer@customer.example"]);
  });

  it("answering our own previous outbound writes to its recipients again", () => {
    const ours = customerMessage({
      messageId: "<out-1@mail.acme.example>",
      from: { name: "ACME Support", address: "support@acme.example" },
      to: [{ name: "Carla", address: "carla@customer.example" }],
      cc: [{ address: "boss@customer.example" }, { address: "audit@acme.example" }],
    });
    const reply = compose(withConversation({ messages: [customerMessage(), ours] }));
    expect(reply.to.map((a) => a.address)).toEqual(["carla@customer.example"]);
    expect(reply.cc).toEqual([]);
    expect(reply.inReplyTo).toBe("<out-1@mail.acme.example>");
    const all = compose(withConversation({ messages: [ours] }, { kind: "REPLY_ALL" }));
    expect(all.cc.map((a) => a.address)).toEqual(["boss@customer.example", "audit@acme.example"]);
  });

  it("adds the address's hidden BCC and allows at most 5", () => {
    const five = ["a", "b", "c", "d", "e"].map((x) => `${x}@audit.example`);
    const mail = compose(withAddress({ bcc: five }));
    expect(mail.bcc.map((a) => a.address)).toEqual(five);
    const err = composeError(() => compose(withAddress({ bcc: [...five, "f@audit.example"] })));
    expect(err).toMatchObject({ code: "TOO_MANY_BCC", field: "address.bcc" });
  });

  it("allows 50 recipients including BCC and refuses 51", () => {
    const addrs = (n: number, d: string) =>
      Array.from({ length: n }, (_, i) => ({ address: `r${i}@${d}.example` }));
    const fifty = compose(
      withAddress(
        { bcc: ["x@audit.example"] },
        { recipients: { to: addrs(30, "to"), cc: addrs(10, "cc"), bcc: addrs(9, "bcc") } },
      ),
    );
    expect(fifty.to.length + fifty.cc.length + fifty.bcc.length).toBe(50);
    const err = composeError(() =>
      compose(
        withAddress(
          { bcc: ["x@audit.example"] },
          { recipients: { to: addrs(30, "to"), cc: addrs(10, "cc"), bcc: addrs(10, "bcc") } },
        ),
      ),
    );
    expect(err).toMatchObject({ code: "TOO_MANY_RECIPIENTS", field: "recipients" });
  });

  it("counts and sends a duplicated recipient once", () => {
    const mail = compose(
      input({
        recipients: {
          to: [{ address: "x@c.example" }, { address: "X@c.example" }],
          cc: [{ address: "x@c.example" }, { address: "y@c.example" }],
          bcc: [{ address: "y@c.example" }],
        },
      }),
    );
    expect(mail.to.map((a) => a.address)).toEqual(["x@c.example"]);
    expect(mail.cc.map((a) => a.address)).toEqual(["y@c.example"]);
    expect(mail.bcc).toEqual([]);
  });

  it("needs a To or Cc recipient", () => {
    const err = composeError(() =>
      compose(
        withConversation(
          { messages: [] },
          { kind: "NEW", recipients: { bcc: [{ address: "b@c.example" }] } },
        ),
      ),
    );
    expect(err).toMatchObject({ code: "NO_RECIPIENTS", field: "recipients.to" });
  });

  it.each([
    ["plain", "no-at-sign"],
    ["space", "a b@c.example"],
    ["no dot in domain", "user@localhost"],
    ["double at", "a@b@c.example"],
    ["empty local", "@c.example"],
    ["leading dot", ".a@c.example"],
    ["quoted local", '"a b"@c.example'],
    ["too long local", `${"a".repeat(65)}@c.example`],
  ])("refuses an invalid address (%s) naming the field", (_name, address) => {
    const err = composeError(() =>
      compose(input({ recipients: { to: [{ address: "ok@c.example" }], cc: [{ address }] } })),
    );
    expect(err).toMatchObject({ code: "INVALID_ADDRESS", field: "recipients.cc[0]" });
  });

  it("accepts internationalised addresses (RFC 6532)", () => {
    const mail = compose(input({ recipients: { to: [{ address: "jörg@müller.example" }] } }));
    expect(mail.to[0]?.address).toBe("jörg@müller.example");
  });
});

describe("compose: attachments and size", () => {
  it("passes attachments through and validates their metadata", () => {
    const mail = compose(
      input({
        attachments: [
          { filename: "../../etc/passwd.txt", contentType: "Text/Plain", content: Buffer.from("hi") },
          {
            filename: "logo.png",
            contentType: "image/png",
            content: new Uint8Array([1, 2, 3]),
            contentId: "<logo@acme>",
            inline: true,
          },
        ],
      }),
    );
    expect(mail.attachments[0]).toMatchObject({
      filename: ".._.._etc_passwd.txt",
      contentType: "text/plain",
      inline: false,
    });
    expect(mail.attachments[1]).toMatchObject({ contentId: "logo@acme", inline: true });
    expect(Buffer.isBuffer(mail.attachments[1]?.content)).toBe(true);
    expect(
      composeError(() =>
        compose(
          input({ attachments: [{ filename: "a", contentType: "nonsense", content: Buffer.from("") }] }),
        ),
      ),
    ).toMatchObject({ code: "INVALID_ATTACHMENT", field: "attachments[0].contentType" });
    expect(
      composeError(() =>
        compose(
          input({ attachments: [{ filename: "\r\n", contentType: "text/plain", content: Buffer.from("") }] }),
        ),
      ),
    ).toMatchObject({ code: "INVALID_ATTACHMENT", field: "attachments[0].filename" });
  });

  it("refuses a message above the size limit (default 25 MiB)", () => {
    const big = Buffer.alloc(18 * 1024 * 1024);
    expect(
      compose(
        input({
          attachments: [{ filename: "a.bin", contentType: "application/octet-stream", content: big }],
        }),
      ).attachments,
    ).toHaveLength(1);
    // 18 MiB is ~24.6 MiB as base64; one more MiB of raw bytes tips it over 25 MiB.
    const two = [big, Buffer.alloc(1024 * 1024)].map((content, i) => ({
      filename: `p${i}.bin`,
      contentType: "application/octet-stream",
      content,
    }));
    expect(composeError(() => compose(input({ attachments: two })))).toMatchObject({
      code: "TOO_LARGE",
      field: "attachments",
    });
    expect(
      composeError(() => compose(input({ limits: { maxBytes: 5000 }, body: { text: "x".repeat(2000) } }))),
    ).toMatchObject({
      code: "TOO_LARGE",
      field: "body",
    });
  });

  it("estimates the encoded size above the raw size and close to the real MIME", async () => {
    const mail = compose(
      input({
        attachments: [
          { filename: "a.bin", contentType: "application/octet-stream", content: Buffer.alloc(300_000, 7) },
        ],
      }),
    );
    const real = (await buildRawMime(mail)).length;
    const estimate = estimateMimeSize(mail);
    expect(estimate).toBeGreaterThanOrEqual(real);
    expect(estimate).toBeLessThan(real * 1.1);
  });
});

describe("compose: custom headers", () => {
  it("adds allowed headers and refuses structural or malformed ones", () => {
    expect(compose(input({ headers: { "X-Switchboard-Ticket": "42" } })).headers).toEqual({
      "X-Switchboard-Ticket": "42",
    });
    for (const [name, value] of [
      ["Bcc", "evil@x.example"],
      ["subject", "x"],
      ["X Bad", "x"],
      ["X:Bad", "x"],
      ["X-Ok", "a\r\nBcc: evil@x.example"],
      ["X-Ok", "a\u0000b"],
    ]) {
      expect(
        composeError(() => compose(input({ headers: { [name as string]: value as string } }))),
      ).toMatchObject({
        code: "INVALID_HEADER",
      });
    }
  });
});

describe("compose: no header injection (parsed back with mailparser)", () => {
  const INJECT = "\r\nX-Injected: yes\r\nBcc: evil@attacker.example";

  async function assertClean(mail: ComposedMail) {
    const { parsed, headerBlock } = await parse(mail);
    expect(parsed.headers.has("x-injected")).toBe(false);
    expect(parsed.bcc).toBeUndefined();
    for (const name of headerNames(headerBlock)) expect(EXPECTED_HEADERS).toContain(name);
    expect(headerBlock).not.toMatch(/\r\n(?:X-Injected|Bcc):/i);
    return parsed;
  }

  it("through the conversation subject (inbound)", async () => {
    const mail = compose(withConversation({ subject: `Help${INJECT}` }));
    const parsed = await assertClean(mail);
    expect(parsed.subject).toBe("Re: Help X-Injected: yes Bcc: evil@attacker.example [#42]");
  });

  it("through the subject override, with NUL, LF-only, CR-only and other C0 controls", async () => {
    const subjectOverride = "A\u0000B\nX-Injected: 1\rBcc: e@x.example\u000bC\u001bD\u2028E";
    const mail = compose(
      input({
        subjectOverride,
        subjectOptions: { appendTicketOnFirstReply: false, agentsMayEditSubject: true },
      }),
    );
    const parsed = await assertClean(mail);
    expect(parsed.subject).toBe("A B X-Injected: 1 Bcc: e@x.example C D E [#42]");
  });

  it("through the address display name and recipient display names", async () => {
    const mail = compose(
      withAddress(
        { displayName: `ACME${INJECT}` },
        {
          recipients: {
            to: [{ name: `Bob${INJECT}`, address: "bob@customer.example" }],
            cc: [{ name: '"Eve" <x@y>\n', address: "eve@customer.example" }],
          },
        },
      ),
    );
    const parsed = await assertClean(mail);
    expect(parsed.from?.value[0]).toMatchObject({ address: "support@acme.example" });
    expect(parsed.from?.value[0]?.name).toBe("ACME X-Injected: yes Bcc: evil@attacker.example");
    expect(parsed.to && !Array.isArray(parsed.to) ? parsed.to.value.map((v) => v.address) : []).toEqual([
      "bob@customer.example",
    ]);
  });

  it("through display names of inbound mail used for reply-all defaults and quotes", async () => {
    const mail = compose(
      withConversation(
        {
          messages: [
            customerMessage({
              from: { name: `Carla${INJECT}`, address: "carla@customer.example" },
              cc: [{ name: `P${INJECT}`, address: "p@customer.example" }],
            }),
          ],
        },
        { kind: "REPLY_ALL" },
      ),
    );
    await assertClean(mail);
  });

  it.each([
    ["recipients.to[0]", { recipients: { to: [{ address: `bob@customer.example${INJECT}` }] } }],
    [
      "recipients.cc[0]",
      {
        recipients: { to: [{ address: "a@b.example" }], cc: [{ address: "c@d.example\nBcc: e@f.example" }] },
      },
    ],
    [
      "recipients.bcc[0]",
      { recipients: { to: [{ address: "a@b.example" }], bcc: [{ address: "c@d.example\r" }] } },
    ],
  ] as const)("through a recipient address → INVALID_ADDRESS on %s", (field, overrides) => {
    expect(composeError(() => compose(input(overrides)))).toMatchObject({ code: "INVALID_ADDRESS", field });
  });

  it.each([
    ["address.fromAddress", { fromAddress: `support@acme.example${INJECT}` }],
    ["address.replyTo[0]", { replyTo: [`reply@acme.example${INJECT}`] }],
    ["address.bcc[0]", { bcc: ["audit@acme.example\nX-Injected: 1"] }],
  ] as const)("through the address settings → INVALID_ADDRESS on %s", (field, overrides) => {
    expect(composeError(() => compose(withAddress(overrides)))).toMatchObject({
      code: "INVALID_ADDRESS",
      field,
    });
  });

  it("through In-Reply-To and References taken from inbound mail", async () => {
    const mail = compose(
      withConversation({
        messages: [
          customerMessage({
            messageId: `<parent@customer.example>${INJECT}`,
            references: [
              `<r1@x.example>${INJECT}`,
              "<r2@x.example>\nX-Injected: 2 <r3@x.example>",
              "<r4\r\n@x.example>",
            ],
          }),
        ],
      }),
    );
    expect(mail.inReplyTo).toBeNull();
    expect(mail.references).toEqual(["<r1@x.example>", "<r2@x.example>", "<r3@x.example>"]);
    const parsed = await assertClean(mail);
    expect(parsed.references).toEqual(["<r1@x.example>", "<r2@x.example>", "<r3@x.example>"]);
  });

  it("through attachment metadata", async () => {
    const mail = compose(
      input({
        attachments: [{ filename: `a.txt${INJECT}`, contentType: "text/plain", content: Buffer.from("x") }],
      }),
    );
    const parsed = await assertClean(mail);
    expect(parsed.attachments[0]?.filename).toBe("a.txt X-Injected: yes Bcc: evil@attacker.example");
    expect(
      composeError(() =>
        compose(
          input({
            attachments: [{ filename: "a", contentType: `text/plain${INJECT}`, content: Buffer.from("") }],
          }),
        ),
      ),
    ).toMatchObject({ code: "INVALID_ATTACHMENT", field: "attachments[0].contentType" });
    expect(
      composeError(() =>
        compose(
          input({
            attachments: [
              {
                filename: "a",
                contentType: "image/png",
                content: Buffer.from(""),
                contentId: `c@d${INJECT}`,
              },
            ],
          }),
        ),
      ),
    ).toMatchObject({ code: "INVALID_ATTACHMENT", field: "attachments[0].contentId" });
  });

  it("property: no control-character payload in free-text fields adds a header", async () => {
    const nasty = fc
      .array(
        fc.oneof(
          fc.constantFrom(
            "\r",
            "\n",
            "\r\n",
            "\u0000",
            "\t",
            "\u000b",
            "\u0085",
            "\u2028",
            "X-Injected: 1",
            "Bcc: e@x.example",
            ":",
            "<",
            ">",
            '"',
            "=?utf-8?q?x?=",
          ),
          fc.string({ maxLength: 5 }),
        ),
        { maxLength: 12 },
      )
      .map((parts) => parts.join(""));
    await fc.assert(
      fc.asyncProperty(nasty, nasty, nasty, nasty, async (subject, displayName, toName, filename) => {
        const mail = compose(
          withAddress(
            { displayName },
            {
              conversation: { ...input().conversation, subject },
              recipients: { to: [{ name: toName, address: "bob@customer.example" }] },
              attachments: [
                { filename: `f${filename}`, contentType: "text/plain", content: Buffer.from("x") },
              ],
            },
          ),
        );
        const { parsed, headerBlock } = await parse(mail);
        expect(parsed.headers.has("x-injected")).toBe(false);
        expect(parsed.bcc).toBeUndefined();
        for (const name of headerNames(headerBlock)) expect(EXPECTED_HEADERS).toContain(name);
      }),
      { numRuns: 150 },
    );
  });
});

describe("compose: round trip through MIME", () => {
  it("the raw message carries every composed field and hides BCC", async () => {
    const mail = compose(
      withAddress(
        {
          replyTo: ["desk@acme.example"],
          bcc: ["audit@acme.example"],
          signaturePolicy: "ALL",
          historyPolicy: "ALWAYS",
        },
        {
          body: { html: '<p>Hello Carla <img src="cid:logo@acme"></p>' },
          attachments: [
            {
              filename: "logo.png",
              contentType: "image/png",
              content: Buffer.from([137, 80, 78, 71]),
              contentId: "logo@acme",
              inline: true,
            },
            { filename: "terms.pdf", contentType: "application/pdf", content: Buffer.from("%PDF-1.4") },
          ],
        },
      ),
    );
    const { parsed, raw } = await parse(mail);
    expect(parsed.messageId).toBe(mail.messageId);
    expect(parsed.inReplyTo).toBe("<cust-2@customer.example>");
    expect(parsed.references).toEqual(mail.references);
    expect(parsed.subject).toBe("Re: Broken widget [#42]");
    expect(parsed.date?.toISOString()).toBe(NOW.toISOString());
    expect(parsed.replyTo?.value[0]?.address).toBe("desk@acme.example");
    expect(parsed.bcc).toBeUndefined();
    expect(raw).not.toContain("audit@acme.example");
    expect(parsed.text).toContain("Hello Carla");
    expect(parsed.text).toContain("-- \nRegards, Ann Agent (ACME Corp)");
    expect(parsed.html).toContain("<blockquote");
    const names = parsed.attachments.map((a) => [a.filename, a.contentDisposition, a.cid ?? null]);
    expect(names).toEqual([
      ["logo.png", "inline", "logo@acme"],
      ["terms.pdf", "attachment", null],
    ]);
  });

  it("an auto-reply carries Auto-Submitted: auto-replied (RFC 3834 §5)", async () => {
    const { parsed } = await parse(
      compose(input({ kind: "AUTO_REPLY", agent: null, body: { text: "We got your mail." } })),
    );
    expect(parsed.headers.get("auto-submitted")).toBe("auto-replied");
    expect(parsed.headers.get("x-auto-response-suppress")).toBe("All");
    expect(parsed.subject).toBe("Re: Broken widget");
  });
});
