import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import fc from "fast-check";
import MailComposer from "nodemailer/lib/mail-composer";
import MimeNode from "nodemailer/lib/mime-node";
import { describe, expect, it } from "vitest";
import { buildRawMime, toComposerOptions, writeMimeTree } from "../../src/connectors/smtp-out.js";
import type { ComposedMail } from "../../src/engine/outbound/compose.js";

/**
 * `writeMimeTree` writes nodemailer's MIME tree without its streams; the bytes must be the
 * ones nodemailer's own `build()` writes for the same tree — every header, boundary,
 * transfer encoding and line break.
 */

function mail(overrides: Partial<ComposedMail> = {}): ComposedMail {
  return {
    messageId: "<r-1@mail.acme.example>",
    date: new Date("2024-03-02T10:00:00Z"),
    from: { name: "ACME Support", address: "support@acme.example" },
    replyTo: [{ name: "", address: "desk@acme.example" }],
    to: [{ name: "Carla Customer", address: "carla@customer.example" }],
    cc: [],
    bcc: [{ name: "", address: "audit@acme.example" }],
    subject: "Re: Broken widget [#42]",
    inReplyTo: "<cust-2@customer.example>",
    references: ["<root@acme.example>", "<cust-2@customer.example>"],
    text: "Thanks, we are on it.",
    html: "<p>Thanks, we are on it.</p>",
    attachments: [],
    headers: { "X-Switchboard-Ticket": "42" },
    ...overrides,
  } as ComposedMail;
}

/** Both builders on two trees compiled from the same options (same boundaries). */
async function both(m: ComposedMail): Promise<{ fast: Buffer | null; streamed: Buffer }> {
  const opts = toComposerOptions(m);
  const fast = writeMimeTree(new MailComposer(opts).compile() as never);
  const streamed = await new MailComposer(opts).compile().build();
  return { fast, streamed };
}

const LONG = `${"word ".repeat(40)}end`;

const CASES: [string, Partial<ComposedMail>][] = [
  ["a plain ASCII reply with an HTML alternative", {}],
  ["text only", { html: null }],
  [
    "non-ASCII text and subject (quoted-printable or base64)",
    {
      subject: "Re: Grüße aus Köln 🎉",
      text: "Grüße,\nIhr Paket ist unterwegs. 👍",
      html: "<p>Grüße,</p><p>Ihr Paket ist unterwegs. 👍</p>",
      to: [{ name: "Jürgen Müller", address: "juergen@kunde.example" }],
    },
  ],
  ["mostly non-Latin text (base64 is shorter)", { text: "こんにちは。".repeat(30), html: null }],
  ["lines longer than 76 characters", { text: `${LONG}\n${LONG}`, html: `<p>${LONG}</p>` }],
  ["trailing whitespace, CR-only and LF-only line ends", { text: "a  \nb\t\r\nc\rd \r\n \n", html: null }],
  ["an empty text part", { text: "", html: "<p>x</p>" }],
  [
    "attachments: binary, text, empty and inline",
    {
      attachments: [
        {
          filename: "data.bin",
          contentType: "application/octet-stream",
          content: Buffer.from([0, 1, 2, 13, 10, 255, 254]),
          contentId: undefined,
          inline: false,
        },
        {
          filename: "notes.txt",
          contentType: "text/plain",
          content: Buffer.from("line one\rline two\nümlaut"),
          contentId: undefined,
          inline: false,
        },
        {
          filename: "empty.txt",
          contentType: "text/plain",
          content: Buffer.alloc(0),
          contentId: undefined,
          inline: false,
        },
        {
          filename: "logo.png",
          contentType: "image/png",
          content: Buffer.alloc(300, 7),
          contentId: "logo@acme",
          inline: true,
        },
        {
          filename: "Prüfbericht ä.pdf",
          contentType: "application/pdf",
          content: Buffer.alloc(5000, 65),
          contentId: undefined,
          inline: false,
        },
      ],
    },
  ],
];

describe("writeMimeTree: the bytes of nodemailer's build()", () => {
  for (const [name, overrides] of CASES) {
    it(name, async () => {
      const { fast, streamed } = await both(mail(overrides));
      expect(fast).not.toBeNull();
      expect(fast!.toString("latin1")).toBe(streamed.toString("latin1"));
    });
  }

  it("for any text, HTML, subject, names and attachments", async () => {
    const text = fc.string({ unit: "grapheme", maxLength: 300 });
    await fc.assert(
      fc.asyncProperty(
        text,
        fc.option(text, { nil: null }),
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 80 }),
        fc.string({ unit: "grapheme", maxLength: 30 }),
        fc.array(
          fc.record({
            content: fc.uint8Array({ maxLength: 400 }),
            contentType: fc.constantFrom("text/plain", "application/octet-stream", "image/png", "text/html"),
            inline: fc.boolean(),
          }),
          { maxLength: 3 },
        ),
        async (t, html, subject, name, files) => {
          const { fast, streamed } = await both(
            mail({
              text: t,
              html,
              subject,
              to: [{ name, address: "carla@customer.example" }],
              attachments: files.map((f, i) => ({
                filename: `f${i}`,
                contentType: f.contentType,
                content: Buffer.from(f.content),
                contentId: f.inline ? `f${i}@acme` : undefined,
                inline: f.inline,
              })),
            }),
          );
          expect(fast?.toString("latin1")).toBe(streamed.toString("latin1"));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("leaves a tree with stream content to build(), and buildRawMime still writes it", async () => {
    const body = new PassThrough();
    body.end("streamed body");
    const tree = new MailComposer({ ...toComposerOptions(mail()), text: body }).compile();
    expect(writeMimeTree(tree as never)).toBeNull();
    const raw = (await tree.build()).toString("utf8");
    expect(raw).toContain("streamed body");
    expect((await buildRawMime(mail())).toString("utf8")).toContain("Thanks, we are on it.");
  });
});

/**
 * scripts/patch-deps.mjs memoises nodemailer's header-name normalisation: a memoised name
 * must be the one the original function computes for that string, every time — including
 * names that differ only in case or in characters the function drops.
 */
describe("nodemailer header key memo (patch-deps)", () => {
  type Normalizer = { _normalizeHeaderKey(k: unknown): string; _normalizeHeaderKeyOnce(k: unknown): string };

  it("is applied to the installed nodemailer (ESM and CommonJS builds)", () => {
    const pkg = dirname(dirname(dirname(createRequire(import.meta.url).resolve("nodemailer"))));
    for (const rel of ["dist/esm/mime-node/index.js", "dist/cjs/mime-node/index.js"]) {
      expect(readFileSync(join(pkg, rel), "utf8")).toContain("switchboard: header key memo");
    }
  });

  it("returns what the unmemoised normalisation returns, on first and repeated use", () => {
    const node = new MimeNode("text/plain") as unknown as Normalizer;
    const fixed = [
      "content-type",
      "CONTENT-TYPE",
      "mime-version",
      "x-smtpapi",
      "dkim-signature",
      "list-id",
      "content-features",
      "x-foo-spf",
      "From: ceo@example.com (",
      "otp-token",
      "x\u0000y",
      "",
    ];
    for (const k of fixed) {
      const want = node._normalizeHeaderKeyOnce(k);
      expect(node._normalizeHeaderKey(k)).toBe(want);
      expect(node._normalizeHeaderKey(k)).toBe(want);
    }
    expect(node._normalizeHeaderKey(undefined)).toBe(node._normalizeHeaderKeyOnce(undefined));
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 12 }), { minLength: 1, maxLength: 40 }), (keys) => {
        for (const k of [...keys, ...keys.map((x) => x.toUpperCase()), ...keys]) {
          if (node._normalizeHeaderKey(k) !== node._normalizeHeaderKeyOnce(k)) return false;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
