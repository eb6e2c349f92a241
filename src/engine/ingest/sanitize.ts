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
 *   opening a mail never pings a tracker unless the client opts in;
 * - `background` attributes and CSS `url()` are remote resources too: listed, removed;
 * - inline style: a safe subset of properties with plain values (no `url()`,
 *   `expression()`, escapes, `position`, `behavior`…);
 * - `id`, `name` and `class` are dropped: they would let the mail clobber DOM globals
 *   or pick up the host application's CSS.
 */

export interface SanitizedHtml {
  html: string;
  /** http(s) URLs of images/backgrounds the mail wanted to load, de-duplicated. */
  remoteResources: string[];
  /** Content-IDs referenced by `cid:` sources, without the scheme, de-duplicated. */
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

const ALLOWED_STYLES: Record<string, Record<string, RegExp[]>> = {
  "*": {
    ...Object.fromEntries(SAFE_STYLE_PROPERTIES.map((p) => [p, SAFE])),
    display: DISPLAY,
  },
};

// Browsers ignore ASCII whitespace and control characters inside a URL scheme
// ("java\tscript:"), so compare with them removed.
function compactUrl(value: string): string {
  return value.replace(/[\u0000-\u0020\u007f-\u009f]/g, "");
}

const RASTER_DATA_URL = /^data:image\/(?:png|gif|jpe?g|webp|bmp);base64,[a-z0-9+/=\s]*$/i;
const REMOTE_URL = /^(?:https?:)?\/\//i;

function absoluteRemote(url: string): string {
  const compact = compactUrl(url);
  return compact.startsWith("//") ? `https:${compact}` : compact;
}

export function sanitizeHtml(input: string): SanitizedHtml {
  const remote: string[] = [];
  const cids: string[] = [];
  const addRemote = (url: string): void => {
    const u = absoluteRemote(url);
    if (!remote.includes(u)) remote.push(u);
  };

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
    transformTags: {
      "*": (tagName, attribs) => {
        const out: Record<string, string> = { ...attribs };
        // Legacy `background="…"` on table/td/body: a remote (or cid) resource.
        if (out.background !== undefined) {
          const bg = compactUrl(out.background);
          if (REMOTE_URL.test(bg)) addRemote(bg);
          else if (/^cid:/i.test(bg)) pushCid(cids, bg);
          delete out.background;
        }
        if (out.style !== undefined) {
          for (const u of styleUrls(out.style)) {
            if (REMOTE_URL.test(compactUrl(u))) addRemote(u);
          }
        }
        return { tagName, attribs: out };
      },
      img: (tagName, attribs) => {
        const out: Record<string, string> = { ...attribs };
        delete out["data-remote-src"];
        const src = out.src === undefined ? "" : compactUrl(out.src);
        if (REMOTE_URL.test(src)) {
          addRemote(src);
          out["data-remote-src"] = absoluteRemote(src);
          delete out.src;
        } else if (/^cid:/i.test(src)) {
          pushCid(cids, src);
          out.src = src;
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
