import { describe, expect, it } from "vitest";
import {
  decideDisplayName,
  normalizeEmailAddress,
  sameAddress,
  senderContact,
} from "../../src/engine/ingest/contact.js";

describe("normalizeEmailAddress", () => {
  it.each([
    ["alice@example.com", "alice@example.com"],
    ["  Alice@Example.COM ", "alice@example.com"],
    ["<alice@example.com>", "alice@example.com"],
    ["mailto:Alice@example.com", "alice@example.com"],
    ["alice@example.com.", "alice@example.com"],
    ["alice+tag@example.com", "alice+tag@example.com"],
    // IDN: A-label and U-label forms are one contact, stored in Unicode
    ["info@xn--bcher-kva.example", "info@bücher.example"],
    ["info@BÜCHER.example", "info@bücher.example"],
    ["info@bu\u0308cher.example", "info@bücher.example"], // NFD input
    ["jdöe@mächine.example", "jdöe@mächine.example"], // RFC 6532 local part
    ['"john"@example.com', "john@example.com"],
    ["user@[192.0.2.1]", "user@[192.0.2.1]"],
  ])("%j → %j", (raw, expected) => {
    expect(normalizeEmailAddress(raw)?.address).toBe(expected);
  });

  it("gives the ASCII (A-label) form for SMTP without SMTPUTF8", () => {
    expect(normalizeEmailAddress("info@bücher.example")).toEqual({
      address: "info@bücher.example",
      local: "info",
      domain: "bücher.example",
      asciiAddress: "info@xn--bcher-kva.example",
    });
  });

  it.each([
    [""],
    ["   "],
    ["alice"],
    ["@example.com"],
    ["alice@"],
    ["alice@localhost"],
    ["a b@example.com"],
    ["alice@exa mple.com"],
    ["alice@example.com\r\nBcc: x@y.com"],
    ["a@b@example.com"],
    ["alice@example.com, bob@example.com"],
    ["alice@-invalid-.xn--zz"],
    [`${"a".repeat(65)}@example.com`],
  ])("rejects %j", (raw) => {
    expect(normalizeEmailAddress(raw)).toBeNull();
  });

  it("null and undefined are not addresses", () => {
    expect(normalizeEmailAddress(null)).toBeNull();
    expect(normalizeEmailAddress(undefined)).toBeNull();
  });

  it("sameAddress compares normalised forms", () => {
    expect(sameAddress("Alice@EXAMPLE.com", "<alice@example.com>")).toBe(true);
    expect(sameAddress("info@xn--bcher-kva.example", "INFO@bücher.example")).toBe(true);
    expect(sameAddress("alice@example.com", "bob@example.com")).toBe(false);
    expect(sameAddress("junk", "junk")).toBe(false);
  });
});

describe("decideDisplayName", () => {
  it.each([
    ["Alice Smith", "alice@x.example", "Alice Smith"],
    ["  Alice   Smith ", "alice@x.example", "Alice Smith"],
    ['"Alice Smith"', "alice@x.example", "Alice Smith"],
    ["'Alice'", "alice@x.example", "Alice"],
    ["Müller, Jürgen", "j@x.example", "Müller, Jürgen"],
    ["山田太郎", "t@x.example", "山田太郎"],
    ["alice", "alice@x.example", "alice"],
    ["", "alice@x.example", null],
    [null, "alice@x.example", null],
    ["alice@x.example", "alice@x.example", null],
    ["'alice@x.example'", "alice@x.example", null],
    // a name that shows another address is a spoofing trick, not a name
    ["support@bank.example", "evil@x.example", null],
    ["Bank Support (support@bank.example)", "evil@x.example", null],
    ["---", "a@x.example", null],
    ["Alice\u202eevil", "a@x.example", "Alice evil"],
    ["Line\r\nBreak", "a@x.example", "Line Break"],
  ])("(%j, %j) → %j", (name, address, expected) => {
    expect(decideDisplayName(name, address)).toBe(expected);
  });

  it("caps the length", () => {
    expect(decideDisplayName("A".repeat(500), "a@x.example")).toHaveLength(200);
  });

  it("looks at the first 1,000 characters only: a huge name costs no more than a long one", () => {
    // Each took seconds (the address test and the quote loop are quadratic): 100,000
    // characters ~8 s, on the event loop, twice per message.
    const cases = [
      "=".repeat(100_000),
      `${'"'.repeat(50_000)}Bob${'"'.repeat(50_000)}`,
      `N${"a".repeat(100_000)}`,
    ];
    for (const name of cases) {
      const started = performance.now();
      decideDisplayName(name, "a@x.example");
      expect(performance.now() - started).toBeLessThan(250);
    }
    expect(decideDisplayName(`${"B".repeat(300)}${" x".repeat(50_000)}`, "a@x.example")).toBe(
      "B".repeat(200),
    );
    expect(decideDisplayName(`Bank ${"x".repeat(900)} support@bank.example`, "evil@x.example")).toBeNull();
  });
});

describe("senderContact", () => {
  it("uses From, normalised", () => {
    expect(senderContact({ address: "Alice@Example.com", name: "Alice" })).toEqual({
      email: "alice@example.com",
      displayName: "Alice",
    });
  });

  it("is null without a usable From", () => {
    expect(senderContact(null)).toBeNull();
    expect(senderContact({ address: "not-an-address", name: "X" })).toBeNull();
  });
});
