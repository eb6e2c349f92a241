import { isUtf8 } from "node:buffer";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { iconv } from "../../src/connectors/mime/headline.js";
import {
  charsetUndeclared,
  htmlMetaCharset,
  Utf8Check,
  windows1252,
  windows1252Bytes,
} from "../../src/connectors/mime/undeclared-charset.js";

describe("htmlMetaCharset (HTML prescan of the first 1024 bytes)", () => {
  const of = (html: string) => htmlMetaCharset(Buffer.from(html, "latin1"));

  it.each([
    ['<meta charset="windows-1252">', "windows-1252"],
    ["<META CHARSET=ISO-8859-15>", "iso-8859-15"],
    ["<meta charset='koi8-r'/>", "koi8-r"],
    ['<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-2">', "iso-8859-2"],
    ["<meta content='text/html; charset=\"shift_jis\"' http-equiv=content-type>", "shift_jis"],
    // UTF-16 in a meta is read as UTF-8 (the bytes got this far as ASCII-compatible).
    ['<meta charset="utf-16le">', "utf-8"],
    ['<meta charset="x-user-defined">', "windows-1252"],
    ['<html><head><title>a > b</title><meta charset="cp1251"></head>', "cp1251"],
    ['<p title="<meta charset=cp1250>"><meta charset="latin1">', "latin1"],
  ])("%s → %s", (html, expected) => {
    expect(of(html)).toBe(expected);
  });

  it.each([
    ["no meta", "<html><body>Gr\xfc\xdfe</body></html>"],
    ["content without http-equiv", '<meta content="text/html; charset=iso-8859-2">'],
    ["a commented-out meta", '<!-- <meta charset="iso-8859-2"> --><p>x</p>'],
    ["an empty charset", '<meta charset="">'],
    ["a meta after the first 1024 bytes", `${" ".repeat(1024)}<meta charset="iso-8859-2">`],
    ["an unclosed comment", '<!-- <meta charset="iso-8859-2">'],
  ])("none for %s", (_, html) => {
    expect(of(html)).toBeNull();
  });
});

describe("Utf8Check", () => {
  it("says what isUtf8 says of all the bytes, however they are cut into chunks", () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc.string({ unit: "grapheme", maxLength: 20 }).map((s) => new Uint8Array(Buffer.from(s, "utf8"))),
    );
    fc.assert(
      fc.property(fc.array(bytes, { maxLength: 8 }), (pieces) => {
        const check = new Utf8Check();
        for (const p of pieces) check.feed(Buffer.from(p));
        expect(check.end()).toBe(isUtf8(Buffer.concat(pieces)));
      }),
      { numRuns: 2000 },
    );
    // Every cut of one 4-byte and one 3-byte sequence; and a sequence left unfinished.
    const whole = Buffer.from("a😀€b", "utf8");
    for (let i = 0; i <= whole.length; i++) {
      for (let j = i; j <= whole.length; j++) {
        const check = new Utf8Check();
        for (const c of [whole.subarray(0, i), whole.subarray(i, j), whole.subarray(j)]) check.feed(c);
        expect(check.end()).toBe(true);
      }
    }
    const cut = new Utf8Check();
    cut.feed(whole.subarray(0, 3));
    expect(cut.end()).toBe(false);
  });
});

describe("windows1252 / windows1252Bytes", () => {
  it("decode as iconv-lite's windows-1252 does (every byte; random text)", () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(windows1252(all)).toBe(iconv.decode(all, "windows-1252"));
    expect(windows1252Bytes(all).toString("utf8")).toBe(iconv.decode(all, "windows-1252"));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (a) => {
        const b = Buffer.from(a);
        expect(windows1252Bytes(b).toString("utf8")).toBe(iconv.decode(b, "windows-1252"));
      }),
    );
  });
});

describe("charsetUndeclared", () => {
  it.each([
    [false, true],
    ["", true],
    ["us-ascii", true],
    ["US_ASCII", true],
    ["ascii", true],
    ["utf-8", false],
    ["iso-8859-1", false],
    ["windows-1252", false],
  ] as const)("%j → %j", (charset, expected) => {
    expect(charsetUndeclared(charset)).toBe(expected);
  });
});
