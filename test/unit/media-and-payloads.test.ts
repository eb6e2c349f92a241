import { describe, expect, it } from "vitest";
import { withoutDataPayloads } from "../../src/connectors/mime/mime-to-parsed.js";
import { mediaTypeOrOctetStream } from "../../src/engine/media-type.js";

// Two details a comparison of the corpus and samples before and after session 16 found.

describe("mediaTypeOrOctetStream", () => {
  it.each([
    ["image/png", "image/png"],
    ["IMAGE/PNG", "image/png"],
    // RFC 2045 §5.1 allows comments and blanks; they were taken as part of the type.
    ["image/png (Portable Network Graphics)", "image/png"],
    ["image / png", "image/png"],
    ["image/png (a (nested) comment)", "image/png"],
    [
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ],
    ["image/p€ng", "application/octet-stream"],
    ["image", "application/octet-stream"],
    ["text/html\r\nX-Injected: 1", "application/octet-stream"],
    [null, "application/octet-stream"],
  ])("%j → %j", (given, expected) => {
    expect(mediaTypeOrOctetStream(given)).toBe(expected);
  });
});

describe("withoutDataPayloads", () => {
  it("leaves out the payloads of data: URIs in attribute values", () => {
    expect(withoutDataPayloads('<img src="data:image/png;base64,iVBORw0KGgo=">x')).toBe(
      '<img src="data:image/png;base64,">x',
    );
    expect(withoutDataPayloads("<img src=data:image/png;base64,iVBORw0KGgo= alt=x>")).toBe(
      "<img src=data:image/png;base64, alt=x>",
    );
  });

  it("finds the tag however long its attributes before the payload (second re-probe)", () => {
    const attrs = `style="max-width:100%;height:auto" alt="${"Screenshot of the error message ".repeat(8)}" width=800 height=600`;
    const payload = "QUFB".repeat(1000);
    expect(withoutDataPayloads(`<p>Hi</p><img ${attrs} src="data:image/png;base64,${payload}">`)).toBe(
      `<p>Hi</p><img ${attrs} src="data:image/png;base64,">`,
    );
    // A second payload in the same tag.
    expect(
      withoutDataPayloads(`<img src="data:image/png;base64,AAAA" data-x="data:image/png;base64,${payload}">`),
    ).toBe('<img src="data:image/png;base64," data-x="data:image/png;base64,">');
  });

  it("counts base64 text after a '<' that starts no tag (second re-probe)", () => {
    const html = `<p>if a < b then x=data:;base64,${"QUFB".repeat(1000)}</p>`;
    expect(withoutDataPayloads(html)).toBe(html);
  });

  it("keeps text content that shows a data: URI (the text made from the HTML keeps it)", () => {
    const html = "<p>token=data:text/plain;base64,SGVsbG8gd29ybGQ= end</p>";
    expect(withoutDataPayloads(html)).toBe(html);
  });
});
