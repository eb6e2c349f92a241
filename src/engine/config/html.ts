import sanitizeHtml from "sanitize-html";
import type { Problems } from "../errors.js";
import { checkText } from "./validate.js";

/**
 * HTML that admins save ends up in outbound mail and in agents' browsers, so it is
 * sanitised once, on save, with an allow-list: no scripts, no event handlers, no
 * javascript: or other unlisted URL schemes. What is stored is what is sent.
 */

const FRAGMENT_TAGS = [...sanitizeHtml.defaults.allowedTags, "img", "font", "center"];
const COMMON_ATTRS = [
  "style",
  "class",
  "align",
  "valign",
  "width",
  "height",
  "bgcolor",
  "color",
  "dir",
  "lang",
  "title",
];

const FRAGMENT: sanitizeHtml.IOptions = {
  allowedTags: FRAGMENT_TAGS,
  allowedAttributes: {
    "*": COMMON_ATTRS,
    a: ["href", "name", "target", "rel"],
    img: ["src", "alt", "width", "height", "border"],
    table: ["border", "cellpadding", "cellspacing", "role"],
    td: ["colspan", "rowspan"],
    th: ["colspan", "rowspan"],
    font: ["face", "size", "color"],
  },
  allowedSchemes: ["http", "https", "mailto", "tel"],
  // cid: inline images of the same mail; data: small logos pasted into an editor.
  allowedSchemesByTag: { img: ["http", "https", "cid", "data"] },
  allowProtocolRelative: false,
  disallowedTagsMode: "discard",
};

/** Branded templates are whole documents wrapping the body, so html/head/body are kept. */
const DOCUMENT: sanitizeHtml.IOptions = {
  ...FRAGMENT,
  allowedTags: [...FRAGMENT_TAGS, "html", "head", "body", "meta", "title"],
  allowedAttributes: {
    ...(FRAGMENT.allowedAttributes as Record<string, string[]>),
    meta: ["charset", "name", "content"],
  },
};

export function sanitizeFragment(html: string): string {
  return sanitizeHtml(html, FRAGMENT);
}

export function sanitizeDocument(html: string): string {
  return sanitizeHtml(html, DOCUMENT);
}

/** Reports every `{{…}}` tag in `value` that is not one of `allowed`. */
export function checkBraceTags(
  p: Problems,
  field: string,
  value: string | null | undefined,
  allowed: readonly string[],
) {
  if (!value) return;
  for (const m of value.matchAll(/\{\{\s*([^{}]*?)\s*\}\}/g)) {
    const tag = m[1] ?? "";
    if (!allowed.includes(tag)) {
      p.add(field, `unknown tag {{${tag}}}; allowed: ${allowed.map((t) => `{{${t}}}`).join(", ")}`);
    }
  }
}

/** Reports every `@{…}` tag in `value` that is not one of `allowed`. */
export function checkAtTags(
  p: Problems,
  field: string,
  value: string | null | undefined,
  allowed: readonly string[],
) {
  if (!value) return;
  for (const m of value.matchAll(/@\{([^}]*)\}/g)) {
    const tag = m[1] ?? "";
    if (!allowed.includes(tag)) {
      p.add(field, `unknown tag @{${tag}}; allowed: ${allowed.map((t) => `@{${t}}`).join(", ")}`);
    }
  }
}

export const MAX_TEXT = 100_000;
export const MAX_HTML = 500_000;
export const MAX_SUBJECT = 500;

/** A text or HTML body: bounded; line breaks and tabs are content, NUL and unpaired surrogates are not. */
export function checkBody(p: Problems, field: string, value: string | null | undefined, max: number) {
  checkText(p, field, value, max, { multiline: true });
}
