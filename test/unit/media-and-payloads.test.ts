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

  it("keeps text content that shows a data: URI (the text made from the HTML keeps it)", () => {
    const html = "<p>token=data:text/plain;base64,SGVsbG8gd29ybGQ= end</p>";
    expect(withoutDataPayloads(html)).toBe(html);
  });
});
