import { describe, expect, it } from "vitest";
import { sanitizeHtml } from "../../src/engine/ingest/sanitize.js";
import type { ComposeInput, PreviousMessage } from "../../src/engine/outbound/compose.js";
import { compose } from "../../src/engine/outbound/compose.js";
import { htmlToText, sanitizeContentHtml } from "../../src/engine/outbound/html.js";
import { withoutClientQuoteHtml, withoutClientQuoteText } from "../../src/engine/outbound/quotes.js";

/**
 * The quote a customer's mail client appends below their answer (usually our previous
 * reply, with the whole history) is cut when their message is quoted in our next reply.
 * Fixtures follow what Gmail, Apple Mail, Thunderbird and Outlook write; HTML goes through
 * the ingest sanitiser first, as stored (class and id are dropped there).
 */

/** HTML as a reply quotes it: sanitised at ingest, then with the outbound allow-list. */
const stored = (html: string) => sanitizeContentHtml(sanitizeHtml(html).html);
const htmlCut = (html: string) => withoutClientQuoteHtml(stored(html));
const textOfHtml = (html: string) =>
  html
    .replace(/<[^>]*>/g, " ")
    .replace(/&nbsp;|\s+/g, " ")
    .trim();

const OUR_REPLY_TEXT = [
  "Please try this (agent-answer-01).",
  "Then restart.",
  "",
  "-- ",
  "Cheers, Ann Agent (ACME Corp)",
  "",
  "On 2026-03-02 09:00, Carla <carla@customer.example> wrote:",
  "> Still jammed.",
].join("\n");
const quoted = (text: string, prefix = "> ") =>
  text
    .split("\n")
    .map((l) => (l.startsWith(">") ? `>${l}` : `${prefix}${l}`.trimEnd()))
    .join("\n");

describe("client quotes in plain text", () => {
  it.each([
    [
      "Gmail",
      `Thanks, that fixed it.\n\nOn Mon, Mar 2, 2026 at 9:10 AM ACME Support <history@acme.test> wrote:\n\n${quoted(OUR_REPLY_TEXT)}\n`,
      "Thanks, that fixed it.",
    ],
    [
      "Gmail, attribution wrapped inside the address",
      `Thanks\nand bye.\n\nOn Mon, Mar 2, 2026 at 9:10 AM ACME Support Team of Example Corp <\nhistory@acme.test> wrote:\n\n${quoted(OUR_REPLY_TEXT)}\n\n\n`,
      "Thanks\nand bye.",
    ],
    [
      "Gmail, German",
      `Danke!\n\nAm Mo., 2. März 2026 um 09:10 Uhr schrieb ACME Support <\nhistory@acme.test>:\n\n${quoted(OUR_REPLY_TEXT)}`,
      "Danke!",
    ],
    [
      "Gmail, French (no-break space before the colon)",
      `Merci.\n\nLe lun. 2 mars 2026 à 09:10, ACME Support <history@acme.test> a écrit\u00a0:\n\n${quoted(OUR_REPLY_TEXT)}`,
      "Merci.",
    ],
    [
      "Apple Mail (attribution inside the quote)",
      `Works now.\n\nSent from my iPhone\n\n> On 2 Mar 2026, at 09:10, ACME Support <history@acme.test> wrote:\n> \n${quoted(OUR_REPLY_TEXT)}\n`,
      "Works now.\n\nSent from my iPhone",
    ],
    ["Thunderbird", `Done.\n\nOn 3/2/26 9:10 AM, ACME Support wrote:\n${quoted(OUR_REPLY_TEXT)}\n`, "Done."],
    [
      "Thunderbird, German",
      `Erledigt.\n\nAm 02.03.26 um 09:10 schrieb ACME Support:\n${quoted(OUR_REPLY_TEXT)}\n`,
      "Erledigt.",
    ],
    [
      "bare attribution with an address",
      `Done.\nACME Support <history@acme.test> wrote:\n${quoted(OUR_REPLY_TEXT)}`,
      "Done.",
    ],
    [
      "Outlook, underscore separator",
      `Still broken.\n\nGet Outlook for iOS\n________________________________\nFrom: ACME Support <history@acme.test>\nSent: Monday, March 2, 2026 9:10:00 AM\nTo: Carla <carla@customer.example>\nSubject: Re: Paper jam [#7]\n\n${OUR_REPLY_TEXT}\n`,
      "Still broken.\n\nGet Outlook for iOS",
    ],
    [
      "Outlook, -----Original Message-----",
      `Still broken.\r\n\r\n-----Original Message-----\r\nFrom: ACME Support [mailto:history@acme.test]\r\nSent: Monday, March 2, 2026 9:10 AM\r\nTo: Carla\r\nSubject: RE: Paper jam [#7]\r\n\r\n${OUR_REPLY_TEXT}`,
      "Still broken.",
    ],
    [
      "Outlook, German",
      `Geht nicht.\n\n-----Ursprüngliche Nachricht-----\nVon: ACME Support <history@acme.test>\nGesendet: Montag, 2. März 2026 09:10\nAn: Carla\nBetreff: AW: Papierstau [#7]\n\n${OUR_REPLY_TEXT}`,
      "Geht nicht.",
    ],
    [
      "Outlook desktop, header block without a separator",
      `Still broken.\n\nFrom: ACME Support <history@acme.test> \nSent: Monday, March 2, 2026 9:10 AM\nTo: Carla <carla@customer.example>\nSubject: RE: Paper jam [#7]\n\n${OUR_REPLY_TEXT}`,
      "Still broken.",
    ],
    [
      "Outlook desktop, German header block",
      `Geht nicht.\n\nVon: ACME Support <history@acme.test>\nGesendet: Montag, 2. März 2026 09:10\nAn: Carla\nBetreff: AW: Papierstau [#7]\n\n${OUR_REPLY_TEXT}`,
      "Geht nicht.",
    ],
    [
      "Outlook quoting a Gmail quote: the outer quote wins",
      `Outer.\n\n________________________________\nFrom: Bob <bob@customer.example>\nSent: Monday, March 2, 2026 9:10 AM\nSubject: Re: x\n\nInner.\n\nOn Mon, Mar 2, 2026 at 9:10 AM ACME Support <history@acme.test> wrote:\n> old`,
      "Outer.",
    ],
  ])("%s: keeps only the customer's text", (_client, text, kept) => {
    expect(withoutClientQuoteText(text)).toBe(kept);
  });

  it.each([
    [
      "interleaved answers",
      "On Mon, Mar 2, 2026 at 9:10 AM ACME Support <history@acme.test> wrote:\n> Which tray?\nTray 2.\n\n> Which model?\nThe X200.\n",
    ],
    [
      "a bottom-posted answer",
      "On Mon, Mar 2, 2026 at 9:10 AM ACME Support <history@acme.test> wrote:\n> Please restart.\n\nDid that, still jammed.",
    ],
    [
      "interleaved, ending with a quote that has no attribution",
      "Hello,\n\nOn Mon, Mar 2, 2026 at 9:10 AM ACME Support <history@acme.test> wrote:\n> Which tray?\nTray 2.\n> Thanks for your patience.",
    ],
    ["> lines in the middle", "The display shows:\n> Error 42\n> Call service\n\nWhat should I do?"],
    ["> lines at the end without an attribution", "The display shows:\n\n> Error 42\n> Call service\n"],
    [
      '"wrote:" in the body, no quote',
      "As your colleague wrote: restart it.\nOn Monday I wrote:\nnothing works.\n\nOn 2 Mar 2026, Bob wrote:",
    ],
    [
      "a quote introduced by the customer's own words",
      "Hi,\n\nMy colleague wrote:\n> The printer is broken.",
    ],
    [
      "nothing but a quote",
      "\nOn Mon, Mar 2, 2026 at 9:10 AM ACME Support <history@acme.test> wrote:\n> Please restart.\n",
    ],
    [
      "From: and To: lines of the customer's own",
      "Hi\n\nFrom: my office\nTo: your team\nThe printer is broken.",
    ],
    ["an underscore line without a header block", "Hi\n________________________________\nMy notes follow.\n"],
  ])("%s: kept whole", (_case, text) => {
    expect(withoutClientQuoteText(text)).toBeNull();
  });
});

// What Gmail, Thunderbird, Apple Mail and Outlook put in text/html (trimmed to structure).
const GMAIL_HTML = (own: string, ourHtml: string) =>
  `<div dir="ltr">${own}</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Mar 2, 2026 at 9:10 AM ACME Support &lt;<a href="mailto:history@acme.test">history@acme.test</a>&gt; wrote:<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex">${ourHtml}</blockquote></div>\n`;
const OUR_REPLY_HTML =
  '<div class="brand-frame"><p>Please try this (agent-answer-01).<br>Then restart.</p><div class="sb-quote"><p>On 2026-03-02 09:00, Carla wrote:</p><blockquote type="cite"><p>Still jammed.</p></blockquote></div></div><p>ACME footer</p>';

describe("client quotes in sanitised HTML", () => {
  it.each([
    ["Gmail", GMAIL_HTML("Thanks, <b>that</b> fixed it.", OUR_REPLY_HTML), "Thanks, that fixed it."],
    [
      "Gmail, German",
      `<div dir="ltr">Danke!</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">Am Mo., 2. März 2026 um 09:10&nbsp;Uhr schrieb ACME Support &lt;<a href="mailto:history@acme.test">history@acme.test</a>&gt;:<br></div><blockquote class="gmail_quote">${OUR_REPLY_HTML}</blockquote></div>`,
      "Danke!",
    ],
    [
      "Thunderbird",
      `<html><head><meta http-equiv="content-type" content="text/html; charset=UTF-8"></head><body><p>Done.</p><div class="moz-cite-prefix">On 3/2/26 9:10 AM, ACME Support wrote:<br></div><blockquote type="cite" cite="mid:r1@mail.acme.test">${OUR_REPLY_HTML}</blockquote><br></body></html>`,
      "Done.",
    ],
    [
      "Thunderbird, attribution in the same block as the text",
      `<div>Done.<br><br>Le 02/03/2026 à 09:10, ACME Support a écrit&nbsp;:<br></div><blockquote type="cite">${OUR_REPLY_HTML}</blockquote>`,
      "Done.",
    ],
    [
      "Apple Mail (attribution inside the blockquote)",
      `<html><head><meta http-equiv="content-type" content="text/html; charset=utf-8"></head><body style="overflow-wrap: break-word; -webkit-nbsp-mode: space; line-break: after-white-space;"><div>Works now.</div><div><br></div><div><div><br><blockquote type="cite"><div>On 2 Mar 2026, at 09:10, ACME Support &lt;history@acme.test&gt; wrote:</div><br class="Apple-interchange-newline"><div><div>${OUR_REPLY_HTML}</div></div></blockquote></div><br></div></body></html>`,
      "Works now.",
    ],
    [
      "Outlook desktop (border-top block)",
      `<html><body lang="EN-US"><div class="WordSection1"><p class="MsoNormal">Still broken.<o:p></o:p></p><p class="MsoNormal"><o:p>&nbsp;</o:p></p><div><div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in"><p class="MsoNormal"><b>From:</b> ACME Support &lt;history@acme.test&gt; <br><b>Sent:</b> Monday, March 2, 2026 9:10 AM<br><b>To:</b> Carla &lt;carla@customer.example&gt;<br><b>Subject:</b> RE: Paper jam [#7]<o:p></o:p></p></div></div><p class="MsoNormal">&nbsp;</p>${OUR_REPLY_HTML}</div></body></html>`,
      "Still broken.",
    ],
    [
      "Outlook on the web (hr)",
      `<div dir="ltr">Still broken.</div><div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" style="font-size:11pt" color="#000000"><b>From:</b> ACME Support &lt;history@acme.test&gt;<br><b>Sent:</b> Monday, March 2, 2026 9:10 AM<br><b>To:</b> Carla<br><b>Subject:</b> Re: Paper jam [#7]</font><div>&nbsp;</div></div>${OUR_REPLY_HTML}`,
      "Still broken.",
    ],
    [
      "Outlook, German",
      `<div><p>Geht nicht.</p><div style="border:none;border-top:solid #B5C4DF 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p><b>Von:</b> ACME Support &lt;history@acme.test&gt;<br><b>Gesendet:</b> Montag, 2. März 2026 09:10<br><b>An:</b> Carla<br><b>Betreff:</b> AW: Papierstau</p></div>${OUR_REPLY_HTML}</div>`,
      "Geht nicht.",
    ],
  ])("%s: keeps only the customer's text", (_client, html, kept) => {
    const cut = htmlCut(html);
    expect(cut).not.toBeNull();
    expect(textOfHtml(cut!)).toBe(kept);
    // Still a balanced, sanitised fragment.
    expect(sanitizeContentHtml(cut!)).toBe(cut);
  });

  it("keeps the customer's formatting", () => {
    expect(htmlCut(GMAIL_HTML('Thanks, <b>that</b> <a href="https://x.example/">fixed</a> it.', "old"))).toBe(
      '<div dir="ltr">Thanks, <b>that</b> <a href="https://x.example/" target="_blank">fixed</a> it.</div>',
    );
  });

  it.each([
    [
      "Thunderbird, interleaved answers",
      `<div class="moz-cite-prefix">On 3/2/26 9:10 AM, ACME Support wrote:<br></div><blockquote type="cite">Which tray?</blockquote><p>Tray 2.</p><blockquote type="cite">Which model?</blockquote><p>The X200.</p>`,
    ],
    [
      "interleaved, ending with a quote",
      `<div>On 3/2/26 9:10 AM, ACME Support wrote:<br></div><blockquote type="cite">Which tray?</blockquote><p>Tray 2.</p><blockquote type="cite">Thanks for your patience.</blockquote>`,
    ],
    [
      "a blockquote in the middle",
      "<p>The display shows:</p><blockquote>Error 42</blockquote><p>What now?</p>",
    ],
    [
      "a trailing blockquote without an attribution",
      "<p>The display shows:</p><blockquote>Error 42</blockquote>",
    ],
    ['"wrote:" in the body, no quote', "<p>Hi,</p><p>On 2 Mar 2026, Bob wrote:</p><p>nothing works.</p>"],
    [
      "nothing but a quote",
      `<div>On 3/2/26 9:10 AM, ACME Support wrote:<br></div><blockquote type="cite">${OUR_REPLY_HTML}</blockquote>`,
    ],
    ["an hr of the customer's own", "<p>Part one</p><hr><p>From: my office</p><p>Part two</p>"],
  ])("%s: kept whole", (_case, html) => {
    expect(htmlCut(html)).toBeNull();
  });
});

describe("quoting an inbound message in a reply", () => {
  const customer = (text: string | null, html: string | null): PreviousMessage => ({
    messageId: "<c2@customer.example>",
    from: { name: "Carla", address: "carla@customer.example" },
    date: new Date("2026-03-02T10:00:00Z"),
    text,
    html,
  });
  const reply = (m: PreviousMessage, kind: ComposeInput["kind"] = "REPLY") =>
    compose({
      kind,
      address: {
        displayName: "ACME Support",
        fromAddress: "history@acme.test",
        replyTo: [],
        bcc: [],
        ticketFormat: { placement: "END", delimiter: "SQUARE" },
        signaturePolicy: "NONE",
        historyPolicy: "ALWAYS",
        templateHtml: null,
      },
      subjectOptions: { appendTicketOnFirstReply: false, agentsMayEditSubject: false },
      conversation: { ticketNumber: 7, subject: "Paper jam", isFirstReply: false, messages: [m] },
      agent: { name: "Ann", alias: null, email: "ann@acme.test" },
      companyName: "ACME",
      signature: null,
      body: { html: "<p>new-answer</p>" },
      recipients: kind === "FORWARD" ? { to: [{ address: "expert@partner.example" }] } : undefined,
      messageIdDomain: "mail.acme.test",
      now: new Date("2026-03-02T11:00:00Z"),
      randomId: () => "r2",
    });
  const gmailText = `Thanks (customer-note).\n\nOn Mon, Mar 2, 2026 at 9:10 AM ACME Support <history@acme.test> wrote:\n\n${quoted(OUR_REPLY_TEXT)}\n`;

  it("quotes what the customer wrote, in both parts", () => {
    const mail = reply(customer(gmailText, stored(GMAIL_HTML("Thanks (customer-note).", OUR_REPLY_HTML))));
    expect(mail.text).toContain("> Thanks (customer-note).");
    expect(mail.html).toContain("Thanks (customer-note).");
    for (const part of [mail.text, mail.html!]) {
      expect(part).not.toContain("agent-answer-01");
      expect(part).not.toContain("Still jammed");
      expect(part).not.toContain("9:10 AM");
    }
  });

  it("HTML whose quote is not recognised is rebuilt from the cut text", () => {
    // A client that marks its quote with > in HTML paragraphs instead of a blockquote.
    const html = `<p>Thanks (customer-note).</p><p>On Mon, Mar 2, 2026 at 9:10 AM ACME Support wrote:</p><p>&gt; Please try this (agent-answer-01).</p>`;
    const mail = reply(customer(gmailText, stored(html)));
    expect(mail.html).toContain("<p>Thanks (customer-note).</p></blockquote>");
    expect(mail.html).not.toContain("agent-answer-01");
  });

  it.each([
    ["no text", false],
    ["text derived from the HTML at ingest", true],
  ])("HTML-only mail (%s): the quote is cut from both parts", (_case, derived) => {
    const html = stored(GMAIL_HTML("Thanks (customer-note).", OUR_REPLY_HTML));
    const mail = reply(customer(derived ? htmlToText(html) : null, html));
    expect(mail.text).toContain("> Thanks (customer-note).");
    for (const part of [mail.text, mail.html!]) expect(part).not.toContain("agent-answer-01");
  });

  it("a forward carries the message whole", () => {
    const mail = reply(customer(gmailText, null), "FORWARD");
    expect(mail.text).toContain("agent-answer-01");
  });
});

describe("Outlook quotes with the message's subject: only a header block of this conversation is a quote", () => {
  const pasted =
    "Hi, see what the courier told me:\n\n-----Original Message-----\nFrom: Courier <noreply@courier.example>\n" +
    "Sent: Monday, March 2, 2026 9:10 AM\nTo: Carla\nSubject: Delivery failed\n\nWe could not deliver.\n\n" +
    "MY OWN QUESTION: can you resend it?";
  const reply =
    "Still broken.\n\n-----Original Message-----\nFrom: ACME Support [mailto:history@acme.test]\n" +
    "Sent: Monday, March 2, 2026 9:10 AM\nTo: Carla\nSubject: RE: Paper jam [#7]\n\nPlease try this.";

  it("cuts a header block naming this conversation's subject (prefixes, ticket and case aside)", () => {
    expect(withoutClientQuoteText(reply, "AW: Re: paper JAM [#7]")).toBe("Still broken.");
    expect(withoutClientQuoteText(reply, "Paper jam")).toBe("Still broken.");
  });

  it("keeps a pasted or forwarded mail of another subject whole, with the customer's text after it", () => {
    expect(withoutClientQuoteText(pasted, "Re: Paper jam [#7]")).toBeNull();
    const noSeparator = pasted.replace("-----Original Message-----\n", "");
    expect(withoutClientQuoteText(noSeparator, "Re: Paper jam [#7]")).toBeNull();
    const html = stored(
      "<p>Hi, see below.</p><hr><p><b>From:</b> Courier<br><b>Sent:</b> Monday, March 2, 2026 9:10 AM<br>" +
        "<b>Subject:</b> Delivery failed</p><p>We could not deliver.</p><p>MY OWN QUESTION: can you resend it?</p>",
    );
    expect(withoutClientQuoteHtml(html, "Re: Paper jam [#7]")).toBeNull();
    const ours = stored(
      "<p>Still broken.</p><hr><p><b>From:</b> ACME<br><b>Sent:</b> Monday, March 2, 2026 9:10 AM<br>" +
        "<b>Subject:</b> RE: Paper jam [#7]</p><p>Please try this.</p>",
    );
    expect(textOfHtml(withoutClientQuoteHtml(ours, "RE: RE: Paper jam [#7]")!)).toBe("Still broken.");
  });

  it("an empty subject never makes a header block a quote", () => {
    expect(withoutClientQuoteText(reply, "")).toBeNull();
  });
});
