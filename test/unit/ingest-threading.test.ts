import { describe, expect, it } from "vitest";
import type { ThreadingMode } from "../../src/engine/domain.js";
import type {
  MessageIdCandidate,
  ThreadingDecision,
  ThreadingInput,
  TicketCandidate,
} from "../../src/engine/ingest/threading.js";
import { decideThread, MAX_REFERENCE_LOOKUPS, threadingLookups } from "../../src/engine/ingest/threading.js";

const ALICE = "alice@customer.example";
const BOB = "bob@customer.example"; // a colleague Alice cc'd
const MALLORY = "mallory@evil.example";

// Conversation C1 belongs to Alice, Bob took part; C2 belongs to someone else.
const byId = (messageId: string, conversationId: string, contactEmail = ALICE): MessageIdCandidate => ({
  messageId,
  conversationId,
  contactEmail,
  participantEmails: [ALICE, BOB, "support@acme.example"],
});
const byTicket = (ticketNumber: number, conversationId: string, contactEmail = ALICE): TicketCandidate => ({
  ticketNumber,
  conversationId,
  contactEmail,
  participantEmails: contactEmail === ALICE ? [ALICE, BOB] : [contactEmail],
});

function input(over: Partial<ThreadingInput>): ThreadingInput {
  return {
    mode: "REFERENCES_THEN_TICKET",
    inReplyTo: null,
    references: [],
    subject: "Question",
    candidatesByMessageId: [],
    candidatesByTicket: [],
    senderEmail: ALICE,
    ...over,
  };
}

type Row = [
  name: string,
  over: Partial<ThreadingInput>,
  expected: Partial<Extract<ThreadingDecision, { kind: "existing" }>> | "new",
];

const rows: Row[] = [
  ["nothing to match → new", {}, "new"],
  [
    "In-Reply-To match",
    { inReplyTo: "out-1@acme.example", candidatesByMessageId: [byId("out-1@acme.example", "C1")] },
    { conversationId: "C1", via: "in-reply-to", matched: "out-1@acme.example", senderIsMember: true },
  ],
  [
    "In-Reply-To given with brackets is normalised",
    { inReplyTo: "<out-1@acme.example>", candidatesByMessageId: [byId("out-1@acme.example", "C1")] },
    { conversationId: "C1", via: "in-reply-to" },
  ],
  [
    "In-Reply-To beats References",
    {
      inReplyTo: "out-2@acme.example",
      references: ["out-1@acme.example"],
      candidatesByMessageId: [byId("out-1@acme.example", "C1"), byId("out-2@acme.example", "C2")],
    },
    { conversationId: "C2", via: "in-reply-to" },
  ],
  [
    "References, newest (last) first",
    {
      references: ["old@acme.example", "new@acme.example"],
      candidatesByMessageId: [byId("old@acme.example", "C1"), byId("new@acme.example", "C2")],
    },
    { conversationId: "C2", via: "references", matched: "new@acme.example" },
  ],
  [
    "References when In-Reply-To is unknown",
    {
      inReplyTo: "unknown@elsewhere.example",
      references: ["out-1@acme.example", "unknown@elsewhere.example"],
      candidatesByMessageId: [byId("out-1@acme.example", "C1")],
    },
    { conversationId: "C1", via: "references" },
  ],
  [
    "References beat the ticket number",
    {
      subject: "Re: Question [#42]",
      references: ["out-1@acme.example"],
      candidatesByMessageId: [byId("out-1@acme.example", "C1")],
      candidatesByTicket: [byTicket(42, "C9")],
    },
    { conversationId: "C1", via: "references" },
  ],
  [
    "ticket number when no Message-ID matches",
    { subject: "Re: Question [#42]", inReplyTo: "gone@x.example", candidatesByTicket: [byTicket(42, "C1")] },
    { conversationId: "C1", via: "ticket", matched: "42", senderIsMember: true },
  ],
  [
    "ticket number from a participant (not the contact)",
    { subject: "Re: Question #42", senderEmail: BOB, candidatesByTicket: [byTicket(42, "C1")] },
    { conversationId: "C1", via: "ticket" },
  ],
  [
    "ticket number: sender compared after normalisation",
    {
      subject: "{#42} Question",
      senderEmail: " Alice@Customer.EXAMPLE ",
      candidatesByTicket: [byTicket(42, "C1")],
    },
    { conversationId: "C1", via: "ticket" },
  ],
  [
    "ticket number from a stranger → new (no injection into someone's ticket)",
    { subject: "Re: Question [#42]", senderEmail: MALLORY, candidatesByTicket: [byTicket(42, "C1")] },
    "new",
  ],
  [
    "ticket number with an unparseable sender → new",
    { subject: "Re: [#42]", senderEmail: "not an address", candidatesByTicket: [byTicket(42, "C1")] },
    "new",
  ],
  [
    "ticket number with no sender at all → new",
    { subject: "Re: [#42]", senderEmail: null, candidatesByTicket: [byTicket(42, "C1")] },
    "new",
  ],
  [
    "second ticket number in the subject is tried when the first is not the sender's",
    {
      subject: "Fwd: [#7] and [#42]",
      candidatesByTicket: [byTicket(7, "C7", "carol@other.example"), byTicket(42, "C1")],
    },
    { conversationId: "C1", via: "ticket", matched: "42" },
  ],
  [
    "a plain number is not a ticket",
    { subject: "Order 42 failed", candidatesByTicket: [byTicket(42, "C1")] },
    "new",
  ],
  [
    "a Message-ID match trusts whoever quotes it (they received that mail)",
    {
      senderEmail: "dave@customer.example",
      inReplyTo: "out-1@acme.example",
      candidatesByMessageId: [byId("out-1@acme.example", "C1")],
    },
    { conversationId: "C1", via: "in-reply-to", senderIsMember: false },
  ],
  [
    "the same Message-ID in two conversations: the sender's one wins",
    {
      inReplyTo: "dup@acme.example",
      senderEmail: "carol@other.example",
      candidatesByMessageId: [
        byId("dup@acme.example", "C1"),
        byId("dup@acme.example", "C5", "carol@other.example"),
      ],
    },
    { conversationId: "C5", senderIsMember: true },
  ],
  [
    "the same Message-ID in two conversations, sender in neither: caller's first",
    {
      inReplyTo: "dup@acme.example",
      senderEmail: MALLORY,
      candidatesByMessageId: [
        byId("dup@acme.example", "C1"),
        byId("dup@acme.example", "C5", "carol@other.example"),
      ],
    },
    { conversationId: "C1", senderIsMember: false },
  ],
  // TICKET_ONLY
  [
    "TICKET_ONLY ignores In-Reply-To",
    {
      mode: "TICKET_ONLY",
      inReplyTo: "out-1@acme.example",
      candidatesByMessageId: [byId("out-1@acme.example", "C1")],
    },
    "new",
  ],
  [
    "TICKET_ONLY ignores References and uses the ticket",
    {
      mode: "TICKET_ONLY",
      subject: "Re: [#42]",
      references: ["out-1@acme.example"],
      candidatesByMessageId: [byId("out-1@acme.example", "C1")],
      candidatesByTicket: [byTicket(42, "C2")],
    },
    { conversationId: "C2", via: "ticket" },
  ],
  [
    "TICKET_ONLY still refuses strangers",
    {
      mode: "TICKET_ONLY",
      subject: "Re: [#42]",
      senderEmail: MALLORY,
      candidatesByTicket: [byTicket(42, "C1")],
    },
    "new",
  ],
  [
    "a candidate for another Message-ID does not match",
    { inReplyTo: "a@acme.example", candidatesByMessageId: [byId("b@acme.example", "C1")] },
    "new",
  ],
];

describe("decideThread", () => {
  it.each(rows)("%s", (_name, over, expected) => {
    const d = decideThread(input(over));
    if (expected === "new") expect(d.kind).toBe("new");
    else expect(d).toMatchObject({ kind: "existing", ...expected });
  });

  it("reports rejected ticket matches so the caller can record them", () => {
    const d = decideThread(
      input({ subject: "[#42]", senderEmail: MALLORY, candidatesByTicket: [byTicket(42, "C1")] }),
    );
    expect(d).toEqual({
      kind: "new",
      rejected: [{ conversationId: "C1", via: "ticket", reason: "sender-not-member" }],
    });
  });

  describe("a reply that arrived first", () => {
    const reply = (conversationId: string, contactEmail = ALICE) =>
      byId("orig@customer.example", conversationId, contactEmail);

    it("takes the mail into the reply's conversation when the sender belongs to it", () => {
      expect(decideThread(input({ candidatesByReply: [reply("C1")] }))).toEqual({
        kind: "existing",
        conversationId: "C1",
        via: "earlier-reply",
        matched: "orig@customer.example",
        senderIsMember: true,
        rejected: [],
      });
      // Bob was copied on the reply: his original joins it too.
      expect(decideThread(input({ senderEmail: BOB, candidatesByReply: [reply("C1")] }))).toMatchObject({
        kind: "existing",
        conversationId: "C1",
      });
    });

    it("never for a stranger, and says so once per conversation", () => {
      expect(
        decideThread(input({ senderEmail: MALLORY, candidatesByReply: [reply("C1"), reply("C1")] })),
      ).toEqual({
        kind: "new",
        rejected: [{ conversationId: "C1", via: "earlier-reply", reason: "sender-not-member" }],
      });
    });

    it("comes after what the mail names itself, and before ticket numbers", () => {
      expect(
        decideThread(
          input({
            inReplyTo: "a@acme.example",
            candidatesByMessageId: [byId("a@acme.example", "C2")],
            candidatesByReply: [reply("C1")],
          }),
        ),
      ).toMatchObject({ conversationId: "C2", via: "in-reply-to" });
      expect(
        decideThread(
          input({
            subject: "[#42]",
            candidatesByTicket: [byTicket(42, "C2")],
            candidatesByReply: [reply("C1")],
          }),
        ),
      ).toMatchObject({ conversationId: "C1", via: "earlier-reply" });
    });

    it("is not looked at in TICKET_ONLY mode", () => {
      expect(decideThread(input({ mode: "TICKET_ONLY", candidatesByReply: [reply("C1")] })).kind).toBe("new");
    });
  });

  it.each([["REFERENCES_THEN_TICKET"], ["TICKET_ONLY"]] as [ThreadingMode][])(
    "%s: a conversation of another contact never matches by ticket",
    (mode) => {
      const d = decideThread(
        input({
          mode,
          subject: "[#42]",
          senderEmail: ALICE,
          candidatesByTicket: [byTicket(42, "C3", "zed@z.example")],
        }),
      );
      expect(d.kind).toBe("new");
    },
  );
});

describe("threadingLookups", () => {
  it("lists In-Reply-To, References newest first, and ticket numbers", () => {
    expect(
      threadingLookups({
        mode: "REFERENCES_THEN_TICKET",
        inReplyTo: "<c@x>",
        references: ["<a@x>", "b@x", "c@x"],
        subject: "Re: [#42] and #7",
      }),
    ).toEqual({ messageIds: ["c@x", "b@x", "a@x"], ticketNumbers: [42, 7], repliedBy: null });
  });

  it("names the mail's own Message-ID, to find a reply to it that arrived first (not in TICKET_ONLY)", () => {
    const mail = { messageId: " <Own@x> ", inReplyTo: null, references: [], subject: "Hi" };
    expect(threadingLookups({ mode: "REFERENCES_THEN_TICKET", ...mail }).repliedBy).toBe("Own@x");
    expect(threadingLookups({ mode: "TICKET_ONLY", ...mail }).repliedBy).toBeNull();
  });

  it("TICKET_ONLY needs no Message-ID lookups", () => {
    expect(
      threadingLookups({ mode: "TICKET_ONLY", inReplyTo: "c@x", references: ["a@x"], subject: "[#42]" }),
    ).toEqual({ messageIds: [], ticketNumbers: [42], repliedBy: null });
  });

  it("caps the lookups a crafted References header can cause", () => {
    const references = Array.from({ length: 500 }, (_, i) => `r${i}@x`);
    const { messageIds } = threadingLookups({
      mode: "REFERENCES_THEN_TICKET",
      inReplyTo: null,
      references,
      subject: "",
    });
    expect(messageIds).toHaveLength(MAX_REFERENCE_LOOKUPS);
    expect(messageIds[0]).toBe("r499@x");
    // The thread's root is always among them, whatever the cap.
    expect(messageIds.at(-1)).toBe("r0@x");
  });

  it("decideThread only uses ids that threadingLookups asked for", () => {
    const references = Array.from({ length: 60 }, (_, i) => `r${i}@x`);
    // r1 is beyond the cap: even if the caller passes a candidate for it, it is ignored.
    const d = decideThread(input({ references, candidatesByMessageId: [byId("r1@x", "C1")] }));
    expect(d.kind).toBe("new");
  });

  it("a long References that names only the thread's root (the first id) still threads", () => {
    const references = ["root@x", ...Array.from({ length: 99 }, (_, i) => `unknown${i}@x`)];
    const d = decideThread(input({ references, candidatesByMessageId: [byId("root@x", "C1")] }));
    expect(d).toMatchObject({ kind: "existing", conversationId: "C1" });
  });
});
