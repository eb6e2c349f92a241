import type { ThreadingMode } from "../domain.js";
import { extractTicketNumbers } from "../subject.js";
import { normalizeEmailAddress } from "./contact.js";
import { normalizeMessageId } from "./parsed-mail.js";

/**
 * Threading decision (SPEC §5–6): which existing conversation an inbound message
 * belongs to, or none. Pure; the caller does the lookups listed by `threadingLookups`,
 * always scoped to the tenant, and passes what it found.
 *
 * The membership rule — why a stranger cannot write into someone else's ticket:
 *
 * - A **Message-ID match** (In-Reply-To / References) is trusted on its own. A msg-id
 *   is only known to people the referenced mail was sent to (ours are random), so
 *   quoting it shows the sender received that mail: a colleague the customer forwarded
 *   our answer to, or a CC, legitimately joins. `senderIsMember` tells the caller to
 *   record the newcomer as a participant.
 * - A **ticket-number match** only counts when the sender is the conversation's contact
 *   or one of its participants (anyone who sent or received mail in it). Ticket
 *   numbers are short and guessable; without this rule anyone could inject a message
 *   into another customer's conversation, and the agent's answer — which goes to the
 *   sender — would leak the conversation to them. A rejected match is reported in
 *   `rejected` so the caller can log it on the new conversation's timeline.
 * - A **reply that arrived first** (mail delayed on its way: a customer's "forgot the
 *   attachment" reaches us before the mail it answers) names this mail's Message-ID in its
 *   In-Reply-To. It counts like a ticket number, only when the sender belongs to the
 *   reply's conversation: the reply is someone else's mail, and copying a Message-ID into
 *   a new mail shows nothing about who its sender is.
 * - Addresses are compared after `normalizeEmailAddress`; an unparseable sender never
 *   satisfies the ticket rule.
 */

export interface ThreadCandidate {
  conversationId: string;
  /** The conversation's contact (the customer) email address. */
  contactEmail: string;
  /** Every address that sent or received mail in the conversation (From/To/Cc). */
  participantEmails?: readonly string[] | undefined;
}

export interface MessageIdCandidate extends ThreadCandidate {
  /** The stored Message-ID (inbound or outbound) that matched. */
  messageId: string;
}

export interface TicketCandidate extends ThreadCandidate {
  ticketNumber: number;
}

export interface ThreadingInput {
  mode: ThreadingMode;
  inReplyTo: string | null;
  /** Oldest first, as in the header. */
  references: readonly string[];
  subject: string;
  /** Every stored message of the tenant whose Message-ID is in `threadingLookups().messageIds`. */
  candidatesByMessageId: readonly MessageIdCandidate[];
  /** Every conversation of the tenant whose ticket number is in `threadingLookups().ticketNumbers`. */
  candidatesByTicket: readonly TicketCandidate[];
  /**
   * Stored inbound mail whose In-Reply-To is `threadingLookups().repliedBy` (this mail's
   * own Message-ID), oldest first; `messageId` is that id. Absent: none.
   */
  candidatesByReply?: readonly MessageIdCandidate[] | undefined;
  senderEmail: string | null;
}

export type ThreadVia = "in-reply-to" | "references" | "earlier-reply" | "ticket";

export interface RejectedMatch {
  conversationId: string;
  via: ThreadVia;
  reason: "sender-not-member";
}

export type ThreadingDecision =
  | {
      kind: "existing";
      conversationId: string;
      via: ThreadVia;
      /** The matched Message-ID or ticket number, for the timeline. */
      matched: string;
      /** False when a Message-ID match brought in a sender new to the conversation. */
      senderIsMember: boolean;
      rejected: RejectedMatch[];
    }
  | { kind: "new"; rejected: RejectedMatch[] };

/** More ids than this are never looked up: a crafted References must not fan out. */
export const MAX_REFERENCE_LOOKUPS = 50;

export interface ThreadingLookups {
  messageIds: string[];
  ticketNumbers: number[];
  /** This mail's own Message-ID, to find replies to it that arrived first; null: none. */
  repliedBy: string | null;
}

/** What the caller must look up before calling `decideThread`. */
export function threadingLookups(input: {
  mode: ThreadingMode;
  messageId?: string | null | undefined;
  inReplyTo: string | null;
  references: readonly string[];
  subject: string;
}): ThreadingLookups {
  const ticketNumbers = extractTicketNumbers(input.subject);
  if (input.mode === "TICKET_ONLY") return { messageIds: [], ticketNumbers, repliedBy: null };
  return {
    messageIds: messageIdsInOrder(input.inReplyTo, input.references),
    ticketNumbers,
    repliedBy: normalizeMessageId(input.messageId),
  };
}

/**
 * In-Reply-To first, then References newest first, de-duplicated and capped — and the
 * thread's root (the first References id) always, whatever the cap: mail clients shorten
 * long References to the root and the newest ids, and a long thread whose newer mail we
 * never saw (outside copies, forwards) must still find the conversation it started.
 */
function messageIdsInOrder(inReplyTo: string | null, references: readonly string[]): string[] {
  const ids: string[] = [];
  const irt = normalizeMessageId(inReplyTo);
  if (irt) ids.push(irt);
  const root = references.length > 0 ? normalizeMessageId(references[0]) : null;
  const cap = root && root !== irt ? MAX_REFERENCE_LOOKUPS - 1 : MAX_REFERENCE_LOOKUPS;
  for (let i = references.length - 1; i >= 0 && ids.length < cap; i--) {
    const id = normalizeMessageId(references[i]);
    if (id && !ids.includes(id)) ids.push(id);
  }
  if (root && !ids.includes(root)) ids.push(root);
  return ids;
}

function isMember(candidate: ThreadCandidate, sender: string | null): boolean {
  if (!sender) return false;
  const keys = [candidate.contactEmail, ...(candidate.participantEmails ?? [])];
  return keys.some((k) => normalizeEmailAddress(k)?.address === sender);
}

export function decideThread(input: ThreadingInput): ThreadingDecision {
  const sender = normalizeEmailAddress(input.senderEmail)?.address ?? null;
  const rejected: RejectedMatch[] = [];

  if (input.mode === "REFERENCES_THEN_TICKET") {
    const irt = normalizeMessageId(input.inReplyTo);
    for (const id of messageIdsInOrder(input.inReplyTo, input.references)) {
      const matches = input.candidatesByMessageId.filter((c) => normalizeMessageId(c.messageId) === id);
      if (matches.length === 0) continue;
      // The same Message-ID can sit in two conversations (one mail sent to two of our
      // addresses). Prefer the one the sender belongs to; else the caller's first.
      const chosen = matches.find((c) => isMember(c, sender)) ?? matches[0]!;
      return {
        kind: "existing",
        conversationId: chosen.conversationId,
        via: id === irt ? "in-reply-to" : "references",
        matched: id,
        senderIsMember: isMember(chosen, sender),
        rejected,
      };
    }
    // Nothing this mail names is stored; a reply to it may be (it arrived first).
    for (const c of input.candidatesByReply ?? []) {
      if (isMember(c, sender)) {
        return {
          kind: "existing",
          conversationId: c.conversationId,
          via: "earlier-reply",
          matched: c.messageId,
          senderIsMember: true,
          rejected,
        };
      }
      if (!rejected.some((r) => r.conversationId === c.conversationId)) {
        rejected.push({
          conversationId: c.conversationId,
          via: "earlier-reply",
          reason: "sender-not-member",
        });
      }
    }
  }

  for (const n of extractTicketNumbers(input.subject)) {
    for (const c of input.candidatesByTicket.filter((t) => t.ticketNumber === n)) {
      if (isMember(c, sender)) {
        return {
          kind: "existing",
          conversationId: c.conversationId,
          via: "ticket",
          matched: String(n),
          senderIsMember: true,
          rejected,
        };
      }
      rejected.push({ conversationId: c.conversationId, via: "ticket", reason: "sender-not-member" });
    }
  }
  return { kind: "new", rejected };
}
