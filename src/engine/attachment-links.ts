import { eq } from "drizzle-orm";
import { attachment } from "../db/schema/index.js";
import type { EngineContext } from "./context.js";
import { type AttachmentFile, attachmentFile, attachmentFileColumns } from "./conversations.js";
import { Problems } from "./errors.js";
import { contentIdOfCidUrl, normaliseContentId } from "./ingest/sanitize.js";

/**
 * Signed attachment links (docs/api.md "Attachments and inline images"): a path that
 * downloads one attachment without an Authorization header until it expires, so an agent
 * desktop can put inline images in `<img src>` and attachments in plain links, which a
 * browser fetches without the API key. Whoever holds the link can fetch the file until then,
 * like any pre-signed URL; it is only issued to a caller who may see the message, names one
 * attachment, and carries its tenant in the signed text.
 */

const PURPOSE = "attachment-link";
export const LINK_DEFAULT_SECONDS = 3600;
export const LINK_MIN_SECONDS = 60;
export const LINK_MAX_SECONDS = 7 * 24 * 3600;

export function validateLinkLifetime(seconds: number | null | undefined, field = "expiresInSeconds"): number {
  const s = seconds ?? LINK_DEFAULT_SECONDS;
  new Problems()
    .check(
      Number.isInteger(s) && s >= LINK_MIN_SECONDS && s <= LINK_MAX_SECONDS,
      field,
      `must be a whole number of seconds from ${LINK_MIN_SECONDS} to ${LINK_MAX_SECONDS} (7 days)`,
    )
    .throwIfAny();
  return s;
}

const signedText = (tenantId: string, attachmentId: string, expires: number) =>
  `${tenantId}:${attachmentId.toLowerCase()}:${expires}`;

/**
 * The link's path. `expires` is rounded up to the minute so that the links a page of
 * messages asks for in the same minute are the same URL and a browser's cache serves
 * them again.
 */
export function signedAttachmentPath(
  ctx: Pick<EngineContext, "secrets" | "clock">,
  a: { tenantId: string; id: string },
  lifetimeSeconds: number,
): string {
  const expires = Math.ceil((ctx.clock.now().getTime() / 1000 + lifetimeSeconds) / 60) * 60;
  const signature = ctx.secrets.sign(PURPOSE, signedText(a.tenantId, a.id, expires));
  return `/attachments/${a.id}?expires=${expires}&signature=${signature}`;
}

export type LinkCheck =
  | { ok: true; file: AttachmentFile; expires: number }
  | { ok: false; reason: "invalid" | "expired" };

/**
 * The file a signed link names, if the signature is right and the link has not expired.
 * An unknown attachment and a wrong signature are both "invalid": nothing is learnt about
 * which IDs exist. "expired" only for a link this server did sign.
 */
export async function openSignedAttachment(
  ctx: EngineContext,
  attachmentId: string,
  query: URLSearchParams,
): Promise<LinkCheck> {
  const expiresText = query.get("expires") ?? "";
  const signature = query.get("signature") ?? "";
  if (!/^\d{1,12}$/.test(expiresText) || !/^[A-Za-z0-9_-]{43}$/.test(signature)) {
    return { ok: false, reason: "invalid" };
  }
  const expires = Number(expiresText);
  const [row] = await ctx.db
    .select(attachmentFileColumns)
    .from(attachment)
    .where(eq(attachment.id, attachmentId));
  if (!row || !ctx.secrets.verify(PURPOSE, signedText(row.tenantId, attachmentId, expires), signature)) {
    return { ok: false, reason: "invalid" };
  }
  if (expires * 1000 <= ctx.clock.now().getTime()) return { ok: false, reason: "expired" };
  return {
    ok: true,
    file: attachmentFile(row),
    expires,
  };
}

/** What `inlineImageHtml` needs of a message's attachments. */
export interface InlineCandidate {
  id: string;
  tenantId: string;
  contentId: string | null;
  /** Flagged by ingest as the part its body shows; preferred among parts sharing a Content-ID. */
  inline?: boolean;
}

const CID_SRC = /(<img\b[^>]*?\ssrc=")cid:([^"]*)(")/gi;

/**
 * Sanitised HTML (ingest/sanitize.ts keeps `cid:` image sources) with every `cid:` image
 * that names one of the message's attachments pointing at a signed link instead, prefixed
 * by `baseUrl`. A `cid:` that names no attachment stays as it is (a broken image, as in
 * any mail client). Only `src` attributes of `<img>` are rewritten: the sanitiser writes
 * them with double quotes and escapes `"`, `&`, `<` and `>` inside.
 */
export function inlineImageHtml(
  html: string,
  attachments: readonly InlineCandidate[],
  link: (a: InlineCandidate) => string,
  baseUrl: string,
): string {
  const byCid = new Map<string, InlineCandidate>();
  for (const a of attachments) {
    if (!a.contentId) continue;
    const key = normaliseContentId(a.contentId);
    // Several parts may share a Content-ID: the one ingest flagged inline is shown, so that
    // the flag and the body agree.
    const other = byCid.get(key);
    if (!other || (a.inline === true && other.inline !== true)) byCid.set(key, a);
  }
  if (byCid.size === 0) return html;
  return html.replace(CID_SRC, (whole, head: string, ref: string, tail: string) => {
    const a = byCid.get(normaliseContentId(contentIdOfCidUrl(`cid:${decodeAttribute(ref)}`)));
    return a ? `${head}${escapeAttribute(baseUrl + link(a))}${tail}` : whole;
  });
}

const ENTITIES: Record<string, string> = { amp: "&", quot: '"', lt: "<", gt: ">", apos: "'", "#39": "'" };

function decodeAttribute(value: string): string {
  return value.replace(/&(amp|quot|lt|gt|apos|#39);/g, (_, e: string) => ENTITIES[e]!);
}

function escapeAttribute(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * The base a client asked links to be prefixed with: an http(s) origin, optionally with a
 * path (a server behind a reverse proxy at a sub-path), without query or fragment. Empty:
 * paths relative to the server, as `downloadPath` is.
 */
export function validateBaseUrl(baseUrl: string | null | undefined): string {
  if (baseUrl == null || baseUrl === "") return "";
  let u: URL | null = null;
  try {
    u = new URL(baseUrl);
  } catch {
    u = null;
  }
  new Problems()
    .check(
      u !== null &&
        (u.protocol === "http:" || u.protocol === "https:") &&
        u.search === "" &&
        u.hash === "" &&
        u.username === "" &&
        u.password === "",
      "baseUrl",
      "must be an http(s) URL without query, fragment or credentials, e.g. https://switchboard.example.com",
    )
    .throwIfAny();
  return `${u!.origin}${u!.pathname.replace(/\/+$/, "")}`;
}
