import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sanitizeHtml } from "../../src/engine/ingest/sanitize.js";
import { sanitizeContentHtml } from "../../src/engine/outbound/html.js";
import { withoutClientQuoteHtml, withoutClientQuoteText } from "../../src/engine/outbound/quotes.js";
import { startTestApp, type TestApp } from "../helpers/app.js";

const stored = (html: string) => sanitizeContentHtml(sanitizeHtml(html).html);

describe("quotes: customer's own text after a non-trailing Outlook block", () => {
  it("text: customer writes after a pasted/forwarded Outlook header block", () => {
    const text = [
      "Hi, see what the courier told me:",
      "",
      "-----Original Message-----",
      "From: Courier Ltd",
      "Sent: Monday, 2 March 2026 09:00",
      "Subject: Delivery 123",
      "",
      "We could not deliver parcel 123.",
      "",
      "MY OWN QUESTION: when will you resend it? Order 4711.",
    ].join("\n");
    const cut = withoutClientQuoteText(text);
    console.log("TEXT CUT =>", JSON.stringify(cut));
    expect(cut).toContain("MY OWN QUESTION");
  });
  it("text: header-like block with no separator (strict) mid-message", () => {
    const text = [
      "Here are the shipping details you asked for:",
      "",
      "From: Berlin warehouse",
      "Sent: by courier on Monday",
      "Subject: parcel 123",
      "",
      "PLEASE CONFIRM RECEIPT, this is my actual request.",
    ].join("\n");
    const cut = withoutClientQuoteText(text);
    console.log("STRICT CUT =>", JSON.stringify(cut));
    expect(cut).toContain("PLEASE CONFIRM");
  });
  it("html: <hr> + From/Date mid-message then customer text", () => {
    const html = stored(
      "<p>Hi, see below.</p><hr><p><b>From:</b> Courier<br><b>Sent:</b> Monday<br><b>Subject:</b> x</p>" +
        "<p>We could not deliver.</p><p>MY OWN QUESTION: when will you resend?</p>",
    );
    const cut = withoutClientQuoteHtml(html);
    console.log("HTML CUT =>", cut);
    expect(cut === null || cut.includes("MY OWN QUESTION")).toBe(true);
  });
});

describe("attachments route", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t?.stop();
  });
  it("a non-UUID id that the route regex accepts with a well-formed signature is a 404, not 500", async () => {
    const base = new URL(t.url).origin;
    const bad = "-".repeat(36);
    const sig = "A".repeat(43);
    const res = await fetch(`${base}/attachments/${bad}?expires=99999999999&signature=${sig}`);
    console.log("status", res.status, await res.text());
    expect(res.status).toBe(404);
    const res2 = await fetch(`${base}/attachments/${bad}`, { headers: { authorization: `Bearer ${t.adminKey}` } });
    console.log("status with key", res2.status);
  });
});
