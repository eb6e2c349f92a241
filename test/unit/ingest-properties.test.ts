import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { normalizeEmailAddress } from "../../src/engine/ingest/contact.js";
import { sanitizeHtml } from "../../src/engine/ingest/sanitize.js";
import { decideThread } from "../../src/engine/ingest/threading.js";

/** Property tests: invariants that must hold for any input, not just the listed cases. */

// HTML soup built from the pieces attacks are made of.
const fragment = fc.constantFrom(
  "<",
  ">",
  "/",
  '"',
  "'",
  "=",
  " ",
  "\t",
  "\n",
  "&#",
  "&#x",
  ";",
  ":",
  "script",
  "img",
  "a",
  "svg",
  "math",
  "style",
  "iframe",
  "form",
  "src",
  "href",
  "onerror",
  "onload",
  "javascript",
  "JaVaScRiPt",
  "data",
  "alert(1)",
  "x",
  "<!--",
  "-->",
  "<![CDATA[",
  "]]>",
  "expression(",
  "url(",
  "srcdoc",
  "xlink:href",
  "noscript",
  "title",
  "textarea",
);
const soup = fc.array(fragment, { maxLength: 60 }).map((parts) => parts.join(""));

describe("sanitizeHtml properties", () => {
  it("never emits an event handler, script tag or script URL", () => {
    fc.assert(
      fc.property(soup, (html) => {
        const out = sanitizeHtml(html).html;
        // Outside tags the sanitiser escapes "<", so these can only be real markup.
        for (const tag of out.matchAll(/<[a-zA-Z][^>]*>/g)) {
          expect(tag[0]).not.toMatch(/\son[a-z]+=/i);
          expect(tag[0]).not.toMatch(/=\s*"\s*(?:javascript|vbscript|data:text)/i);
        }
        expect(out).not.toMatch(/<(?:script|svg|math|iframe|form|style|textarea|noscript|title)\b/i);
      }),
      { numRuns: 2000 },
    );
  });

  it("is idempotent: sanitising sanitised output changes nothing", () => {
    fc.assert(
      fc.property(soup, (html) => {
        const once = sanitizeHtml(html).html;
        expect(sanitizeHtml(once).html).toBe(once);
      }),
      { numRuns: 500 },
    );
  });
});

describe("normalizeEmailAddress properties", () => {
  it("is idempotent and yields lower-case local parts", () => {
    fc.assert(
      fc.property(fc.emailAddress(), (raw) => {
        const n = normalizeEmailAddress(raw);
        if (n === null) return;
        expect(normalizeEmailAddress(n.address)?.address).toBe(n.address);
        expect(normalizeEmailAddress(n.asciiAddress)?.address).toBe(n.address);
        expect(n.local).toBe(n.local.toLowerCase());
      }),
    );
  });

  it("case and brackets never create a second contact", () => {
    fc.assert(
      fc.property(fc.emailAddress(), (raw) => {
        const n = normalizeEmailAddress(raw);
        if (n === null) return;
        expect(normalizeEmailAddress(`<${raw.toUpperCase()}>`)?.address).toBe(n.address);
      }),
    );
  });
});

describe("decideThread properties", () => {
  it("a ticket match never lands a stranger in another contact's conversation", () => {
    fc.assert(
      fc.property(
        fc.emailAddress(),
        fc.emailAddress(),
        fc.integer({ min: 1, max: 999_999 }),
        fc.constantFrom("REFERENCES_THEN_TICKET" as const, "TICKET_ONLY" as const),
        (sender, contact, ticket, mode) => {
          fc.pre(normalizeEmailAddress(sender)?.address !== normalizeEmailAddress(contact)?.address);
          const d = decideThread({
            mode,
            inReplyTo: null,
            references: [],
            subject: `Re: help [#${ticket}]`,
            candidatesByMessageId: [],
            candidatesByTicket: [
              {
                conversationId: "C",
                ticketNumber: ticket,
                contactEmail: contact,
                participantEmails: [contact],
              },
            ],
            senderEmail: sender,
          });
          expect(d.kind).toBe("new");
        },
      ),
    );
  });
});
