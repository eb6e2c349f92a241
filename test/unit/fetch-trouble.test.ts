import { describe, expect, it } from "vitest";
import { FetchTrouble } from "../../src/connectors/fetch-trouble.js";

describe("FetchTrouble", () => {
  const error = Object.assign(new Error("Command failed"), { responseText: "cannot convert", code: "NO" });

  it("after a failed batch, fetches its UIDs one at a time; later UIDs in batches again", () => {
    const t = new FetchTrouble();
    t.validity(7);
    expect(t.batchSize(1, 50)).toBe(50);
    t.failed([1, 2, 3, 4], error);
    expect([1, 4].map((u) => t.batchSize(u, 50))).toEqual([1, 1]);
    expect(t.batchSize(5, 50)).toBe(50);
    // A batch's failure counts against no single UID.
    expect(t.poisoned(1)).toBeNull();
  });

  it("passes a UID over after three failures of it alone in a row, with the server's words; a success starts the count again", () => {
    const t = new FetchTrouble();
    t.validity(7);
    t.failed([9], error);
    t.failed([9], error);
    expect(t.poisoned(9)).toBeNull();
    t.fetched([9]);
    t.failed([9], error);
    t.failed([9], error);
    expect(t.poisoned(9)).toBeNull();
    t.failed([9], error);
    expect(t.poisoned(9)).toBe("the IMAP server failed to deliver it 3 times in a row: cannot convert (NO)");
    t.passed(9);
    expect(t.poisoned(9)).toBeNull();
  });

  it("forgets everything under a new UIDVALIDITY (the old UIDs mean nothing)", () => {
    const t = new FetchTrouble();
    t.validity(7);
    for (let i = 0; i < 3; i++) t.failed([2], error);
    t.failed([1, 2, 3], error);
    t.validity(7);
    expect(t.poisoned(2)).not.toBeNull();
    t.validity(8);
    expect(t.poisoned(2)).toBeNull();
    expect(t.batchSize(2, 50)).toBe(50);
  });
});
