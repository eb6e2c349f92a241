import { sanitizeContentHtml } from "./html.js";

/**
 * Where a customer's mail client put its quote of earlier mail, so a reply can quote
 * what the customer wrote without the copy of the conversation their client appended
 * (which would otherwise be quoted again in every round: each inbound mail carries our
 * previous reply whole, and our reply quotes that mail whole, doubling the size).
 *
 * Conservative on purpose: a cut is made only when the quote is the trailing part of
 * the message and is introduced the way a known client introduces it; text after a
 * quote (bottom-posting, interleaved answers) means no cut. When in doubt the message is
 * quoted whole. A wrong cut shortens only the quoted history of a reply — the stored
 * message is never changed.
 *
 * Recognised:
 * - text: an attribution line ("On … wrote:", "Am … schrieb …:", "Le … a écrit :", a
 *   few more languages, or a bare "… wrote:" that names an address or a date; up to
 *   three lines as Gmail wraps it), then only `>` lines and blank lines to the end; or
 *   the attribution as the first `>` line (Apple Mail);
 * - text: Outlook's separator (a line of underscores, "-----Original Message-----",
 *   "-----Ursprüngliche Nachricht-----" …) followed by a From/Sent header block, or such
 *   a header block (From:, Sent:, …, Subject:) on its own after a blank line;
 * - sanitised HTML (class and id are gone, so no `gmail_quote`): a `<blockquote>` that
 *   holds all text to the end, with the attribution just before it (Gmail, Thunderbird)
 *   or at its start (Apple Mail); Outlook's `<hr>` or `border-top` block followed by a
 *   From/Sent header block.
 */

// Languages of the attributions the big clients write (Gmail, Apple Mail, Thunderbird,
// Outlook for Mac): an opener with date and sender, or the bare "Name wrote:".
const OPENER_ATTRIBUTION_RES = [
  /^On\s.+\swrote:$/i,
  /^Am\s.+\sschrieb\s.+:$/i,
  /^Am\s.+\sschrieb:$/i,
  /^Le\s.+\sa\sécrit\s?:$/i,
  /^El\s.+\sescribió:$/i,
  /^Il\s.+\sha\sscritto:$/i,
  /^Op\s.+\sschreef\s.+:$/i,
  /^Em\s.+\sescreveu:$/i,
];
const BARE_ATTRIBUTION_RES = [
  /^.+\swrote:$/i,
  /^.+\sschrieb:$/i,
  /^.+\sa\sécrit\s?:$/i,
  /^.+\sescribió:$/i,
  /^.+\sha\sscritto:$/i,
  /^.+\sschreef:$/i,
  /^.+\sescreveu:$/i,
];
const OPENER_RE = /^(?:On|Am|Le|El|Il|Op|Em)\s/i;
// Longer than any attribution: a date, a name and an address.
const MAX_ATTRIBUTION = 400;

// No-break spaces: French puts one before the colon, clients put them around dates.
function squash(line: string): string {
  return line.replace(/[\s\u00a0\u202f]+/g, " ").trim();
}

function matchesAny(res: readonly RegExp[], line: string): boolean {
  return line.length <= MAX_ATTRIBUTION && res.some((re) => re.test(line));
}

/** True for an attribution with an opener ("On … wrote:"), the form wrapped lines must have. */
function isOpenerAttribution(line: string): boolean {
  return matchesAny(OPENER_ATTRIBUTION_RES, squash(line));
}

// "My colleague wrote:" above a quote is the customer's own text; a client's bare
// attribution names an address or a date ("Carla <carla@…> wrote:", "02.03.26, Carla wrote:").
function isBareAttribution(line: string): boolean {
  const squashed = squash(line);
  return /[@\d]/.test(squashed) && matchesAny(BARE_ATTRIBUTION_RES, squashed);
}

function isBlank(line: string): boolean {
  return squash(line) === "";
}

/**
 * How many of `lines` (read from `at` in direction `dir`) form an attribution, or 0.
 * A one-line attribution with an opener first, then two or three lines that start with
 * an opener (Gmail wraps at 78 characters, often inside the address — the second line
 * alone, "support@acme.example> wrote:", would pass the bare form), then one bare line.
 */
function attributionLines(lines: readonly string[], at: number, dir: 1 | -1): number {
  const take = (k: number): string[] | null => {
    const out: string[] = [];
    for (let i = 0; i < k; i++) {
      const line = lines[at + dir * i];
      if (line === undefined || isBlank(line)) return null;
      out.push(line);
    }
    return dir === 1 ? out : out.reverse();
  };
  const one = take(1);
  if (!one) return 0;
  if (isOpenerAttribution(one[0] as string)) return 1;
  for (const k of [2, 3]) {
    const several = take(k);
    if (several && OPENER_RE.test(several[0] as string) && isOpenerAttribution(several.join(" "))) return k;
  }
  return isBareAttribution(one[0] as string) ? 1 : 0;
}

/**
 * The line where a trailing `>` quote starts (its attribution included), or null. The
 * quote is the run of `>` and blank lines at the end; its attribution is the line(s)
 * just above it or, as Apple Mail writes it, its first quoted line(s).
 */
function trailingQuoteCut(lines: readonly string[]): number | null {
  let end = lines.length;
  while (end > 0 && isBlank(lines[end - 1] as string)) end--;
  let start = end;
  while (start > 0 && ((lines[start - 1] as string).startsWith(">") || isBlank(lines[start - 1] as string)))
    start--;
  if (start === end) return null;
  const above = attributionLines(lines, start - 1, -1);
  if (above > 0) return start - above;
  let first = start;
  while (isBlank(lines[first] as string)) first++;
  const unquoted = lines.slice(first, first + 3).map((l) => l.replace(/^> ?/, ""));
  return attributionLines(unquoted, 0, 1) > 0 ? start : null;
}

const SEPARATOR_RE =
  /^\s*(?:_{20,}|-{3,}\s*(?:Original Message|Ursprüngliche Nachricht|Originalnachricht|Message d'origine|Mensaje original|Messaggio originale|Oorspronkelijk bericht)\s*-{3,})\s*$/i;
// Header labels as Outlook writes them (bold in HTML, which Gmail's text shows as *From:*).
const FROM_LABEL_RE = /^\*?(?:From|Von|De|Van|Da)\*?:\*?\s*\S/i;
const DATE_LABEL_RE = /^\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado|Fecha|Inviato|Data|Verzonden)\*?:/i;
const SENT_LABEL_RE = /^\*?(?:Sent|Gesendet|Envoyé|Enviado|Inviato|Verzonden)\*?:/i;
const SUBJECT_LABEL_RE = /^\*?(?:Subject|Betreff|Objet|Asunto|Oggetto|Onderwerp)\*?:/i;

/**
 * True when a From/Sent header block starts at `lines[at]`: From first, then a date
 * line among the next lines of the block. Without a separator above it (`strict`) the
 * block must look like Outlook's own: a Sent line and a Subject line.
 */
function isHeaderBlock(
  lines: readonly string[],
  at: number,
  strict: boolean,
  subject: string | undefined,
): boolean {
  if (!FROM_LABEL_RE.test(squash(lines[at] ?? ""))) return false;
  const block: string[] = [];
  for (let i = at + 1; i < lines.length && block.length < 6 && !isBlank(lines[i] as string); i++)
    block.push(squash(lines[i] as string));
  // A header block is the quote of this conversation only when it names its subject: a
  // pasted or forwarded mail (a courier's notice) has another, and the customer's own
  // text may follow it.
  if (subject !== undefined) {
    const line = block.find((l) => SUBJECT_LABEL_RE.test(l));
    if (!line || !sameThread(line.replace(SUBJECT_LABEL_RE, ""), subject)) return false;
  }
  if (!strict) return block.some((l) => DATE_LABEL_RE.test(l));
  return block.some((l) => SENT_LABEL_RE.test(l)) && block.some((l) => SUBJECT_LABEL_RE.test(l));
}

const REPLY_PREFIX_RE = /^(?:re|aw|wg|fw|fwd|sv|vs|antw|tr|rv|r|ref|réf|rif|odp|vl)\s*(?:\[\d+\])?\s*:\s*/i;

/** A subject without reply/forward prefixes, ticket tokens, case and spacing. */
function threadSubject(subject: string): string {
  let s = squash(subject.toLowerCase().replace(/[[{]#?\d+[\]}]/g, " ")).replace(/^\*+\s*/, "");
  for (let next = s.replace(REPLY_PREFIX_RE, ""); next !== s; next = s.replace(REPLY_PREFIX_RE, "")) s = next;
  return squash(s);
}

/** Whether a quoted header's subject is this message's (Outlook may cut a long one short). */
function sameThread(quoted: string, subject: string): boolean {
  const a = threadSubject(quoted);
  const b = threadSubject(subject);
  if (a === "" || b === "") return false;
  return a === b || (a.length >= 20 && b.startsWith(a));
}

/** The line where Outlook's quote starts (separator or header block), or null. */
function outlookCut(lines: readonly string[], subject: string | undefined): number | null {
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (SEPARATOR_RE.test(line)) {
      let j = i + 1;
      while (j < lines.length && j <= i + 2 && isBlank(lines[j] as string)) j++;
      if (isHeaderBlock(lines, j, false, subject)) return i;
    } else if ((i === 0 || isBlank(lines[i - 1] as string)) && isHeaderBlock(lines, i, true, subject)) {
      return i;
    }
  }
  return null;
}

/**
 * Plain text without the quote the customer's client appended, or null when there is
 * no recognised trailing quote or nothing of the customer's own would be left.
 */
export function withoutClientQuoteText(text: string, subject?: string): string | null {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const cuts = [trailingQuoteCut(lines), outlookCut(lines, subject)]
    .filter((c): c is number => c !== null)
    .sort((a, b) => a - b);
  for (const cut of cuts) {
    const kept = lines.slice(0, cut).join("\n").trimEnd();
    if (!isBlank(kept)) return kept;
  }
  return null;
}

// ---------------------------------------------------------------------------
// HTML

interface Token {
  kind: "open" | "close" | "void" | "text";
  /** Lower-case tag name; "" for text. */
  name: string;
  start: number;
  end: number;
}

// On sanitised HTML `<` and `>` in text and attribute values are escaped and there are
// no comments, so every `<` starts a tag and the next `>` ends it.
const TAG_RE = /<(\/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*>/g;
const VOID_TAGS = new Set(["br", "hr", "img", "wbr", "col", "area", "input"]);
// Elements that keep a line's text together; anything else ends the attribution line.
const INLINE_TAGS = new Set([
  "a",
  "abbr",
  "b",
  "big",
  "cite",
  "code",
  "em",
  "font",
  "i",
  "kbd",
  "mark",
  "q",
  "s",
  "samp",
  "small",
  "span",
  "strike",
  "strong",
  "sub",
  "sup",
  "time",
  "tt",
  "u",
  "var",
]);
// Tags whose boundaries are line breaks in the text of a block.
const LINE_BREAK_TAGS = new Set([
  "br",
  "p",
  "div",
  "tr",
  "li",
  "blockquote",
  "hr",
  "table",
  "h1",
  "h2",
  "h3",
]);

function tokenize(html: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  TAG_RE.lastIndex = 0;
  for (let m = TAG_RE.exec(html); m; m = TAG_RE.exec(html)) {
    if (m.index > at) tokens.push({ kind: "text", name: "", start: at, end: m.index });
    const name = (m[2] as string).toLowerCase();
    const kind = m[1] ? "close" : VOID_TAGS.has(name) ? "void" : "open";
    tokens.push({ kind, name, start: m.index, end: TAG_RE.lastIndex });
    at = TAG_RE.lastIndex;
  }
  if (at < html.length) tokens.push({ kind: "text", name: "", start: at, end: html.length });
  return tokens;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };

function decode(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, ref: string) => {
    if (ref[0] === "#") {
      const code =
        ref[1] === "x" || ref[1] === "X" ? Number.parseInt(ref.slice(2), 16) : Number(ref.slice(1));
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[ref.toLowerCase()] ?? whole;
  });
}

function textOf(html: string, t: Token): string {
  return decode(html.slice(t.start, t.end));
}

function significant(html: string, t: Token): boolean {
  return t.kind === "text" ? !isBlank(textOf(html, t)) : t.name === "img";
}

/** Text of tokens [from, to) with line breaks at block boundaries. */
function linesOf(html: string, tokens: readonly Token[], from: number, to: number): string[] {
  let out = "";
  for (let i = from; i < to; i++) {
    const t = tokens[i] as Token;
    out += t.kind === "text" ? textOf(html, t) : LINE_BREAK_TAGS.has(t.name) ? "\n" : "";
  }
  return out.split("\n").filter((l) => !isBlank(l));
}

/**
 * The run of text and inline tokens around the first significant token met going from
 * `at` in direction `dir` (skipping tags and white space), as [first, last] indexes.
 */
function lineRun(html: string, tokens: readonly Token[], at: number, dir: 1 | -1): [number, number] | null {
  let i = at;
  while (i >= 0 && i < tokens.length && !significant(html, tokens[i] as Token)) {
    const t = tokens[i] as Token;
    // Only tags between the run and the quote, never another quote or a picture.
    if (t.name === "blockquote" && i !== at) return null;
    i += dir;
  }
  if (i < 0 || i >= tokens.length || (tokens[i] as Token).kind !== "text") return null;
  let j = i;
  for (;;) {
    const next = tokens[j + dir];
    if (!next || (next.kind !== "text" && !INLINE_TAGS.has(next.name))) break;
    j += dir;
  }
  return dir === 1 ? [i, j] : [j, i];
}

/**
 * The token where a trailing `<blockquote>` with its attribution starts, or null. The
 * quote is the outermost blockquote around the last text of the message; its
 * attribution is the line just before it (Gmail, Thunderbird) or its own first line
 * (Apple Mail).
 */
function trailingBlockquoteCut(html: string, tokens: readonly Token[]): number | null {
  const open: number[] = [];
  let quote: number | null = null;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as Token;
    if (t.name === "blockquote" && t.kind === "open") open.push(i);
    else if (t.name === "blockquote" && t.kind === "close") open.pop();
    else if (significant(html, t)) quote = open[0] ?? null;
  }
  if (quote === null) return null;
  const isAttribution = (run: [number, number] | null): run is [number, number] =>
    run !== null && attributionLines([linesOf(html, tokens, run[0], run[1] + 1).join(" ")], 0, 1) > 0;
  const before = lineRun(html, tokens, quote - 1, -1);
  if (isAttribution(before)) return before[0];
  const inside = lineRun(html, tokens, quote + 1, 1);
  return isAttribution(inside) ? quote : null;
}

const BORDER_TOP_RE = /\bstyle="[^"]*border-top:\s*(?:solid|dotted|dashed)/i;

/** The token of Outlook's separator (`<hr>` or border-top block) above a header block. */
function outlookHtmlCut(html: string, tokens: readonly Token[], subject: string | undefined): number | null {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as Token;
    const separator =
      (t.kind === "void" && t.name === "hr") ||
      (t.kind === "open" && t.name === "div" && BORDER_TOP_RE.test(html.slice(t.start, t.end)));
    if (!separator) continue;
    // The header block is a few short lines; 40 tokens hold it with its bold labels.
    const lines = linesOf(html, tokens, i + 1, Math.min(tokens.length, i + 41));
    if (isHeaderBlock(lines, 0, false, subject)) return i;
  }
  return null;
}

/**
 * Sanitised HTML without the quote the customer's client appended (sanitised again, so
 * elements left open by the cut are closed), or null when there is no recognised
 * trailing quote or nothing of the customer's own would be left.
 */
export function withoutClientQuoteHtml(html: string, subject?: string): string | null {
  const tokens = tokenize(html);
  const cuts = [trailingBlockquoteCut(html, tokens), outlookHtmlCut(html, tokens, subject)]
    .filter((c): c is number => c !== null)
    .sort((a, b) => a - b);
  for (let cut of cuts) {
    // Take the tags just above along (wrappers, line breaks): no text is lost with them.
    while (cut > 0 && !significant(html, tokens[cut - 1] as Token)) cut--;
    if (tokens.slice(0, cut).some((t) => significant(html, t))) {
      return sanitizeContentHtml(html.slice(0, (tokens[cut] as Token).start));
    }
  }
  return null;
}
