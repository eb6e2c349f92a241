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
});
