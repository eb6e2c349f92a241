import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { convert as htmlToText } from "html-to-text";
import type { MailParserOptions } from "mailparser";
import { MailParser } from "mailparser";
import addressparser from "nodemailer/lib/addressparser";
import type {
  DeliveryStatus,
  HeaderOfInterest,
  MailAddress,
  MailAttachment,
  ParsedMail,
  ParseOutcome,
} from "../../engine/ingest/parsed-mail.js";
import {
  AUTHORED_FIELDS,
  extractMessageIds,
  HEADERS_OF_INTEREST,
  normalizeMessageId,
} from "../../engine/ingest/parsed-mail.js";
import { normaliseContentId, sanitizeHtml } from "../../engine/ingest/sanitize.js";
import { mediaTypeOrOctetStream } from "../../engine/media-type.js";
import { stripComments } from "../../engine/text.js";
import { messageIdOfHeaderBlock, parseDeliveryStatus } from "./delivery-status.js";
import { decodeWords, iconv, libmime } from "./headline.js";
import { htmlTooCostly } from "./html-cost.js";
import {
  charsetUndeclared,
  FALLBACK_CHARSET,
  undeclaredDecoder,
  undeclaredMark,
  utf8OrFallback,
  windows1252,
} from "./undeclared-charset.js";

/**
 * Raw RFC 5322 bytes → `ParsedMail`, with mailparser. Runs inside the parse worker
 * (see parse-worker.ts); exported so it can also be exercised in-process by tests.
 * Every irregularity becomes a warning; only limits and hard parser failures reject.
 */

export interface MimeLimits {
  /** More MIME nodes than this rejects the message as "too_many_parts". */
  maxParts: number;
  /** A header block (top-level or any part's) larger than this rejects as "header_too_large". */
  maxHeaderBytes: number;
  /** Also run `sanitizeHtml` on the HTML body (in the worker, off the main thread). */
  sanitize: boolean;
  /**
   * HTML longer than this, not counting data: URI payloads (`withoutDataPayloads`), is not
   * sanitised (null + warning) nor converted with html-to-text.
   */
  maxHtmlChars: number;
  /** HTML that would cost the HTML parser more steps than this (`htmlTooCostly`) is treated as too large. */
  maxHtmlParseSteps: number;
}

interface MpAddress {
  address?: string;
  name?: string;
  group?: MpAddress[];
}
interface MpAddressObject {
  value: MpAddress[];
  text?: string;
}
interface MpAttachment {
  type: "attachment";
  content: Readable | Buffer;
  contentType: string;
  contentDisposition?: string;
  filename?: string;
  cid?: string;
  related?: boolean;
  checksum?: string;
  size?: number;
  release: (() => void) | null;
}
interface MpText {
  type: "text";
  text?: string;
  html?: string;
}
interface HeaderLine {
  key: string;
  line: string;
}

interface MpResult {
  headers: Map<string, unknown>;
  headerLines: readonly HeaderLine[];
  text: string;
  html: string | null;
  attachments: MpAttachment[];
  /** Parse warnings of text parts read as another charset than UTF-8 (undeclared-charset.ts). */
  charsetNotes: string[];
}

/** A node of mailparser's tree, as far as the undeclared-charset hook reads and sets it. */
interface MpNode {
  contentType?: string | false;
  charset?: string | false;
  isAttachment?: boolean;
}

/**
 * mailparser 3.9 internals `MailParserRun` hooks into, on its own instance only: the node
 * factory (to give a text part without a charset one of ours), the charset decoder (to
 * decode it) and the header processing (for raw 8-bit fields that are not UTF-8). Without
 * them (another mailparser) the run parses as mailparser alone does, and the tests of
 * undeclared charsets in mime-parse.test.ts fail.
 */
interface MailParserInternals {
  createNode(node: unknown): MpNode;
  decoder: { decodeStream(charset: string): unknown };
  processHeaders(lines: HeaderLine[]): Map<string, unknown>;
}

class LimitError extends Error {
  constructor(
    readonly reason: "too_many_parts" | "header_too_large",
    message: string,
  ) {
    super(message);
  }
}

function runMailParser(raw: Buffer, limits: MimeLimits): Promise<MpResult> {
  return new Promise((resolve, reject) => {
    new MailParserRun(limits, resolve, reject).start(raw);
  });
}

/**
 * One mailparser run. Its event handlers are bound methods, not closures made per call:
 * a bound method keeps the prototype's function (and its optimised code) for every run,
 * where a per-call closure's code is dropped at each major GC of the parser thread and
 * compiled again.
 */
class MailParserRun {
  private readonly parser: MailParser;
  private readonly result: MpResult = {
    headers: new Map(),
    headerLines: [],
    text: "",
    html: null,
    attachments: [],
    charsetNotes: [],
  };
  private readonly internals: MailParserInternals | null;
  private settled = false;
  private reading = false;
  /** The attachment whose content stream is being read, with what it gave so far. */
  private current: { data: MpAttachment; stream: Readable; chunks: Buffer[]; length: number } | null = null;
  private readonly fail = this.onFail.bind(this);
  private readonly attachmentReadable = this.onAttachmentReadable.bind(this);
  private readonly attachmentEnd = this.onAttachmentEnd.bind(this);
  private readonly charsetNote = this.onCharsetNote.bind(this);

  constructor(
    limits: MimeLimits,
    private readonly resolve: (r: MpResult) => void,
    private readonly reject: (e: Error) => void,
  ) {
    const options: MailParserOptions & { maxHeadSize: number; maxChildNodes: number } = {
      // Keep message/delivery-status as a part we can read instead of merging it into text.
      keepDeliveryStatus: true,
      // cid: links stay as they are; sanitizeHtml lists them for the API to resolve.
      keepCidLinks: true,
      skipImageLinks: true,
      // We derive text from HTML ourselves, with a size cap (html-to-text is superlinear).
      skipHtmlToText: true,
      skipTextToHtml: true,
      skipTextLinks: true,
      checksumAlgo: "sha256",
      maxHeadSize: limits.maxHeaderBytes,
      maxChildNodes: limits.maxParts,
    };
    this.parser = new MailParser(options);
    this.internals = this.hookUndeclaredCharsets();
    this.parser.on("error", this.fail);
    this.parser.on("headers", this.onHeaders.bind(this));
    this.parser.on("readable", this.onReadable.bind(this));
    this.parser.on("end", this.onEnd.bind(this));
  }

  start(raw: Buffer): void {
    this.parser.end(raw);
  }

  /**
   * Text parts (text/plain, text/html, not attachments) that name no charset, or us-ascii,
   * get a charset of our own, which our decoder reads: mailparser would decode their bytes
   * as UTF-8, every Latin-1 byte a U+FFFD (undeclared-charset.ts). The originals are kept
   * on the instance and called as before for everything else.
   */
  private hookUndeclaredCharsets(): MailParserInternals | null {
    const p = this.parser as unknown as Partial<MailParserInternals>;
    const { createNode, decoder, processHeaders } = p;
    if (
      typeof createNode !== "function" ||
      typeof decoder?.decodeStream !== "function" ||
      typeof processHeaders !== "function"
    ) {
      return null;
    }
    const internals = { createNode, decoder, processHeaders };
    p.createNode = this.createNode.bind(this, internals);
    p.decoder = { decodeStream: this.decodeStream.bind(this, internals) };
    return internals;
  }

  private createNode(internals: MailParserInternals, node: unknown): MpNode {
    const made = internals.createNode.call(this.parser, node);
    const type = made.contentType;
    if ((type === "text/plain" || type === "text/html") && !made.isAttachment) {
      if (charsetUndeclared(made.charset)) made.charset = undeclaredMark(type === "text/html", made.charset);
    }
    return made;
  }

  private decodeStream(internals: MailParserInternals, charset: string): unknown {
    return undeclaredDecoder(charset, this.charsetNote) ?? internals.decoder.decodeStream(charset);
  }

  private onCharsetNote(warning: string): void {
    if (!this.result.charsetNotes.includes(warning)) this.result.charsetNotes.push(warning);
  }

  private onFail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.parser.destroy();
    const e = err instanceof Error ? err : new Error(String(err));
    if ((e as Error & { code?: string }).code === "EMAXLEN") {
      this.reject(
        new LimitError(/child nodes/i.test(e.message) ? "too_many_parts" : "header_too_large", e.message),
      );
    } else {
      this.reject(e);
    }
  }

  private onHeaders(headers: Map<string, unknown>): void {
    const lines = (this.parser as unknown as { headerLines: HeaderLine[] | false }).headerLines || [];
    this.result.headerLines = lines;
    // Raw 8-bit fields that are not UTF-8 (RFC 6532) are legacy bytes, which mailparser
    // read as UTF-8 (every byte a U+FFFD): its header processing again, on the fields read
    // as windows-1252. The raw lines stay as they are (ids, dates, the content hash).
    this.result.headers =
      this.internals && lines.some(notUtf8Line)
        ? this.internals.processHeaders.call(this.parser, lines.map(utf8Line))
        : headers;
  }

  private onReadable(): void {
    if (!this.reading) this.onReadNext();
  }

  private onReadNext(): void {
    for (;;) {
      this.reading = true;
      const data = this.parser.read() as MpAttachment | MpText | null;
      if (data === null) {
        this.reading = false;
        return;
      }
      if (data.type === "text") {
        this.result.text = data.text ?? "";
        this.result.html = data.html ?? null;
        continue;
      }
      this.result.attachments.push(data);
      const stream = data.content as Readable;
      this.current = { data, stream, chunks: [], length: 0 };
      stream.on("readable", this.attachmentReadable);
      stream.on("error", this.fail);
      stream.on("end", this.attachmentEnd);
      // The next part is read when this one's content has ended.
      return;
    }
  }

  private onAttachmentReadable(): void {
    const cur = this.current;
    if (!cur) return;
    let chunk: Buffer | null;
    // biome-ignore lint/suspicious/noAssignInExpressions: the stream read loop idiom
    while ((chunk = cur.stream.read() as Buffer | null) !== null) {
      cur.chunks.push(chunk);
      cur.length += chunk.length;
    }
  }

  private onAttachmentEnd(): void {
    const cur = this.current;
    if (!cur) return;
    this.current = null;
    cur.data.content = Buffer.concat(cur.chunks, cur.length);
    cur.data.release?.();
    this.onReadNext();
  }

  private onEnd(): void {
    if (this.settled) return;
    this.settled = true;
    this.resolve(this.result);
  }
}

// --- header helpers -----------------------------------------------------------------

/**
 * Field value of a raw header line: unfolded, 8-bit bytes read as UTF-8 (RFC 6532). For
 * identifiers, dates and the content hash, which stay as they were before legacy fields
 * were read as windows-1252 (`fieldText`): the same mail keeps its ids and hash.
 */
function fieldValue(line: HeaderLine): string {
  return unfoldedValue(Buffer.from(line.line, "binary").toString("utf8"));
}

/** Field value of a raw header line for display: as `fieldValue`, but not-UTF-8 bytes read as windows-1252. */
function fieldText(line: HeaderLine): string {
  return unfoldedValue(utf8OrFallback(Buffer.from(line.line, "binary")).text);
}

function unfoldedValue(field: string): string {
  const colon = field.indexOf(":");
  return (colon >= 0 ? field.slice(colon + 1) : "").replace(/\r?\n[ \t]*/g, " ").trim();
}

/** A raw header line (a binary string) with 8-bit bytes that are not UTF-8. */
function notUtf8Line(line: HeaderLine): boolean {
  return /[\x80-\xff]/.test(line.line) && !isUtf8(Buffer.from(line.line, "binary"));
}

/** The line with its bytes as UTF-8: read as windows-1252 when they are not UTF-8. */
function utf8Line(line: HeaderLine): HeaderLine {
  if (!notUtf8Line(line)) return line;
  const text = windows1252(Buffer.from(line.line, "binary"));
  return { key: line.key, line: Buffer.from(text, "utf8").toString("binary") };
}

/** Fields whose raw bytes stay read as UTF-8 (`fieldValue`): identifiers and the date. */
const RAW_UTF8_FIELDS = new Set(["message-id", "in-reply-to", "references", "date"]);

const ENCODED_WORD_RE = /=\?[^?\s]+\?[bq]\?[^?\s]*\?=/i;

function flattenAddresses(list: MpAddress[], out: MpAddress[] = []): MpAddress[] {
  for (const a of list) {
    if (a.group) flattenAddresses(a.group, out);
    else out.push(a);
  }
  return out;
}

function isMailbox(address: string | undefined): address is string {
  if (!address) return false;
  const at = address.lastIndexOf("@");
  // No whitespace or specials outside a quoted local part (RFC 5322 §3.4.1).
  const unquoted = address.replace(/^"(?:[^"\\]|\\.)*"@/, "x@");
  return at > 0 && at < address.length - 1 && !/[\s()<>,;:\\[\]"]/.test(unquoted);
}

function addressValues(headers: Map<string, unknown>, key: string): MpAddress[] | null {
  const v = headers.get(key);
  if (v === undefined) return null;
  const objs = (Array.isArray(v) ? v : [v]) as MpAddressObject[];
  const out: MpAddress[] = [];
  for (const o of objs) flattenAddresses(o?.value ?? [], out);
  return out;
}

function toMailAddresses(list: MpAddress[]): MailAddress[] {
  const out: MailAddress[] = [];
  for (const a of list) {
    if (isMailbox(a.address)) out.push({ address: a.address.trim(), name: (a.name ?? "").trim() });
  }
  return out;
}

function usableCount(list: MpAddress[] | null): number {
  let n = 0;
  for (const a of list ?? []) if (isMailbox(a.address)) n++;
  return n;
}

// RFC 5322 §4.5 obsolete syntax allows whitespace before the colon ("From  :").
function linesOf(lines: readonly HeaderLine[], key: string): HeaderLine[] {
  const out: HeaderLine[] = [];
  for (const l of lines) if (l.key.trim() === key) out.push(l);
  return out;
}

function hasLongLine(text: string): boolean {
  for (const l of text.split(/\r?\n/)) if (l.length > 998) return true;
  return false;
}

/** Tokens of a References field that are not `<msg-id>`. */
function badReferenceTokens(value: string): number {
  let bad = 0;
  for (const t of value.split(/\s+/)) if (t !== "" && !/^<[^<>\s]+>$/.test(t)) bad++;
  return bad;
}

/**
 * The mailboxes of an address field; unparseable entries become a warning. (Module-level
 * functions rather than closures in `parseRawMessage`: a per-call closure's optimised code
 * is dropped at every major GC of the parser thread and compiled again.)
 */
function addressesOf(
  mp: MpResult,
  lines: readonly HeaderLine[],
  key: string,
  warnings: string[],
): MailAddress[] {
  let values = addressValues(mp.headers, key);
  if (values === null && linesOf(lines, key).length === 0) return [];
  if (values === null || values.some(notMailbox)) {
    // RFC 5322 comments inside addresses (`pete(his account)@silly.test`) defeat the
    // parser; retry on the field with comments removed and keep the better result.
    const retry: MpAddress[] = [];
    for (const l of linesOf(lines, key)) {
      for (const a of flattenAddresses(addressparser(stripComments(fieldText(l))) as MpAddress[])) {
        retry.push({ address: a.address ?? "", name: decodeWords(a.name ?? "") });
      }
    }
    if (values === null || usableCount(retry) > usableCount(values)) {
      values = retry;
    }
  }
  const good = toMailAddresses(values);
  const bad = values.filter(notMailbox);
  const label = FIELD_LABEL[key] ?? key;
  if (bad.length > 0) {
    const sample = bad.map(addressLabel).join(", ").slice(0, 120);
    warnings.push(
      `${label}: ${bad.length} unparseable address(es)${sample ? `: ${JSON.stringify(sample)}` : ""}`,
    );
  }
  return good;
}

function notMailbox(a: MpAddress): boolean {
  return !isMailbox(a.address);
}

function addressLabel(a: MpAddress): string {
  return a.address || a.name || "";
}

const FIELD_LABEL: Record<string, string> = {
  from: "From",
  to: "To",
  cc: "Cc",
  "reply-to": "Reply-To",
};

// RFC 5322 date-time, tolerating what real mail gets wrong: missing weekday, comments,
// two-digit years, "UT"/"GMT+0100" zones. Date.parse already accepts most of it.
const MONTH_OR_ISO_RE = /\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\d{4}-\d{2}-\d{2}/i;

export function parseMailDate(value: string): Date | null {
  const noComments = stripComments(value).replace(/\s+/g, " ").trim();
  // What JavaScript's Date.parse makes of anything: "0" is 2000-01-01, a year 0000 is
  // 2000, a zone +9999 a shift of four days. A date names its month, a numeric zone is at
  // most ±14:59, and a four-digit year is the year it says.
  if (!MONTH_OR_ISO_RE.test(noComments)) return null;
  const zone = /(?:^|\s)[+-](\d{2})(\d{2})(?=\s|$)/.exec(noComments);
  if (zone && (Number(zone[1]) > 14 || Number(zone[2]) > 59)) return null;
  const year = /(?:^|[\s,-])(\d{4})(?=$|[\s,T-])/.exec(noComments)?.[1];
  const attempts = [
    value,
    noComments,
    // RFC 5322 §4.3 obsolete syntax allows whitespace around the colons of the time.
    noComments.replace(/\s*:\s*/g, ":"),
    noComments.replace(/\s*:\s*/g, ":").replace(/^[A-Za-z]{2,}\s*,?\s*/, ""),
  ];
  for (const a of attempts) {
    if (!a) continue;
    const t = Date.parse(a);
    if (!Number.isNaN(t)) {
      const d = new Date(t);
      // Years far outside the age of email are broken fields, not real send times. (A
      // zone can move the UTC year by one from the year written.)
      const y = d.getUTCFullYear();
      if (y >= 1900 && y < 2200 && (year === undefined || Math.abs(y - Number(year)) <= 1)) return d;
    }
  }
  return null;
}

/** Every `Content-Type` field anywhere in the message (top level and parts), unfolded. */
function contentTypeFields(rawLatin1: string): string[] {
  const out: string[] = [];
  for (const m of rawLatin1.matchAll(/^content-type[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)/gim)) {
    out.push((m[1] ?? "").replace(/\r?\n[ \t]*/g, " ").trim());
    if (out.length > 5000) break;
  }
  return out;
}

function param(field: string, name: string): string | null {
  const m = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, "i").exec(field);
  return m ? (m[1] ?? m[2] ?? "") : null;
}

function charsetKnown(charset: string): boolean {
  const c = charset.trim().replace(/^["']|["']$/g, "");
  if (/^(?:us-?ascii|ascii|utf-?8)$/i.test(c)) return true;
  // mailparser decodes ISO-2022-JP / JIS with encoding-japanese, not iconv-lite.
  if (/^(?:jis|iso-?2022-?jp)/i.test(c)) return true;
  try {
    return iconv.encodingExists(libmime.normalizeCharset(c));
  } catch {
    return false;
  }
}

/**
 * Text from HTML too large or too deep for html-to-text, by stripping tags. Linear in the
 * input: every pattern stops at the next "<" (an unclosed `<script` or tag made the regexes
 * this replaced quadratic).
 */
function crudeHtmlToText(html: string): string {
  return withoutRawTextElements(html)
    .replace(/<br\s*\/?>|<\/(?:p|div|tr|li|h\d)>/gi, "\n")
    .replace(/<[^<>]*>/g, " ")
    .replace(/&nbsp;/gi, " ")
    .replace(/&lt;/gi, "<")
    .replace(/&gt;/gi, ">")
    .replace(/&amp;/gi, "&")
    .replace(/[ \t]+/g, " ")
    .replace(/\n\s*\n\s*\n+/g, "\n\n")
    .trim();
}

/** `html` without the content of script and style elements (to their end tag, or the end). */
function withoutRawTextElements(html: string): string {
  const lower = html.toLowerCase();
  let out = "";
  let at = 0;
  const open = /<(script|style)\b/gi;
  for (let m = open.exec(html); m; m = open.exec(html)) {
    out += `${html.slice(at, m.index)} `;
    const end = lower.indexOf(`</${m[1]!.toLowerCase()}`, m.index);
    if (end < 0) return out;
    const close = lower.indexOf(">", end);
    at = close < 0 ? html.length : close + 1;
    open.lastIndex = at;
  }
  return out + html.slice(at);
}

/**
 * `html` without the base64 payloads of its data: URIs in attribute values (`<img
 * src="data:image/png;base64,…">`), for the size limit and the text conversion. A payload
 * is base64 characters (and, quoted, whitespace: mailers break it into lines), so it holds
 * no markup: the parser only copies it, at a cost linear in its length (28 MB: ~1 s to
 * sanitise), while `maxHtmlChars` guards against the markup that costs seconds per MB.
 * Until session 16 (2026-11-23) it counted, and a mail with a 1.6 MB pasted screenshot lost
 * its whole HTML body (the text alone was kept, the image nowhere).
 *
 * One pass. Whether a `;base64,` stands inside a start tag is tracked over the whole string
 * (a `<` before a letter opens one, the next `>` ends it; a `>` inside a quoted value ends
 * it early, which only counts a payload that could have been left out). The first version
 * looked for the tag's `<` within 256 characters: a screenshot whose `<img>` had longer
 * attributes before `src` was counted again, so was a second payload in one tag, and text
 * after "a < b" was taken for a tag (second re-probe). Each `;base64,` looks back at most
 * 256 characters for `=`, a quote and `data:<type>`.
 */
export function withoutDataPayloads(html: string): string {
  const marker = /;base64,/gi;
  const quotedRun = /[A-Za-z0-9+/=\s]*/y;
  const bareRun = /[A-Za-z0-9+/=]*/y;
  const tagStart = /<[A-Za-z]/g;
  let out = "";
  let at = 0;
  // The tag state up to `scanned`, with the next start tag and `>` found from there.
  let scanned = 0;
  let inTag = false;
  let nextStart = -2;
  let nextGt = -2;
  const advanceTo = (to: number) => {
    for (;;) {
      if (nextStart !== -1 && nextStart < scanned) {
        tagStart.lastIndex = scanned;
        nextStart = tagStart.exec(html)?.index ?? -1;
      }
      if (nextGt !== -1 && nextGt < scanned) nextGt = html.indexOf(">", scanned);
      const start = nextStart >= 0 && nextStart < to ? nextStart : -1;
      const gt = nextGt >= 0 && nextGt < to ? nextGt : -1;
      if (start < 0 && gt < 0) break;
      if (start >= 0 && (gt < 0 || start < gt)) {
        inTag = true;
        scanned = start + 1;
      } else {
        inTag = false;
        scanned = gt + 1;
      }
    }
    scanned = Math.max(scanned, to);
  };
  for (let m = marker.exec(html); m; m = marker.exec(html)) {
    advanceTo(m.index);
    if (!inTag) continue;
    const head = html.slice(Math.max(at, m.index - 256), m.index);
    // (Mixed-case "Data:" is left counted: rare, and lower-casing every window costs.)
    const d = Math.max(head.lastIndexOf("data:"), head.lastIndexOf("DATA:"));
    if (d < 0 || /[\s"'<>]/.test(head.slice(d + 5))) continue;
    // An attribute value: `=`, blanks, an optional quote, blanks, then the URI.
    let i = d - 1;
    while (i >= 0 && /\s/.test(head[i]!)) i--;
    const quoted = i >= 0 && (head[i] === '"' || head[i] === "'");
    if (quoted) i--;
    while (i >= 0 && /\s/.test(head[i]!)) i--;
    if (i < 0 || head[i] !== "=") continue;
    const run = quoted ? quotedRun : bareRun;
    run.lastIndex = marker.lastIndex;
    run.exec(html);
    out += html.slice(at, marker.lastIndex);
    at = run.lastIndex;
    marker.lastIndex = at;
    // The payload holds no "<" or ">": the tag goes on after it.
    scanned = Math.max(scanned, at);
  }
  return at === 0 ? html : out + html.slice(at);
}

/**
 * A file name as a name only: no directory part (`../../etc/passwd`, `C:\\x`), no
 * control or bidi-override characters (`invoice\u202Efdp.exe` shows as "invoiceexe.pdf"),
 * at most 255 characters with the extension kept. Null when nothing usable is left.
 */
export function safeFilename(name: string | null | undefined): string | null {
  if (!name) return null;
  let n = name
    .normalize("NFC")
    .replace(/[\u0000-\u001f\u007f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, "")
    .split(/[\\/]/)
    .pop()!
    .trim()
    .replace(/^\.+/, "");
  if (n.length > 255) {
    const dot = n.lastIndexOf(".");
    const ext = dot > 0 && n.length - dot <= 16 ? n.slice(dot) : "";
    n = n.slice(0, 255 - ext.length) + ext;
  }
  return n === "" ? null : n;
}

/**
 * SHA-256 of the authored fields (`AUTHORED_FIELDS`, unfolded, in their order) and the body
 * bytes: the same for every delivered copy of one mail (`ParsedMail.contentHash`).
 */
function authoredHash(lines: readonly HeaderLine[], raw: Buffer, headerEnd: number): string {
  const hash = createHash("sha256");
  for (const l of lines) {
    const key = l.key.trim();
    if (AUTHORED_FIELDS.has(key)) hash.update(`${key}:${fieldValue(l)}\n`);
  }
  hash.update("\n");
  // The body starts after the blank line ("\r\n\r\n" or "\n\n"; see headerBlockEnd).
  if (headerEnd >= 0) hash.update(raw.subarray(headerEnd + (raw[headerEnd] === 0x0d ? 4 : 2)));
  return hash.digest("hex");
}

/** End of the top-level header block: index of the blank line, or -1 without a body. */
function headerBlockEnd(raw: Buffer): number {
  const crlf = raw.indexOf("\r\n\r\n");
  const lf = raw.indexOf("\n\n");
  if (crlf < 0) return lf;
  if (lf < 0) return crlf;
  return Math.min(crlf, lf);
}

/** A header field's start (RFC 5322 §2.2 field-name, obsolete WSP before the colon allowed). */
const FIELD_START_RE = /^[\x21-\x39\x3b-\x7e]+[ \t]*:/;

/** Fields a delivering server puts in front of a message (RFC 5321 §4.4 and common practice). */
const TRACE_FIELDS = new Set([
  "return-path",
  "received",
  "delivered-to",
  "x-original-to",
  "envelope-to",
  "x-envelope-from",
  "x-envelope-to",
]);

/**
 * Where the body really begins in mail that has no header block of its own: its first line
 * is no header field, either at the very start or right after the trace fields a server
 * put in front of it ("Hi team," would otherwise be read as a broken field and lost, and
 * the text would start at the second paragraph). Null for anything else — in particular a
 * broken fold among the message's own fields, which mailparser reads as well as it can —
 * and when a header field still follows the stray line.
 */
function bodyInHeaderBlock(raw: Buffer, headerBytes: number): number | null {
  const text = raw.subarray(0, headerBytes).toString("latin1");
  let offset = 0;
  let firstStray: number | null = null;
  for (const line of text.split("\n")) {
    const start = offset;
    offset += line.length + 1;
    const content = line.endsWith("\r") ? line.slice(0, -1) : line;
    if (content === "") continue;
    const field = FIELD_START_RE.exec(content);
    if (field) {
      if (firstStray !== null) return null;
      const name = field[0].slice(0, -1).trim().toLowerCase();
      if (!TRACE_FIELDS.has(name)) return null; // the message's own header block
      continue;
    }
    if (/^[ \t]/.test(content) && start > 0 && firstStray === null) continue;
    if (firstStray === null) firstStray = start;
  }
  return firstStray;
}

// --- the parse ----------------------------------------------------------------------

function rejected(
  reason: Extract<ParseOutcome, { ok: false }>["reason"],
  detail: string,
  sizeBytes: number,
): ParseOutcome {
  return { ok: false, reason, detail, sizeBytes };
}

export async function parseRawMessage(
  input: Buffer,
  limits: MimeLimits,
  /** `ParseOptions.traceBytes`: leading bytes the content key of mail without a Message-ID skips. */
  traceBytes = 0,
): Promise<ParseOutcome> {
  const sizeBytes = input.length;
  const rawSha256 = createHash("sha256").update(input).digest("hex");
  const warnings: string[] = [];

  // Our own trace lines (SMTP) in front do not make an empty message a mail.
  const sent = traceBytes > 0 && traceBytes <= input.length ? input.subarray(traceBytes) : input;
  if (sent.length <= 4096 && /^\s*$/.test(sent.toString("latin1"))) {
    return rejected("unparseable", "empty message", sizeBytes);
  }
  let raw = input;
  // Line ends of bare CR only (classic Mac OS): mailparser takes the whole message for one
  // header line, and subject, sender and body are lost. In this parse only, CR is CRLF.
  if (!raw.includes(0x0a) && raw.includes(0x0d)) {
    raw = Buffer.from(raw.toString("latin1").replaceAll("\r", "\r\n"), "latin1");
    warnings.push("line ends are bare CR; read as CRLF");
  }
  // An mbox "From " separator line (RFC 4155) is not a header; mailparser would read
  // it as one and lose the real first field.
  if (/^From [^\s:]+(?:[ \t]|\r?\n)/.test(raw.subarray(0, 200).toString("latin1"))) {
    const nl = raw.indexOf("\n");
    raw = nl >= 0 ? raw.subarray(nl + 1) : Buffer.alloc(0);
    warnings.push("leading mbox 'From ' line ignored");
  }
  let headerEnd = headerBlockEnd(raw);
  let headerBytes = headerEnd < 0 ? raw.length : headerEnd;
  if (headerBytes > limits.maxHeaderBytes) {
    return rejected(
      "header_too_large",
      `header block of ${headerBytes} bytes exceeds ${limits.maxHeaderBytes}`,
      sizeBytes,
    );
  }
  const bodyAt = bodyInHeaderBlock(raw, headerBytes);
  if (bodyAt !== null) {
    // The blank line the sender left out goes in, with the line ending of the line before
    // it (in this parse only: the stored raw bytes stay as received).
    const eol = bodyAt >= 2 && raw[bodyAt - 2] === 0x0d ? "\r\n" : bodyAt === 0 ? "\r\n" : "\n";
    raw = Buffer.concat([raw.subarray(0, bodyAt), Buffer.from(eol), raw.subarray(bodyAt)]);
    // No header fields at all: there is no header block to end (and so no Message-ID for
    // the authored-content hash, nor a Content-Type to check the body against).
    headerEnd = bodyAt === 0 ? -1 : headerBlockEnd(raw);
    headerBytes = bodyAt;
    warnings.push(
      bodyAt === 0
        ? "no header block: the whole message is taken as its body"
        : "header block ends in lines that are no header fields: they are taken as the body",
    );
  } else if (headerEnd < 0) {
    warnings.push("no blank line after the header block: message has no body");
  }

  let mp: MpResult;
  try {
    mp = await runMailParser(raw, limits);
  } catch (err) {
    if (err instanceof LimitError) return rejected(err.reason, err.message, sizeBytes);
    return rejected("unparseable", err instanceof Error ? err.message : String(err), sizeBytes);
  }

  const lines = mp.headerLines;
  if (lines.length === 0) warnings.push("no header fields found");
  const legacyFields = new Set<string>();
  for (const l of lines) {
    const key = l.key.trim();
    if (!RAW_UTF8_FIELDS.has(key) && notUtf8Line(l)) legacyFields.add(key);
  }
  if (legacyFields.size > 0) {
    const names = [...legacyFields].slice(0, 10).join(", ");
    warnings.push(
      `header fields with 8-bit bytes that are not UTF-8 (${names}); read as ${FALLBACK_CHARSET}`,
    );
  }

  // Line-level irregularities in the top-level header block.
  const headerText = raw.subarray(0, headerBytes).toString("latin1");
  if (/(?<!\r)\n/.test(headerText)) warnings.push("bare LF line endings (RFC 5322 requires CRLF)");
  if (hasLongLine(headerText)) {
    warnings.push("header line longer than 998 characters (RFC 5322 §2.1.1)");
  }

  // Message-ID (RFC 5322 §3.6.4: SHOULD be present; our dedupe falls back to the hash)
  const midLines = linesOf(lines, "message-id");
  const messageId = midLines[0] ? normalizeMessageId(decodeWords(fieldValue(midLines[0]))) : null;
  if (midLines.length === 0) warnings.push("missing Message-ID");
  else if (!messageId) warnings.push("empty or unparseable Message-ID");
  if (midLines.length > 1) warnings.push(`${midLines.length} Message-ID fields; the first is used`);

  const irtLines = linesOf(lines, "in-reply-to");
  let inReplyTo: string | null = null;
  if (irtLines[0]) {
    const v = fieldValue(irtLines[0]);
    inReplyTo = extractMessageIds(v)[0] ?? null;
    if (!inReplyTo && v !== "") warnings.push("unparseable In-Reply-To");
  }

  const referenceSet = new Set<string>();
  for (const l of linesOf(lines, "references")) {
    const v = stripComments(fieldValue(l));
    for (const id of extractMessageIds(v)) referenceSet.add(id);
    const bad = badReferenceTokens(v);
    if (bad > 0) warnings.push(`References: ${bad} token(s) are not <msg-id>`);
  }
  let references = [...referenceSet];
  if (references.length > 100) {
    // The first id is the thread's root (RFC 5322 §3.6.4): kept, with the newest 99.
    warnings.push(`References has ${references.length} ids; only the first and the newest 99 are kept`);
    references = [references[0]!, ...references.slice(-99)];
  }

  // Addresses
  const fromLines = linesOf(lines, "from");
  const fromList = addressesOf(mp, lines, "from", warnings);
  if (fromLines.length === 0) warnings.push("missing From");
  else if (fromList.length === 0) warnings.push("From has no usable address");
  if (fromLines.length > 1) warnings.push(`${fromLines.length} From fields; the last is used`);
  if (fromList.length > 1) warnings.push(`From names ${fromList.length} mailboxes; the first is the sender`);
  const from = fromList[0] ?? null;
  const to = addressesOf(mp, lines, "to", warnings);
  const cc = addressesOf(mp, lines, "cc", warnings);
  const replyTo = addressesOf(mp, lines, "reply-to", warnings);

  // Subject
  const subjectValue = mp.headers.get("subject");
  let subject = typeof subjectValue === "string" ? subjectValue : "";
  if (ENCODED_WORD_RE.test(subject)) warnings.push("Subject contains an undecodable encoded-word (RFC 2047)");
  if (subject.includes("\ufffd")) warnings.push("Subject contains bytes invalid in its charset");
  subject = subject.replace(/[\r\n]+/g, " ");

  // Date: mailparser substitutes "now" for a bad date, which would make a backlog's
  // mail look fresh; read the field ourselves and keep null instead.
  const dateLines = linesOf(lines, "date");
  let date: Date | null = null;
  if (dateLines[0]) {
    const v = fieldValue(dateLines[0]);
    date = parseMailDate(v);
    if (!date) warnings.push(`unparseable Date: ${JSON.stringify(v.slice(0, 80))}`);
  } else {
    warnings.push("missing Date");
  }

  // Headers of interest, decoded (RFC 2047) and unfolded.
  const interest = new Set<string>(HEADERS_OF_INTEREST);
  const headers: Partial<Record<HeaderOfInterest, string[]>> = {};
  for (const l of lines) {
    if (!interest.has(l.key)) continue;
    const key = l.key as HeaderOfInterest;
    const list = headers[key] ?? [];
    list.push(decodeWords(fieldText(l)));
    headers[key] = list;
  }
  const receivedCount = linesOf(lines, "received").length;

  // Charsets: a cheap scan of every part's Content-Type field.
  const rawLatin1 = raw.toString("latin1");
  const seenCharsets = new Set<string>();
  for (const field of contentTypeFields(rawLatin1)) {
    const cs = param(field, "charset");
    if (cs && !seenCharsets.has(cs.toLowerCase())) {
      seenCharsets.add(cs.toLowerCase());
      if (!charsetKnown(cs)) warnings.push(`unknown charset ${JSON.stringify(cs)}: text left undecoded`);
    }
  }
  // Truncation shows at the top level: a cut message never closes its outer multipart.
  // (Inner Content-Type fields may sit in returned-header parts, so they are not checked.)
  const topContentType = headers["content-type"]?.[headers["content-type"].length - 1] ?? "";
  if (/^multipart\//i.test(topContentType)) {
    const boundary = param(topContentType, "boundary");
    const body = headerEnd < 0 ? "" : rawLatin1.slice(headerEnd);
    if (!boundary) {
      warnings.push("multipart Content-Type without a boundary parameter");
    } else if (!body.includes(`--${boundary}`)) {
      warnings.push(`multipart boundary ${JSON.stringify(boundary.slice(0, 70))} never used`);
    } else if (!body.includes(`--${boundary}--`)) {
      warnings.push(
        `multipart boundary ${JSON.stringify(boundary.slice(0, 70))} never closed (truncated message?)`,
      );
    }
  }

  // Bodies
  let html = mp.html;
  let text = mp.text.replace(/\r\n/g, "\n");
  warnings.push(...mp.charsetNotes);
  if (text.includes("\ufffd") || html?.includes("\ufffd"))
    warnings.push("body contains bytes invalid in its charset");
  // The limits are on markup: the base64 payloads of data: URIs in attribute values (a
  // pasted screenshot: megabytes) are not counted, and the text conversion, which skips
  // images anyway, does not see them (`withoutDataPayloads`).
  const lean = html ? withoutDataPayloads(html) : null;
  // Nested too deep for the HTML parser to read in reasonable time (`htmlTooCostly`): as too
  // large. Counted on the HTML the parsers will read, not on `lean`: a payload adds no tag,
  // but what `withoutDataPayloads` takes for one may sit in a tag name, where cutting it made
  // `</a=data:;base64,X>` close `<a=data:;base64,>` (re-probe, session 16: 2 MB of that held
  // a parser thread 7 s while the count on the lean copy said one level deep).
  const tooDeep =
    html !== null &&
    lean !== null &&
    lean.length <= limits.maxHtmlChars &&
    htmlTooCostly(html, limits.maxHtmlParseSteps);
  const fullHtml = lean !== null && lean.length <= limits.maxHtmlChars && !tooDeep;
  if (tooDeep) {
    warnings.push("HTML nested too deeply for the HTML parser; only the text body can be shown");
  }
  if (text.trim() === "" && lean) {
    if (fullHtml) {
      try {
        text = htmlToText(lean, { wordwrap: false, selectors: [{ selector: "img", format: "skip" }] });
      } catch (err) {
        text = crudeHtmlToText(lean);
        warnings.push(`HTML to text conversion failed (${err instanceof Error ? err.message : String(err)})`);
      }
    } else {
      text = crudeHtmlToText(lean);
      warnings.push("HTML too large or deep for full text conversion; text derived by stripping tags");
    }
  }
  if (html === "") html = null;

  let sanitized: Extract<ParseOutcome, { ok: true }>["sanitized"] = null;
  if (limits.sanitize && html !== null) {
    if (fullHtml) sanitized = sanitizeHtml(html);
    else if (lean!.length > limits.maxHtmlChars)
      warnings.push(
        `HTML of ${lean!.length} characters${lean!.length < html.length ? " (data: payloads not counted)" : ""} is too large to sanitise; only the text body can be shown`,
      );
  }

  // Attachments. `inline` says "shown in the body": exactly the parts whose Content-ID a
  // cid: image kept by the sanitiser names, compared as `inlineHtml` compares them (case,
  // brackets, URL escapes), and only the first part of each Content-ID, the one it shows.
  // Neither Content-Disposition nor a cid: elsewhere (a background, which the sanitiser
  // drops) makes a part inline: Apple Mail sends every attachment as "inline".
  const shownCids = new Set(sanitized?.cidRefs.map(normaliseContentId));
  const attachments: MailAttachment[] = [];
  for (const a of mp.attachments) {
    const content = Buffer.isBuffer(a.content) ? a.content : Buffer.alloc(0);
    const contentId = a.cid ? a.cid.trim() || null : null;
    const cidKey = contentId === null ? null : normaliseContentId(contentId);
    const inline = cidKey !== null && shownCids.delete(cidKey);
    const filename = safeFilename(a.filename);
    if (a.filename && filename !== a.filename) {
      warnings.push(
        `attachment file name ${JSON.stringify(a.filename.slice(0, 80))} stored as ${JSON.stringify(filename)}`,
      );
    }
    attachments.push({
      filename,
      contentType: mediaTypeOrOctetStream(a.contentType),
      size: content.length,
      contentId,
      inline,
      sha256: a.checksum ?? createHash("sha256").update(content).digest("hex"),
      content,
    });
    if (a.filename && (ENCODED_WORD_RE.test(a.filename) || a.filename.includes("\ufffd"))) {
      warnings.push(`attachment file name could not be decoded: ${JSON.stringify(a.filename.slice(0, 80))}`);
    }
  }

  // Delivery reports (RFC 6522 multipart/report with report-type=delivery-status; RFC
  // 6533 adds the global-delivery-status variant for internationalised mail).
  const topType = headers["content-type"]?.[0] ?? "";
  const reportType = /^multipart\/report\b/i.test(topType)
    ? (param(topType, "report-type") ?? "").toLowerCase()
    : "";
  const isDeliveryReport = reportType === "delivery-status" || reportType === "global-delivery-status";
  let deliveryStatus: DeliveryStatus | null = null;
  if (isDeliveryReport) {
    const statusPart = attachments.find(
      (a) =>
        a.contentType === "message/delivery-status" || a.contentType === "message/global-delivery-status",
    );
    if (statusPart) {
      const returned = attachments.find((a) =>
        ["message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers"].includes(
          a.contentType,
        ),
      );
      const fromReturned = returned ? messageIdOfHeaderBlock(returned.content.toString("utf8")) : null;
      const xOriginal = normalizeMessageId(headers["x-original-message-id"]?.[0]);
      deliveryStatus = {
        ...parseDeliveryStatus(statusPart.content.toString("utf8")),
        originalMessageId: fromReturned ?? xOriginal,
      };
      if (deliveryStatus.recipients.length === 0) warnings.push("delivery report without recipient fields");
    } else {
      warnings.push("multipart/report delivery-status without a message/delivery-status part");
    }
  }

  const mail: ParsedMail = {
    messageId,
    inReplyTo,
    references,
    from,
    to,
    cc,
    replyTo,
    subject,
    date,
    text,
    html,
    attachments,
    headers,
    receivedCount,
    isDeliveryReport,
    deliveryStatus,
    warnings,
    sizeBytes,
    rawSha256,
    contentHash: messageId
      ? authoredHash(lines, raw, headerEnd)
      : traceBytes > 0 && traceBytes <= input.length
        ? createHash("sha256").update(input.subarray(traceBytes)).digest("hex")
        : rawSha256,
  };
  // PostgreSQL text and jsonb cannot hold U+0000, and broken mail does contain NUL bytes
  // (in headers, bodies, names): without this the message could never be stored. Nor can
  // jsonb hold half of a UTF-16 surrogate pair ("\ud83d"), which a UTF-16 encoded word can
  // decode to: it becomes U+FFFD, as text columns would make it anyway.
  const found = { nul: false, surrogate: false };
  const clean = storable({ mail, sanitized }, found);
  if (found.nul) clean.mail.warnings.push("NUL characters removed");
  if (found.surrogate) clean.mail.warnings.push("invalid UTF-16 (unpaired surrogates) replaced by U+FFFD");
  return { ok: true, mail: clean.mail, sanitized: clean.sanitized };
}

/**
 * A deep copy in which every string can be stored: without U+0000 and well-formed (Buffers,
 * Dates and numbers kept as they are).
 */
function storable<T>(value: T, seen: { nul: boolean; surrogate: boolean }): T {
  if (typeof value === "string") {
    let s: string = value;
    if (s.includes("\u0000")) {
      seen.nul = true;
      s = s.replaceAll("\u0000", "");
    }
    if (!s.isWellFormed()) {
      seen.surrogate = true;
      s = s.toWellFormed();
    }
    return s as T;
  }
  if (value === null || typeof value !== "object") return value;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array || value instanceof Date) return value;
  if (Array.isArray(value)) {
    const out: unknown[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = storable(value[i], seen);
    return out as T;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[storable(k, seen)] = storable(v, seen);
  return out as T;
}
