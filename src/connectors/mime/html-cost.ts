import { createRequire } from "node:module";

/**
 * Whether the HTML parser under sanitize-html and html-to-text (htmlparser2) would spend
 * more than `maxSteps` steps on its stack of open elements reading `html`. That parser keeps
 * its open elements in an array it shifts at the front (each open tag moves the whole
 * stack) and looks an end tag up in it from the front (an end tag that closes nothing reads
 * the whole stack), so mail nested N deep costs it N²: 100,000 nested divs took 9 s, a parse
 * timeout; 40,000 `<b></x>` 1.4 s in each of the two parsers. Mail over the budget is not
 * given to them. 100,000,000 steps (`MIME_PARSER_DEFAULTS.maxHtmlParseSteps`) is ~50–100 ms
 * of each parser on this project's machines: 14,000 nested divs, or a table of 3,000 rows
 * whose cells hold a `<p>` without its end tag (the parser nests each row in the last `<p>`).
 *
 * The count runs htmlparser2's own tokenizer (linear: quotes in attributes, comments,
 * raw text of `<style>`/`<script>`/`<title>`/`<textarea>`, CDATA are read as the parser
 * reads them) and keeps the parser's stack the parser's way (`Parser.js`: void elements,
 * the open tags that close others, `<x/>` open except in SVG/MathML, an end tag closing up
 * to the nearest open element of its name and nothing when none is open), with a count
 * per name, so each of its own steps is O(1). It stops as soon as the budget is spent.
 *
 * Until session 16 this was a depth bound of 1,000 measured by a scan of tags with regular
 * expressions, which the parser did not agree with: `<b></x>` (an end tag that closes
 * nothing counted as one level less), `<b/>` (counted as closed), `<thead>`/`<colgroup>`
 * (counted as flat) and `>` inside quoted attributes all passed as flat while the parser
 * nested them: 700 KB of `<b></x>` held a parser thread for its whole 10 s limit.
 */
export function htmlTooCostly(html: string, maxSteps: number): boolean {
  // Each tag costs at most the stack's length, at most the number of tags so far: with
  // fewer than √maxSteps tags (10,000 for the default) there is nothing to count. Most
  // mail stops here, at native speed.
  const enough = Math.sqrt(maxSteps);
  let tags = 0;
  for (let at = html.indexOf("<"); at >= 0 && tags <= enough; at = html.indexOf("<", at + 1)) tags++;
  if (tags <= enough) return false;
  return htmlParserLoad(html, maxSteps).over;
}

/** The parser's deepest stack and its steps on it for `html`, up to `maxSteps` (then `over`). */
export function htmlParserLoad(
  html: string,
  maxSteps: number,
): { depth: number; steps: number; over: boolean } {
  const stack = new ParserStack(html, maxSteps);
  const tokenizer = new Tokenizer({ xmlMode: false, decodeEntities: true }, stack);
  try {
    tokenizer.write(html);
    tokenizer.end();
  } catch (e) {
    if (e !== OVER_BUDGET) throw e;
    return { depth: stack.depth, steps: stack.steps, over: true };
  }
  return { depth: stack.depth, steps: stack.steps, over: false };
}

// The htmlparser2 that sanitize-html parses with (it may have a copy of its own).
const { Tokenizer } = createRequire(createRequire(import.meta.url).resolve("sanitize-html"))(
  "htmlparser2",
) as {
  Tokenizer: new (
    options: { xmlMode: boolean; decodeEntities: boolean },
    callbacks: ParserStack,
  ) => { write(chunk: string): void; end(): void };
};

const OVER_BUDGET = Symbol("over budget");

// htmlparser2 10.1 Parser.js, htmlMode: which open tags close which open elements first.
const FORM = new Set(["input", "option", "optgroup", "select", "button", "datalist", "textarea"]);
const P = new Set(["p"]);
const SECTIONS = new Set(["thead", "tbody"]);
const DDT = new Set(["dd", "dt"]);
const RTP = new Set(["rt", "rp"]);
const OPEN_IMPLIES_CLOSE = new Map<string, Set<string>>([
  ["tr", new Set(["tr", "th", "td"])],
  ["th", new Set(["th"])],
  ["td", new Set(["thead", "th", "td"])],
  ["body", new Set(["head", "link", "script"])],
  ["li", new Set(["li"])],
  ...["p", "h1", "h2", "h3", "h4", "h5", "h6"].map((t) => [t, P] as [string, Set<string>]),
  ...["select", "input", "output", "button", "datalist", "textarea"].map(
    (t) => [t, FORM] as [string, Set<string>],
  ),
  ["option", new Set(["option"])],
  ["optgroup", new Set(["optgroup", "option"])],
  ["dd", DDT],
  ["dt", DDT],
  ...[
    "address",
    "article",
    "aside",
    "blockquote",
    "details",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "main",
    "nav",
    "ol",
    "pre",
    "section",
    "table",
    "ul",
  ].map((t) => [t, P] as [string, Set<string>]),
  ["rt", RTP],
  ["rp", RTP],
  ["tbody", SECTIONS],
  ["tfoot", SECTIONS],
]);
const VOID = new Set([
  "area",
  "base",
  "basefont",
  "br",
  "col",
  "command",
  "embed",
  "frame",
  "hr",
  "img",
  "input",
  "isindex",
  "keygen",
  "link",
  "meta",
  "param",
  "source",
  "track",
  "wbr",
]);
const FOREIGN = new Set(["math", "svg"]);
const INTEGRATION = new Set([
  "mi",
  "mo",
  "mn",
  "ms",
  "mtext",
  "annotation-xml",
  "foreignobject",
  "desc",
  "title",
]);

/**
 * The parser's stack of open elements, as tokenizer callbacks, with the steps the parser
 * takes on it (an open tag: the stack's length; an end tag: the elements it reads, up to the
 * one it closes or all of them); throws OVER_BUDGET past `maxSteps`.
 */
class ParserStack {
  private readonly stack: string[] = [];
  private readonly open = new Map<string, number>();
  /** Whether `<x/>` closes itself here: inside SVG or MathML. The parser starts with [false]. */
  private readonly foreign: boolean[] = [false];
  private tagname = "";
  depth = 0;
  steps = 0;

  constructor(
    private readonly html: string,
    private readonly maxSteps: number,
  ) {}

  private spend(steps: number) {
    this.steps += steps;
    if (this.steps > this.maxSteps) throw OVER_BUDGET;
  }

  private push(name: string) {
    this.spend(this.stack.length);
    this.stack.push(name);
    this.open.set(name, (this.open.get(name) ?? 0) + 1);
    if (this.stack.length > this.depth) this.depth = this.stack.length;
  }

  private pop(): string {
    const name = this.stack.pop()!;
    this.open.set(name, this.open.get(name)! - 1);
    return name;
  }

  private emitOpenTag(name: string) {
    this.tagname = name;
    const implied = OPEN_IMPLIES_CLOSE.get(name);
    if (implied) while (this.stack.length > 0 && implied.has(this.stack.at(-1)!)) this.pop();
    if (VOID.has(name)) return;
    this.push(name);
    if (FOREIGN.has(name)) this.foreign.push(true);
    else if (INTEGRATION.has(name)) this.foreign.push(false);
  }

  private closeCurrentTag() {
    if (this.stack.at(-1) === this.tagname) this.pop();
    this.tagname = "";
  }

  onopentagname(start: number, end: number) {
    this.emitOpenTag(this.html.slice(start, end).toLowerCase());
  }
  onopentagend() {
    this.tagname = "";
  }
  onselfclosingtag() {
    if (this.foreign.at(-1)) this.closeCurrentTag();
    else this.tagname = "";
  }
  onclosetag(start: number, end: number) {
    const name = this.html.slice(start, end).toLowerCase();
    if (FOREIGN.has(name) || INTEGRATION.has(name)) this.foreign.pop();
    if (VOID.has(name)) return;
    if ((this.open.get(name) ?? 0) > 0) {
      // Up to and including the nearest open element of that name.
      const before = this.stack.length;
      while (this.pop() !== name) {}
      this.spend(before - this.stack.length);
    } else if (name === "p") {
      // The parser opens and closes an implied <p>: it may close open <p>s above (none here).
      this.spend(this.stack.length);
      this.emitOpenTag("p");
      this.closeCurrentTag();
    } else {
      this.spend(this.stack.length);
    }
  }
  onattribdata() {}
  onattribentity() {}
  onattribend() {}
  onattribname() {}
  oncdata() {}
  oncomment() {}
  ondeclaration() {}
  onend() {}
  onprocessinginstruction() {}
  ontext() {}
  ontextentity() {}
}
