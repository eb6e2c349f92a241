import type { IOptions } from "sanitize-html";
import sanitize from "sanitize-html";

/**
 * HTML allow-list sanitiser for inbound mail bodies (SPEC §3). Everything not listed is
 * dropped, so a new attack vector needs a new allowed feature, not a missed blocklist
 * entry. Policy:
 *
 * - no active content: script, style elements, event handlers, forms and controls,
 *   frames, objects, SVG, MathML, meta, base, link — dropped (text content of
 *   harmless unknown tags is kept; script/style/textarea content is discarded);
 * - links: only http, https, mailto and tel; they open in a new browsing context with
 *   `rel="noopener noreferrer nofollow"` so the mail cannot reach `window.opener`;
 *   relative links are dropped (an email has no base; they would resolve against the
 *   agent desktop's own origin);
 * - images: `cid:` stays and is listed in `cidRefs` for the API layer to resolve to
 *   the attachment; `data:` only for raster images; http(s) images are *remote* — the
 *   URL moves to `data-remote-src` (inert) and is listed in `remoteResources`, so
 *   opening a mail never pings a tracker unless the client opts in. An `<img>` with a
 *   `srcset` and no `src` is read as if its first candidate were its `src`;
 * - every other reference a browser would load is listed in `remoteResources` and
 *   removed with its tag or attribute: `background`, CSS `url()` (in style attributes
 *   and `<style>` elements) and `@import`, `srcset`, `poster`, `<input type=image>`,
 *   `<link href>`, SVG `href`/`xlink:href`, `<object data>` …;
 * - inline style: a safe subset of properties with plain values (no `url()`,
 *   `expression()`, escapes, `position`, `behavior`…), names in any case, no negative
 *   margins;
 * - `id`, `name` and `class` are dropped: they would let the mail clobber DOM globals
 *   or pick up the host application's CSS.
 */

export interface SanitizedHtml {
  html: string;
  /** http(s) URLs the mail wanted to load (images, backgrounds, style sheets …), de-duplicated. */
  remoteResources: string[];
  /**
   * Content-IDs of the `cid:` images kept in `html` (what `inlineHtml` can show), without the
   * scheme, URL-decoded, de-duplicated. A `cid:` elsewhere (a background) is removed and not listed.
   */
  cidRefs: string[];
}

const ALLOWED_TAGS = [
  "a",
  "abbr",
  "address",
  "article",
  "aside",
  "b",
  "bdi",
  "bdo",
  "big",
  "blockquote",
  "br",
  "caption",
  "center",
  "cite",
  "code",
  "col",
  "colgroup",
  "dd",
  "del",
  "details",
  "dfn",
  "div",
  "dl",
  "dt",
  "em",
  "figcaption",
  "figure",
  "font",
  "footer",
  "h1",
  "h2",
  "h3",
  "h4",
  "h5",
  "h6",
  "header",
  "hr",
  "i",
  "img",
  "ins",
  "kbd",
  "li",
  "main",
  "mark",
  "ol",
  "p",
  "pre",
  "q",
  "s",
  "samp",
  "section",
  "small",
  "span",
  "strike",
  "strong",
  "sub",
  "summary",
  "sup",
  "table",
  "tbody",
  "td",
  "tfoot",
  "th",
  "thead",
  "time",
  "tr",
  "tt",
  "u",
  "ul",
  "var",
  "wbr",
];

const GLOBAL_ATTRIBUTES = ["style", "title", "dir", "lang", "align", "valign", "width", "height", "bgcolor"];
const TABLE_ATTRIBUTES = [
  "border",
  "cellpadding",
  "cellspacing",
  "colspan",
  "rowspan",
  "nowrap",
  "scope",
  "summary",
];

const ALLOWED_ATTRIBUTES: Record<string, string[]> = {
  "*": GLOBAL_ATTRIBUTES,
  a: ["href", "target", "rel"],
  img: ["src", "alt", "data-remote-src", "border", "hspace", "vspace"],
  font: ["color", "face", "size"],
  ol: ["start", "type", "reversed"],
  ul: ["type"],
  li: ["value"],
  table: TABLE_ATTRIBUTES,
  td: TABLE_ATTRIBUTES,
  th: TABLE_ATTRIBUTES,
  tr: TABLE_ATTRIBUTES,
  col: ["span"],
  colgroup: ["span"],
  blockquote: ["cite", "type"],
  q: ["cite"],
  del: ["cite", "datetime"],
  ins: ["cite", "datetime"],
  time: ["datetime"],
  details: ["open"],
};

// Plain CSS values only: keywords, numbers with units, colours, quoted font names,
// and rgb()/hsl() colour functions. No url(), no expression(), no backslash escapes
// (which could spell either), no @, no angle brackets.
const CSS_FUNCTION = String.raw`(?:rgba?|hsla?)\([\d\s.,%/+-]*\)`;
const SAFE_VALUE = new RegExp(String.raw`^(?:[#\w\s.,%'"!/+-]|${CSS_FUNCTION})*$`, "i");
const SAFE = [SAFE_VALUE];
const DISPLAY = [/^(?:block|inline|inline-block|table|table-row|table-cell|list-item|none)$/i];

const SAFE_STYLE_PROPERTIES = [
  "color",
  "background-color",
  "font",
  "font-family",
  "font-size",
  "font-style",
  "font-variant",
  "font-weight",
  "letter-spacing",
  "line-height",
  "text-align",
  "text-decoration",
  "text-indent",
  "text-transform",
  "white-space",
  "word-break",
  "word-spacing",
  "overflow-wrap",
  "vertical-align",
  "direction",
  "list-style-type",
  "border",
  "border-top",
  "border-right",
  "border-bottom",
  "border-left",
  "border-color",
  "border-style",
  "border-width",
  "border-radius",
  "border-collapse",
  "border-spacing",
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
  "width",
  "min-width",
  "max-width",
  "height",
  "min-height",
  "max-height",
  "table-layout",
];

// Margins only as wide as the box: a negative one lets a mail draw over what comes before
// it, on an agent desktop that shows the mail in the page (a fake login panel over the
// desktop's own controls; probe, session 16). Values as SAFE without "-".
const NON_NEGATIVE = [new RegExp(String.raw`^(?:[#\w\s.,%'"!/+]|${CSS_FUNCTION})*$`, "i")];
const MARGINS = new Set(["margin", "margin-top", "margin-right", "margin-bottom", "margin-left"]);

const ALLOWED_STYLES: Record<string, Record<string, RegExp[]>> = {
  "*": {
    ...Object.fromEntries(SAFE_STYLE_PROPERTIES.map((p) => [p, MARGINS.has(p) ? NON_NEGATIVE : SAFE])),
    display: DISPLAY,
  },
};

/**
 * A style attribute with its property names in lower case: CSS property names are ASCII
 * case-insensitive, but the allow-list compares them as written, so `DISPLAY:NONE` was
 * dropped and text the sender hid (a preheader, a tracking note) showed (probe, session
 * 16). One pass over the declarations (a name is what follows a `;` and precedes a `:`).
 */
function lowerCaseStyleNames(style: string): string {
  return style.replace(
    /(^|;)(\s*)([A-Za-z-]+)(\s*:)/g,
    (_m, lead: string, ws: string, name: string, colon: string) =>
      /[A-Z]/.test(name) ? `${lead}${ws}${name.toLowerCase()}${colon}` : `${lead}${ws}${name}${colon}`,
  );
}

// Browsers ignore ASCII whitespace and control characters inside a URL scheme
// ("java\tscript:"), so compare with them removed.
function compactUrl(value: string): string {
  return value.replace(/[\u0000-\u0020\u007f-\u009f]/g, "");
}

const RASTER_DATA_URL = /^data:image\/(?:png|gif|jpe?g|webp|bmp);base64,[a-z0-9+/=\s]*$/i;
// http(s) with or without slashes ("http:host" is "http://host" to a browser), or
// scheme-relative; browsers read "\" as "/" in such URLs ("\\host\a.png").
const REMOTE_URL = /^(?:https?:|[\\/]{2})/i;
const REMOTE_PREFIX = /^(https?:)?[\\/]*/i;

/** The URL a browser would load, as far as its scheme and host go. */
function absoluteRemote(url: string): string {
  const compact = compactUrl(url);
  const end = compact.search(/[?#]/);
  const head = (end < 0 ? compact : compact.slice(0, end)).replaceAll("\\", "/");
  const whole = end < 0 ? head : head + compact.slice(end);
  return whole.replace(
    REMOTE_PREFIX,
    (_, scheme: string | undefined) => `${(scheme ?? "https:").toLowerCase()}//`,
  );
}

/**
 * A `cid:` source as a browser reads it: tabs and line breaks removed, controls and spaces
 * trimmed at both ends, spaces inside kept. (`compactUrl` removes them all, which is right
 * for testing the scheme but turned `cid:scan 3@x` into `cid:scan3@x`, which names no part.)
 */
function cidSource(value: string): string {
  const colon = value.indexOf(":") + 1;
  const rest = value.slice(colon).replace(/[\t\n\r]/g, "");
  return compactUrl(value.slice(0, colon)) + rest.replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, "");
}

// Attributes whose URL a browser loads, on any element (href only outside links, below).
const LOADED_ATTRIBUTES = ["src", "poster", "background", "data", "lowsrc", "dynsrc", "xlink:href"];
const LINK_TAGS = new Set(["a", "area", "base"]);

/**
 * The URLs of a `srcset` (HTML's image candidate strings): a URL, then descriptors up to the
 * next comma. A URL may itself contain commas (not at its end), so it runs to whitespace.
 */
export function srcsetUrls(srcset: string): string[] {
  const urls: string[] = [];
  const gap = /[\s,]*/y;
  const word = /\S*/y;
  const descriptors = /(?:[^,(]|\([^)]*\)?)*/y;
  let i = 0;
  while (i < srcset.length) {
    gap.lastIndex = i;
    gap.exec(srcset);
    word.lastIndex = gap.lastIndex;
    const url = word.exec(srcset)![0];
    i = word.lastIndex;
    if (url === "") break;
    const bare = url.replace(/,+$/, "");
    if (bare.length === url.length) {
      // Descriptors ("2x", "100w") up to the next comma outside parentheses.
      descriptors.lastIndex = i;
      descriptors.exec(srcset);
      i = descriptors.lastIndex;
    }
    if (bare) urls.push(bare);
  }
  return urls;
}

/**
 * The URLs of a style sheet: `url(…)` and `@import "…"` (whose string is a URL too).
 * Linear: `styleUrls` for the first, one regex pass for the second.
 */
function styleSheetUrls(css: string): string[] {
  const urls = styleUrls(css);
  for (const m of css.matchAll(/@import\s*(["'])([^"'\n]*)\1/gi)) urls.push(m[2]!);
  return urls;
}

const STYLE_OPEN = /<style\b/gi;
const STYLE_CLOSE = /<\/style/gi;

/**
 * The text of every `<style>` element, found by a scan of the source, not the parse: the
 * sanitiser skips everything inside dropped elements such as `<head>`, where style sheets
 * usually are. One pass (each search starts where the previous element ended; a start tag
 * without its ">" ends the scan, as no later one can be complete); what it finds is only
 * listed, so text that merely looks like a style element costs nothing but a longer list.
 */
function styleElementTexts(html: string): string[] {
  const texts: string[] = [];
  let at = 0;
  for (;;) {
    STYLE_OPEN.lastIndex = at;
    if (!STYLE_OPEN.exec(html)) return texts;
    const gt = html.indexOf(">", STYLE_OPEN.lastIndex);
    if (gt < 0) return texts;
    STYLE_CLOSE.lastIndex = gt + 1;
    const close = STYLE_CLOSE.exec(html);
    texts.push(html.slice(gt + 1, close ? close.index : html.length));
    if (!close) return texts;
    at = STYLE_CLOSE.lastIndex;
  }
}

export function sanitizeHtml(input: string): SanitizedHtml {
  const remote: string[] = [];
  const cids: string[] = [];
  const seen = new Set<string>();
  const addRemote = (url: string): void => {
    if (!REMOTE_URL.test(compactUrl(url))) return;
    const u = absoluteRemote(url);
    if (!seen.has(u)) {
      seen.add(u);
      remote.push(u);
    }
  };
  if (/<style/i.test(input)) {
    for (const css of styleElementTexts(input)) for (const u of styleSheetUrls(css)) addRemote(u);
  }

  const options: IOptions = {
    allowedTags: ALLOWED_TAGS,
    allowedAttributes: ALLOWED_ATTRIBUTES,
    allowedStyles: ALLOWED_STYLES,
    allowedSchemes: ["http", "https", "mailto", "tel"],
    allowedSchemesByTag: { img: ["http", "https", "cid", "data"] },
    allowProtocolRelative: false,
    allowedClasses: {},
    disallowedTagsMode: "discard",
    // Content of these is never shown even though the tag is dropped.
    nonTextTags: [
      "script",
      "style",
      "textarea",
      "option",
      "xmp",
      "noscript",
      "noembed",
      "noframes",
      "title",
      "head",
    ],
    // An email's <html> may come after junk; never reset state on it (no boundary tricks).
    enforceHtmlBoundary: false,
    // Every tag the parser sees, also those inside dropped elements (<head>, <noscript>,
    // <svg>, <picture>, <video> …) whose own transforms never run: list what it would load.
    onOpenTag: (tagName, attribs) => {
      for (const a of LOADED_ATTRIBUTES) {
        const v = attribs[a];
        if (v !== undefined) addRemote(v);
      }
      if (attribs.href !== undefined && !LINK_TAGS.has(tagName)) addRemote(attribs.href);
      if (attribs.srcset !== undefined) for (const u of srcsetUrls(attribs.srcset)) addRemote(u);
      if (attribs.style !== undefined) for (const u of styleUrls(attribs.style)) addRemote(u);
    },
    transformTags: {
      "*": (tagName, attribs) => {
        const out: Record<string, string> = { ...attribs };
        // Legacy `background="…"` on table/td/body: listed above if remote; never shown
        // (a cid: one neither, so it is not in `cidRefs`).
        delete out.background;
        // (Comments out first: "/* x */DISPLAY:NONE" kept its name as written; second re-probe.)
        if (out.style !== undefined && /[A-Z]/.test(out.style)) {
          out.style = lowerCaseStyleNames(out.style.replace(/\/\*[\s\S]*?\*\//g, " "));
        }
        return { tagName, attribs: out };
      },
      img: (tagName, attribs) => {
        const out: Record<string, string> = { ...attribs };
        delete out["data-remote-src"];
        // srcset is not kept (each candidate would load); without a src its first
        // candidate stands in for it, as a browser would show it.
        const given =
          out.src !== undefined && compactUrl(out.src) !== ""
            ? out.src
            : out.srcset !== undefined
              ? (srcsetUrls(out.srcset)[0] ?? "")
              : "";
        delete out.srcset;
        const src = compactUrl(given);
        if (REMOTE_URL.test(src)) {
          out["data-remote-src"] = absoluteRemote(src);
          delete out.src;
        } else if (/^cid:/i.test(src)) {
          out.src = cidSource(given);
          pushCid(cids, out.src);
        } else if (RASTER_DATA_URL.test(src)) {
          out.src = src;
        } else {
          delete out.src;
        }
        return { tagName, attribs: out };
      },
      a: (tagName, attribs) => {
        const out: Record<string, string> = { ...attribs };
        const href = out.href === undefined ? "" : compactUrl(out.href);
        if (/^(?:https?:\/\/|mailto:|tel:)/i.test(href)) {
          out.target = "_blank";
          out.rel = "noopener noreferrer nofollow";
        } else if (!/^#/.test(href)) {
          delete out.href;
          delete out.target;
          delete out.rel;
        }
        return { tagName, attribs: out };
      },
    },
  };

  const html = sanitize(input, options);
  return { html, remoteResources: remote, cidRefs: cids };
}

function pushCid(cids: string[], src: string): void {
  const id = contentIdOfCidUrl(src);
  if (id && !cids.includes(id)) cids.push(id);
}

/** RFC 2392: a `cid:` URL is the Content-ID URL-escaped, without its angle brackets. */
export function contentIdOfCidUrl(src: string): string {
  let id = src.slice(4);
  try {
    id = decodeURIComponent(id);
  } catch {
    // keep the raw form: a malformed escape cannot match any Content-ID anyway
  }
  return id.replace(/^<|>$/g, "");
}

/**
 * A Content-ID as `cid:` references are matched against it: trimmed, without angle
 * brackets, lower-cased (RFC 2392 ids are compared case-insensitively in practice: mail
 * clients write `cid:IMAGE001.PNG@…` for `<image001.png@…>`). The one comparison for
 * `inlineHtml` (attachment-links.ts) and the parser's `inline` flag.
 */
export function normaliseContentId(id: string): string {
  return id.trim().replace(/^<|>$/g, "").toLowerCase();
}

/**
 * The `url(…)` references of a style attribute, in one pass: the regex
 * `/url\(\s*(['"]?)(.*?)\1\s*\)/gi` it replaces took time quadratic in the number of
 * `url(` left unclosed (a 160 KB style: a parse timeout). Quoted (the URL runs to the same
 * quote, then to the ")") or bare (to the first ")"); an unclosed one ends the scan, since
 * no later one could be closed either. (Only for flagging remote resources: `url()` values
 * never pass the style filter.)
 */
export function styleUrls(style: string): string[] {
  const urls: string[] = [];
  const lower = style.toLowerCase();
  let at = 0;
  for (;;) {
    const open = lower.indexOf("url(", at);
    if (open < 0) return urls;
    let i = open + 4;
    while (i < style.length && /\s/.test(style[i]!)) i++;
    const quote = style[i] === '"' || style[i] === "'" ? style[i]! : null;
    const endQuote = quote ? style.indexOf(quote, i + 1) : -1;
    const quotedClose = endQuote < 0 ? -1 : style.indexOf(")", endQuote + 1);
    if (quotedClose >= 0) {
      urls.push(style.slice(i + 1, endQuote));
      at = quotedClose + 1;
      continue;
    }
    // Bare, or a quote that is not closed before a ")": up to the first ")".
    const close = style.indexOf(")", i);
    if (close < 0) return urls;
    urls.push(style.slice(i, close).trim());
    at = close + 1;
  }
}
