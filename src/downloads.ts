import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";

/**
 * A file that never changes, sent as HTTP wants large files sent (RFC 9110): read in parts
 * as the client takes them, never whole into memory; a strong ETag, so a client that has it
 * gets 304 instead of the bytes again; a single byte range (`Range: bytes=…`) for PDF
 * viewers, media players and resumed downloads; HEAD for the headers alone.
 */
export interface Download {
  sizeBytes: number;
  /** The strong validator, e.g. the content's SHA-256 in hex (sent quoted). */
  etag: string;
  /** Response headers other than length, range and validator ones (type, disposition, cache…). */
  headers: Record<string, string>;
  /** `length` bytes from byte `from` (0-based), in parts. */
  read(from: number, length: number): AsyncIterable<Buffer>;
}

/**
 * `Content-Disposition: attachment` naming `filename` (RFC 6266): `filename*` carries the
 * name as UTF-8 in RFC 8187's ext-value, where only attr-char may stand unescaped, so
 * `'`, `(`, `)` and `*` are escaped too (encodeURIComponent leaves them: wget took the
 * `'` for the end of the language tag and saved "it's (final) copy*.pdf" as
 * "s (final) copy*.pdf"). A plain `filename` comes first for clients that ignore
 * `filename*` (curl -OJ): the name in ASCII, accents dropped, other non-ASCII characters
 * as "_", without quotes, backslashes and controls, which a quoted-string would need to
 * escape and some clients read wrongly.
 */
export function attachmentDisposition(filename: string): string {
  const name = filename.toWellFormed();
  const ascii =
    name
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .replace(/[^\u0000-\u007f]/gu, "_")
      .replace(/["\\\u0000-\u001f\u007f]/g, "")
      .trim() || "download";
  const encoded = encodeURIComponent(name).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

export async function sendDownload(req: IncomingMessage, res: ServerResponse, file: Download): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "application/json" });
    res.end(JSON.stringify({ error: "method not allowed" }));
    return;
  }
  const etag = `"${file.etag}"`;
  const common = { ...file.headers, etag, "accept-ranges": "bytes" };
  if (etagMatches(req.headers["if-none-match"], etag)) {
    res.writeHead(304, common);
    res.end();
    return;
  }
  // If-Range with anything but our current ETag (an old one, or a date: we send no
  // Last-Modified) asks for the whole file instead of a part of another version.
  const ifRange = req.headers["if-range"];
  const range =
    ifRange === undefined || ifRange === etag ? byteRange(req.headers.range, file.sizeBytes) : null;
  if (range === "unsatisfiable") {
    res.writeHead(416, { ...common, "content-range": `bytes */${file.sizeBytes}` });
    res.end();
    return;
  }
  const [from, length] = range ? [range.start, range.end - range.start + 1] : [0, file.sizeBytes];
  res.writeHead(range ? 206 : 200, {
    ...common,
    "content-length": String(length),
    ...(range ? { "content-range": `bytes ${range.start}-${range.end}/${file.sizeBytes}` } : {}),
  });
  if (req.method === "HEAD" || length === 0) {
    res.end();
    return;
  }
  // With the socket's backpressure; a client that goes away ends the reads.
  await pipeline(file.read(from, length), res).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ERR_STREAM_PREMATURE_CLOSE") throw err;
  });
}

/** If-None-Match (RFC 9110 §13.1.2): `*`, or a list of entity tags compared weakly. */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}

/**
 * The one range of a `Range: bytes=…` header (RFC 9110 §14.1.2), clipped to the file;
 * "unsatisfiable" when it starts past the end (416); null for no header, a header this
 * server ignores (several ranges: the whole file is a valid answer to those, and simpler
 * for everyone) or one it cannot parse (which RFC 9110 says to ignore).
 */
export function byteRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "unsatisfiable" | null {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    // The last n bytes.
    const n = Number(m[2]);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === "" ? Number.MAX_SAFE_INTEGER : Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(last) || last < start) return null;
  if (start >= size) return "unsatisfiable";
  return { start, end: Math.min(last, size - 1) };
}
