import { isUtf8 } from "node:buffer";
import { Transform, type TransformCallback } from "node:stream";
import { iconv, libmime } from "./headline.js";

/**
 * Text that names no charset (or names us-ascii) but has 8-bit bytes: old mailers, web
 * forms and scripts write Latin-1 that way. mailparser reads such text as UTF-8, so every
 * byte of it became U+FFFD and the content was lost to agents. Here: bytes that are valid
 * UTF-8 stay UTF-8 (what mailparser did, and what RFC 6532 mail is); others are read as
 * windows-1252, the WHATWG/HTML default for legacy text that names no encoding (a
 * superset of Latin-1 for the printable range, as browsers read "iso-8859-1" too). An
 * HTML part first gets the charset its own <meta> declares. A charset the mail declares
 * as anything else is left to mailparser, as before.
 */

/** What undeclared 8-bit text is read as (WHATWG Encoding: the legacy default). */
export const FALLBACK_CHARSET = "windows-1252";

/** The bytes as text: UTF-8 when they are UTF-8, else windows-1252. */
export function utf8OrFallback(bytes: Buffer): { text: string; fallback: boolean } {
  if (isUtf8(bytes)) return { text: bytes.toString("utf8"), fallback: false };
  return { text: windows1252(bytes), fallback: true };
}

/** 0x80–0x9F as iconv-lite reads them in windows-1252 (U+FFFD for the five it leaves undefined). */
const C1_AS_WINDOWS_1252 = iconv.decode(
  Buffer.from(Array.from({ length: 32 }, (_, i) => 0x80 + i)),
  FALLBACK_CHARSET,
);

/**
 * windows-1252 as iconv-lite decodes it, by Node's native Latin-1 decoding: the two differ
 * in 0x80–0x9F only. (iconv-lite's decoder, a loop in JavaScript, took about as long as
 * mailparser's whole parse of a 40 MB part; Node 20's TextDecoder reads windows-1252 as
 * Latin-1.) For header fields: `windows1252Bytes` is the one for bodies.
 */
export function windows1252(bytes: Buffer): string {
  const latin1 = bytes.toString("latin1");
  return C1_RE.test(latin1)
    ? latin1.replace(C1_ALL_RE, (c) => C1_AS_WINDOWS_1252[c.charCodeAt(0) - 0x80]!)
    : latin1;
}

const C1_RE = /[\x80-\x9f]/;
const C1_ALL_RE = /[\x80-\x9f]/g;

/** Each byte's UTF-8 when read as windows-1252 (3 bytes a byte), and how many bytes more than 1 that is. */
const UTF8_OF = new Uint8Array(256 * 3);
const UTF8_EXTRA = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const utf8 = Buffer.from(
    b >= 0x80 && b < 0xa0 ? C1_AS_WINDOWS_1252[b - 0x80]! : String.fromCharCode(b),
    "utf8",
  );
  UTF8_OF.set(utf8, b * 3);
  UTF8_EXTRA[b] = utf8.length - 1;
}

/**
 * windows-1252 bytes as UTF-8 bytes (what mailparser takes from a decoder), the same as
 * `windows1252`. Text without 0x80–0x9F is Latin-1, which Node decodes and encodes
 * natively; other text goes through a table, as a replace() of its quotes and dashes took
 * four times as long.
 */
export function windows1252Bytes(bytes: Buffer): Buffer {
  const latin1 = bytes.toString("latin1");
  if (!C1_RE.test(latin1)) return Buffer.from(latin1, "utf8");
  // Plain typed arrays: V8 indexes them faster than Buffers.
  const src = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  let extra = 0;
  for (let i = 0; i < src.length; i++) extra += UTF8_EXTRA[src[i]!]!;
  const out = new Uint8Array(src.length + extra);
  let o = 0;
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (b < 0x80) {
      out[o++] = b;
      continue;
    }
    const at = b * 3;
    out[o++] = UTF8_OF[at]!;
    out[o++] = UTF8_OF[at + 1]!;
    if (UTF8_EXTRA[b] === 2) out[o++] = UTF8_OF[at + 2]!;
  }
  return Buffer.from(out.buffer, 0, out.length);
}

/** Whether a declared charset says nothing useful about 8-bit bytes: none, or ASCII. */
export function charsetUndeclared(charset: string | false | null | undefined): boolean {
  // mailparser's own test for the charsets it does not decode (it reads them as UTF-8).
  const c = (charset || "").toLowerCase().replace(/[^a-z0-9]+/g, "");
  return c === "" || c === "ascii" || c === "usascii";
}

/** A mailparser charset standing for "undeclared", with what the decoder needs to know. */
const MARK = "x-switchboard-undeclared";

export function undeclaredMark(html: boolean, declared: string | false | null | undefined): string {
  return `${MARK}/${html ? "html" : "plain"}/${(declared || "").trim()}`;
}

/**
 * The decoder for a charset made by `undeclaredMark`, or null for any other charset. It
 * holds the part's (transfer-decoded) bytes, as mailparser does for text anyway, and
 * decides at their end; `note` receives a parse warning when the bytes are not UTF-8.
 */
export function undeclaredDecoder(charset: string, note: (warning: string) => void): Transform | null {
  if (!charset.startsWith(`${MARK}/`)) return null;
  const [, kind = "", declared = ""] = charset.split("/");
  return new UndeclaredTextDecoder(kind === "html", declared, note);
}

/**
 * Holds a part's bytes (as mailparser does for text anyway) and checks them for UTF-8 as
 * they come, without joining them: valid UTF-8 leaves as the same chunks, which mailparser
 * joins and reads as UTF-8 as before, so such text costs one pass of `isUtf8` more.
 */
class UndeclaredTextDecoder extends Transform {
  private chunks: Buffer[] = [];
  private length = 0;
  private readonly utf8 = new Utf8Check();

  constructor(
    private readonly html: boolean,
    private readonly declared: string,
    private readonly note: (warning: string) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
    this.utf8.feed(chunk);
    done();
  }

  override _flush(done: TransformCallback): void {
    const chunks = this.chunks;
    this.chunks = [];
    for (const c of this.utf8.end() ? chunks : this.decoded(chunks)) this.push(c);
    done();
  }

  /** Bytes that are not UTF-8, as UTF-8: by the charset of an HTML part's <meta>, else windows-1252. */
  private decoded(chunks: Buffer[]): Buffer[] {
    const what = this.declared ? `text declared ${this.declared}` : "text without a charset";
    if (this.html) {
      const meta = htmlMetaCharset(leading(chunks, 1024));
      const known = meta === null ? null : knownCharset(meta);
      // Declared UTF-8 after all: read as mailparser reads it (U+FFFD), as a header charset would be.
      if (known === "utf-8") return chunks;
      if (known !== null) {
        this.note(`HTML ${what} is not UTF-8; read as ${meta}, the charset of its <meta>`);
        if (/^windows-?1252$/i.test(known)) return chunks.map(windows1252Bytes);
        return [Buffer.from(iconv.decode(Buffer.concat(chunks, this.length), known), "utf8")];
      }
    }
    this.note(`${what} is not UTF-8; read as ${FALLBACK_CHARSET}`);
    // A single-byte charset: each chunk decodes on its own.
    return chunks.map(windows1252Bytes);
  }
}

/** The first `n` bytes of what `chunks` hold together. */
function leading(chunks: readonly Buffer[], n: number): Buffer {
  const out: Buffer[] = [];
  let length = 0;
  for (const c of chunks) {
    if (length >= n) break;
    out.push(c);
    length += c.length;
  }
  return Buffer.concat(out, length).subarray(0, n);
}

/**
 * Whether bytes given chunk by chunk are UTF-8, as `isUtf8` of them all would say, but
 * without joining them: a sequence a chunk boundary cuts is checked once it is whole.
 */
export class Utf8Check {
  private valid = true;
  /** The start of a sequence the last chunk ended in (1–3 bytes). */
  private tail: Buffer | null = null;

  feed(chunk: Buffer): void {
    if (!this.valid || chunk.length === 0) return;
    let start = 0;
    if (this.tail !== null) {
      const need = sequenceLength(this.tail[0]!) - this.tail.length;
      if (chunk.length < need) {
        this.tail = Buffer.concat([this.tail, chunk]);
        return;
      }
      this.valid = isUtf8(Buffer.concat([this.tail, chunk.subarray(0, need)]));
      this.tail = null;
      start = need;
    }
    const cut = wholeSequencesEnd(chunk, start);
    if (this.valid) this.valid = isUtf8(chunk.subarray(start, cut));
    if (this.valid && cut < chunk.length) this.tail = Buffer.from(chunk.subarray(cut));
  }

  /** Whether all bytes given were UTF-8 (a sequence cut off at the end is not). */
  end(): boolean {
    return this.valid && this.tail === null;
  }
}

/** The length a UTF-8 lead byte announces (RFC 3629), or 0 for a byte that leads nothing. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * Where the bytes of `chunk` from `start` end, less a sequence begun but not finished at
 * its end (at most 3 bytes). Anything invalid there is left in, for `isUtf8` to refuse.
 */
function wholeSequencesEnd(chunk: Buffer, start: number): number {
  const end = chunk.length;
  let lead = end - 1;
  while (lead >= start && lead > end - 4 && (chunk[lead]! & 0xc0) === 0x80) lead--;
  if (lead < start) return end;
  const length = sequenceLength(chunk[lead]!);
  return length > 1 && lead + length > end ? lead : end;
}

/** iconv-lite's name for a charset label as mailparser would decode it, or null. */
function knownCharset(label: string): string | null {
  const name = libmime.normalizeCharset(label);
  if (/^utf-?8$/i.test(name)) return "utf-8";
  try {
    return iconv.encodingExists(name) ? name : null;
  } catch {
    return null;
  }
}

const SPACE = /[\t\n\f\r ]/;

/**
 * The charset an HTML document declares in a <meta> within its first 1024 bytes: the
 * HTML Standard's "prescan a byte stream to determine its encoding" (§13.2.3.2), which
 * skips comments and reads attributes the way browsers do, so a quoted ">" or a commented
 * out meta does not mislead it. The label as written (UTF-16 labels read as UTF-8, as the
 * standard says), or null.
 */
export function htmlMetaCharset(bytes: Buffer): string | null {
  const s = bytes.subarray(0, 1024).toString("latin1");
  let at = 0;
  while (at < s.length) {
    if (s.startsWith("<!--", at)) {
      const end = s.indexOf("-->", at + 2);
      if (end < 0) return null;
      at = end + 3;
    } else if (/^<meta[\t\n\f\r /]/i.test(s.slice(at, at + 6))) {
      const found = metaElementCharset(s, at + 5);
      if (found.charset !== null) return found.charset;
      at = found.end;
    } else if (/^<\/?[a-z]/i.test(s.slice(at, at + 3))) {
      at = at + 2;
      while (at < s.length && !SPACE.test(s[at]!) && s[at] !== ">") at++;
      for (let a = attribute(s, at); a !== null; a = attribute(s, a.end)) at = a.end;
      at = afterAttributes(s, at);
    } else if (s.startsWith("<!", at) || s.startsWith("</", at) || s.startsWith("<?", at)) {
      const end = s.indexOf(">", at);
      if (end < 0) return null;
      at = end + 1;
    } else {
      at++;
    }
  }
  return null;
}

/** The charset of the meta element whose attributes start at `at`, and where it ends. */
function metaElementCharset(s: string, at: number): { charset: string | null; end: number } {
  const seen = new Set<string>();
  let gotPragma = false;
  let needPragma: boolean | null = null;
  let charset: string | null = null;
  let end = at;
  for (let a = attribute(s, at); a !== null; a = attribute(s, a.end)) {
    end = a.end;
    if (seen.has(a.name)) continue;
    seen.add(a.name);
    if (a.name === "http-equiv") {
      if (a.value.toLowerCase() === "content-type") gotPragma = true;
    } else if (a.name === "content") {
      const fromContent = charsetOfContent(a.value);
      if (charset === null && fromContent !== null) {
        charset = fromContent;
        needPragma = true;
      }
    } else if (a.name === "charset") {
      charset = a.value;
      needPragma = false;
    }
  }
  end = afterAttributes(s, end);
  if (needPragma === null || (needPragma && !gotPragma) || charset === null || charset.trim() === "") {
    return { charset: null, end };
  }
  const label = charset.trim().toLowerCase();
  if (
    /^(?:utf-16|utf-16be|utf-16le|unicodefffe|unicodefeff|csunicode|iso-10646-ucs-2|ucs-2|unicode)$/.test(
      label,
    )
  ) {
    return { charset: "utf-8", end };
  }
  if (label === "x-user-defined") return { charset: FALLBACK_CHARSET, end };
  return { charset: charset.trim(), end };
}

/** Past the ">" that ends a tag whose last attribute ends at `at` (or the end of input). */
function afterAttributes(s: string, at: number): number {
  const end = s.indexOf(">", at);
  return end < 0 ? s.length : end + 1;
}

/** The HTML Standard's "get an attribute" from `at`; null at the tag's end. */
function attribute(s: string, at: number): { name: string; value: string; end: number } | null {
  let i = at;
  while (i < s.length && (SPACE.test(s[i]!) || s[i] === "/")) i++;
  if (i >= s.length || s[i] === ">") return null;
  let name = "";
  for (; i < s.length; i++) {
    const c = s[i]!;
    if (c === "=" && name !== "") break;
    if (SPACE.test(c) || c === "/" || c === ">") break;
    name += c.toLowerCase();
  }
  while (i < s.length && SPACE.test(s[i]!)) i++;
  if (s[i] !== "=") return { name, value: "", end: i };
  i++;
  while (i < s.length && SPACE.test(s[i]!)) i++;
  const q = s[i];
  if (q === '"' || q === "'") {
    const close = s.indexOf(q, i + 1);
    if (close < 0) return { name, value: s.slice(i + 1).toLowerCase(), end: s.length };
    return { name, value: s.slice(i + 1, close).toLowerCase(), end: close + 1 };
  }
  if (q === ">") return { name, value: "", end: i };
  let j = i;
  while (j < s.length && !SPACE.test(s[j]!) && s[j] !== ">") j++;
  return { name, value: s.slice(i, j).toLowerCase(), end: j };
}

/** The HTML Standard's "extract a character encoding from a meta element" (its content). */
function charsetOfContent(content: string): string | null {
  let from = 0;
  for (;;) {
    const at = content.indexOf("charset", from);
    if (at < 0) return null;
    let i = at + 7;
    while (i < content.length && SPACE.test(content[i]!)) i++;
    if (content[i] !== "=") {
      from = i;
      continue;
    }
    i++;
    while (i < content.length && SPACE.test(content[i]!)) i++;
    const q = content[i];
    if (q === '"' || q === "'") {
      const close = content.indexOf(q, i + 1);
      return close < 0 ? null : content.slice(i + 1, close);
    }
    let j = i;
    while (j < content.length && !SPACE.test(content[j]!) && content[j] !== ";") j++;
    return j > i ? content.slice(i, j) : null;
  }
}
