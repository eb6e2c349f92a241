import { compile } from "html-to-text";
import sanitizeHtml from "sanitize-html";

/**
 * The HTML allow-list for everything we send: agent bodies, quoted customer mail,
 * signatures and branded templates. Scripts, event handlers, forms, iframes,
 * `javascript:` URLs and CSS `url()`/`expression()` never leave the building; the agent
 * desktop may render what we stored as sent, so the same rules protect it too.
 */

// A CSS value with no url()/expression()/escapes (CSS escapes can spell either) and no
// characters that close the attribute or start a new declaration.
const SAFE_CSS_VALUE = /^(?!.*(?:url|expression|image-set|var)\s*\()(?!.*\\)[#\w\s.,%()'"+/-]*$/i;

const STYLE_PROPERTIES = [
  "color",
  "background-color",
  "font-size",
  "font-weight",
  "font-style",
  "font-family",
  "text-align",
  "text-decoration",
  "vertical-align",
  "line-height",
  "white-space",
  "width",
  "height",
  "max-width",
  "margin",
  "margin-top",
  "margin-right",
  "margin-bottom",
  "margin-left",
  "padding",
  "padding-top",
  "padding-right",
  "padding-bottom",
  "padding-left",
  "border",
  "border-left",
  "border-right",
  "border-top",
  "border-bottom",
  "border-collapse",
  "border-color",
  "border-style",
  "border-width",
  "display",
];

const allowedStyles: Record<string, RegExp[]> = {};
for (const p of STYLE_PROPERTIES) allowedStyles[p] = [SAFE_CSS_VALUE];

const CONTENT_OPTIONS: sanitizeHtml.IOptions = {
  allowedTags: [...sanitizeHtml.defaults.allowedTags, "img", "font", "center", "del", "ins"],
  allowedAttributes: {
    a: ["href", "name", "target", "title"],
    img: ["src", "alt", "title", "width", "height"],
    td: ["colspan", "rowspan", "align", "valign", "width", "height", "bgcolor"],
    th: ["colspan", "rowspan", "align", "valign", "width", "height", "bgcolor"],
    table: ["width", "border", "cellpadding", "cellspacing", "align", "bgcolor"],
    font: ["color", "face", "size"],
    blockquote: ["type", "cite"],
    "*": ["style", "dir", "lang", "align", "class"],
  },
  allowedStyles: { "*": allowedStyles },
  allowedSchemes: ["http", "https", "mailto", "tel"],
  // Inline images travel as attachments referenced by Content-ID (RFC 2392 `cid:`).
  allowedSchemesByTag: { img: ["cid", "https", "http"] },
  allowProtocolRelative: false,
  disallowedTagsMode: "discard",
};

// Branded templates are whole documents; the document tags are allowed there only.
const TEMPLATE_OPTIONS: sanitizeHtml.IOptions = {
  ...CONTENT_OPTIONS,
  allowedTags: [...(CONTENT_OPTIONS.allowedTags as string[]), "html", "head", "body", "title", "meta"],
  allowedAttributes: {
    ...(CONTENT_OPTIONS.allowedAttributes as Record<string, string[]>),
    body: ["bgcolor", "style", "dir", "lang"],
    meta: ["charset", "name", "content"],
  },
};

/**
 * sanitize-html output is a balanced fragment (every opened tag is closed, stray closers
 * dropped), so sanitised fragments can be concatenated without re-sanitising the whole.
 */
export function sanitizeContentHtml(html: string): string {
  return sanitizeHtml(html, CONTENT_OPTIONS);
}

export function sanitizeTemplateHtml(html: string): string {
  return sanitizeHtml(html, TEMPLATE_OPTIONS);
}

/**
 * A small least-recently-used memo for pure string functions whose inputs repeat from
 * mail to mail (templates, rendered signatures): sanitising them once per distinct
 * value instead of once per message is most of the composition cost at volume.
 */
export function memoize(fn: (input: string) => string, capacity = 256): (input: string) => string {
  const cache = new Map<string, string>();
  return (input) => {
    const hit = cache.get(input);
    if (hit !== undefined) {
      cache.delete(input);
      cache.set(input, hit);
      return hit;
    }
    const out = fn(input);
    cache.set(input, out);
    if (cache.size > capacity) cache.delete(cache.keys().next().value as string);
    return out;
  };
}

const TEXT_OPTIONS = {
  // Mail clients wrap on display; hard-wrapping here would break URLs and quoted lines.
  wordwrap: false as const,
  selectors: [
    { selector: "img", format: "skip" },
    { selector: "a", options: { hideLinkHrefIfSameAsText: true } },
  ],
};

// Compiled once: `convert()` rebuilds its selector tables on every call (~5 ms each).
const toText = compile(TEXT_OPTIONS);

/** The text/plain alternative of an HTML fragment. */
export function htmlToText(html: string): string {
  return toText(html).trim();
}
