import { describe, expect, it } from "vitest";
import {
  extractTicketNumbers,
  forwardSubject,
  replySubject,
  stripReplyPrefixes,
  withTicketNumber,
} from "../../src/engine/subject.js";

describe("subject", () => {
  it.each([
    ["Hello", "Re: Hello"],
    ["Re: Hello", "Re: Hello"],
    ["RE: re: AW: Hello", "Re: Hello"],
    ["Re[2]: Hello", "Re: Hello"],
    ["", "Re:"],
  ])("replySubject(%j) = %j", (input, expected) => {
    expect(replySubject(input)).toBe(expected);
  });

  it("strips prefixes only at the start", () => {
    expect(stripReplyPrefixes("About re: things")).toBe("About re: things");
    expect(forwardSubject("Re: Fwd: Invoice")).toBe("Fwd: Invoice");
  });

  it.each([
    ["Help [#42]", [42]],
    ["{#7} Help", [7]],
    ["Help #123456", [123456]],
    ["Order 123456 failed", []],
    ["Issue#12 is not a token", []],
    ["Re: [#5] and {#6} and [#5]", [5, 6]],
    // A customer's own number with a dash names no ticket (re-probe, session 16).
    ["Invoice #2024-17 wrong", []],
    ["Invoice #2024-17 wrong [#100002]", [100002]],
    // ... but a token followed by "-" and a word still is (second re-probe).
    ["Order #100001-urgent", [100001]],
    ["Order #100001 - urgent", [100001]],
  ])("extracts ticket numbers from %j", (subject, expected) => {
    expect(extractTicketNumbers(subject)).toEqual(expected);
  });

  it.each([
    [{ placement: "END", delimiter: "SQUARE" }, "Re: Help [#42]"],
    [{ placement: "END", delimiter: "CURLY" }, "Re: Help {#42}"],
    [{ placement: "END", delimiter: "NONE" }, "Re: Help #42"],
    [{ placement: "START", delimiter: "SQUARE" }, "Re: [#42] Help"],
    [{ placement: "HIDDEN", delimiter: "SQUARE" }, "Re: Help"],
  ] as const)("places the ticket per %j", (format, expected) => {
    expect(withTicketNumber("Re: Help [#42]", 42, format)).toBe(expected);
  });

  it("never accumulates tokens", () => {
    const once = withTicketNumber("Help", 9, { placement: "END", delimiter: "SQUARE" });
    const twice = withTicketNumber(replySubject(once), 9, { placement: "END", delimiter: "SQUARE" });
    expect(twice).toBe("Re: Help [#9]");
  });

  // Customers write their own numbers as "#digits": a reply keeps them and replaces only
  // our tokens ([#N], {#N}, and a bare #N of this conversation's ticket).
  it.each([
    [
      "Re: Order #98765 not delivered",
      { placement: "END", delimiter: "SQUARE" },
      "Re: Order #98765 not delivered [#100001]",
    ],
    [
      "Re: Invoice #2024-17 wrong",
      { placement: "END", delimiter: "SQUARE" },
      "Re: Invoice #2024-17 wrong [#100001]",
    ],
    [
      "Re: Order #98765 not delivered",
      { placement: "HIDDEN", delimiter: "SQUARE" },
      "Re: Order #98765 not delivered",
    ],
    [
      "Re: Order #98765 not delivered",
      { placement: "START", delimiter: "CURLY" },
      "Re: {#100001} Order #98765 not delivered",
    ],
    ["Re: Order #98765 [#100001]", { placement: "END", delimiter: "NONE" }, "Re: Order #98765 #100001"],
    ["Re: Order #98765 #100001", { placement: "END", delimiter: "SQUARE" }, "Re: Order #98765 [#100001]"],
    ["Re: #100001 Order #98765", { placement: "HIDDEN", delimiter: "NONE" }, "Re: Order #98765"],
    ["Re: Order #100001-2 [#7]", { placement: "END", delimiter: "SQUARE" }, "Re: Order #100001-2 [#100001]"],
  ] as const)("keeps the customer's own #numbers: %j with %j", (subject, format, expected) => {
    expect(withTicketNumber(subject, 100001, format)).toBe(expected);
  });

  it("a reply to a reply with a customer's #number stays one Re: and one token", () => {
    const format = { placement: "END", delimiter: "NONE" } as const;
    const once = withTicketNumber(replySubject("Order #98765 not delivered"), 100001, format);
    const twice = withTicketNumber(replySubject(`RE: ${once}`), 100001, format);
    expect(once).toBe("Re: Order #98765 not delivered #100001");
    expect(twice).toBe(once);
    // Inbound threading still reads both numbers (the bare form is ours with NONE).
    expect(extractTicketNumbers(twice)).toEqual([98765, 100001]);
  });
});
