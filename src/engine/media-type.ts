/**
 * A media type as RFC 2045 §5.1 writes it: `type/subtype`, each a token (US-ASCII without
 * controls, space or tspecials), lower-cased; anything else is `application/octet-stream`.
 * A Content-Type such as `image/p€ng` was stored as sent, and serving it made Node's
 * `writeHead` throw (ERR_INVALID_CHAR: a header value must be Latin-1 without controls), so
 * the download answered 500. Parameters are not kept: a stored type has none.
 */
const MEDIA_TYPE = /^[!#$%&'*+.^_`|~0-9a-z-]+\/[!#$%&'*+.^_`|~0-9a-z-]+$/;

export const OCTET_STREAM = "application/octet-stream";

export function mediaTypeOrOctetStream(type: string | null | undefined): string {
  // RFC 822 comments and blanks around the "/" are allowed (RFC 2045 §5.1) and mailparser
  // keeps them: "image/png (Portable Network Graphics)" is image/png.
  const t = (type ?? "")
    // Nested comments ("(a (b) c)") from the inside out, a bounded number of levels.
    .replace(/\([^()]*\)/g, "")
    .replace(/\([^()]*\)/g, "")
    .replace(/\([^()]*\)/g, "")
    .replace(/\s*\/\s*/, "/")
    .trim()
    .toLowerCase();
  return MEDIA_TYPE.test(t) ? t : OCTET_STREAM;
}
