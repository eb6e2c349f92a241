import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { htmlParserLoad, htmlTooCostly } from "../../src/connectors/mime/html-cost.js";

// The bound on the HTML parser's work before HTML goes to sanitize-html and html-to-text
// (session 16). A probe found mail the old regular-expression scan of depth called flat
// while the parser nested it: 700 KB of `<b></x>` held a parser thread for its whole 10 s.

// The parser itself, the same copy sanitize-html uses: the truth the bound must agree with.
const { Parser } = createRequire(createRequire(import.meta.url).resolve("sanitize-html"))("htmlparser2") as {
  Parser: new (
    cbs: { onopentagname?: (name: string) => void },
    options: { decodeEntities: boolean },
  ) => { stack: string[]; write(s: string): void; end(): void };
};

/** The deepest the parser's stack of open elements gets while it reads `html`. */
function parserDepth(html: string): number {
  let max = 0;
  const parser = new Parser(
    {
      onopentagname: () => {
        max = Math.max(max, parser.stack.length);
      },
    },
    { decodeEntities: true },
  );
  parser.write(html);
  parser.end();
  return max;
}

/** A small seeded generator (mulberry32), so a failure can be replayed. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  "<div>",
  "</div>",
  "<b>",
  "</b>",
  "<B>",
  "</x>",
  "<b/>",
  "<p>",
  "</p>",
  "<li>",
  "<td>",
  "<tr>",
  "<thead>",
  "<tbody>",
  "<colgroup>",
  "<option>",
  "<select>",
  "<dd>",
  "<dt>",
  "<br>",
  "</br>",
  "<img src=x>",
  "<svg>",
  "</svg>",
  "<circle/>",
  "<math>",
  "<mi>",
  "</mi>",
  "</math>",
  "<title>",
  "</title>",
  '<a title="></a>">',
  "<a title='<b>'>",
  "</a>",
  "<style>",
  "</b></style>",
  "<script>",
  "</script>",
  "<!-- </div> -->",
  "<![CDATA[</b>]]>",
  "<textarea>",
  "</textarea>",
  "<span\n>",
  "</span >",
  "<h1>",
  "<table>",
  "</table>",
  "text",
  "&lt;",
  "<",
  ">",
  "<b:x>",
  "</b:x>",
  "<div/>",
  "<input>",
  "<tfoot>",
];

const DEFAULT = 100_000_000;

describe("htmlParserLoad keeps the parser's stack", () => {
  it("on 400 random documents, to the parser's own deepest stack", () => {
    const next = rng(16);
    let deepest = 0;
    for (let n = 0; n < 400; n++) {
      const length = 20 + Math.floor(next() * 400);
      const html = Array.from({ length }, () => PIECES[Math.floor(next() * PIECES.length)]).join("");
      const depth = parserDepth(html);
      deepest = Math.max(deepest, depth);
      expect(htmlParserLoad(html, Number.POSITIVE_INFINITY).depth, `doc ${n}: ${html}`).toBe(depth);
    }
    expect(deepest).toBeGreaterThan(30);
  });

  it.each([
    ["<b></x>", "an end tag that closes nothing"],
    ["<b/>", "a self-closing form of a non-void element"],
    ["<thead>", "an element the old scan took for flat"],
    ["<colgroup>", "another"],
    ['<b title="></b>">', "an end tag inside a quoted attribute"],
    ["<b><style></b></style>", "an end tag inside raw text"],
    ["<b><!-- </b> -->", "an end tag inside a comment"],
  ])("%s repeated (%s) nests, and 100,000 of them are over the budget, quickly", (piece) => {
    expect(parserDepth(piece.repeat(2000))).toBeGreaterThanOrEqual(2000);
    expect(htmlParserLoad(piece.repeat(2000), Number.POSITIVE_INFINITY).depth).toBeGreaterThanOrEqual(2000);
    const started = performance.now();
    expect(htmlTooCostly(`${piece.repeat(100_000)}x`, DEFAULT)).toBe(true);
    // It stops when the budget is spent (tens of ms; a generous ceiling for a busy machine).
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("an end tag that closes nothing costs a read of the whole stack", () => {
    // 9,000 open, then 200,000 stray end tags: 9,000 deep only, but 1.8 billion steps.
    expect(htmlTooCostly(`${"<b>".repeat(9000)}${"</x>".repeat(200_000)}`, DEFAULT)).toBe(true);
    expect(htmlTooCostly(`${"<b>".repeat(9000)}${"</x>".repeat(100)}`, DEFAULT)).toBe(false);
  });

  it.each([
    ["<p>cell", "paragraphs without end tags"],
    ["<tr><td>a<td>b", "table rows and cells without end tags"],
    ["<li>item", "list items"],
    ["<br>", "void elements"],
    ['<img src="x.png">', "images"],
    ["<div>x</div>", "closed elements"],
    ["<svg><path d='M0'/></svg>", "self-closed SVG elements"],
  ])("%s repeated (%s) stays flat and within the budget", (piece) => {
    const html = `<table>${piece.repeat(20_000)}</table>`;
    expect(htmlParserLoad(html, Number.POSITIVE_INFINITY).depth).toBeLessThanOrEqual(3);
    expect(htmlTooCostly(html, DEFAULT)).toBe(false);
  });

  it("a table of 3,000 rows whose cells leave a <p> open is deep, but within the budget", () => {
    const html = `<table>${"<tr><td><p>cell".repeat(3000)}</table>`;
    expect(parserDepth(html)).toBeGreaterThan(8000);
    expect(htmlTooCostly(html, DEFAULT)).toBe(false);
  });

  it("is not counted at all with fewer tags than the square root of the budget", () => {
    expect(htmlTooCostly("<div>".repeat(100), 10_000)).toBe(false);
    expect(htmlTooCostly("<div>".repeat(200), 10_000)).toBe(true);
  });
});
