import { describe, expect, it } from "vitest";
import {
  checkAtTags,
  checkBraceTags,
  sanitizeDocument,
  sanitizeFragment,
} from "../../src/engine/config/html.js";
import {
  durationToMinutes,
  formatDuration,
  minutesToDuration,
} from "../../src/engine/config/sla-policies.js";
import { AUTO_REPLY_TAGS, SIGNATURE_TAGS } from "../../src/engine/domain.js";
import { Problems } from "../../src/engine/errors.js";

describe("SLA durations", () => {
  it.each([
    [{ days: 1 }, 1440],
    [{ hours: 2, minutes: 30 }, 150],
    [{ minutes: 90 }, 90],
    [{ days: 365 }, 525_600],
    [{}, 0],
  ])("%j = %i business minutes", (d, m) => {
    expect(durationToMinutes(d)).toBe(m);
  });

  it("turns negative or fractional parts into NaN so validation rejects them", () => {
    expect(durationToMinutes({ hours: -1, minutes: 120 })).toBeNaN();
    expect(durationToMinutes({ hours: 1.5 })).toBeNaN();
  });

  it("breaks minutes down into 24-hour business days", () => {
    expect(minutesToDuration(1530)).toEqual({ days: 1, hours: 1, minutes: 30 });
    expect(formatDuration(1530)).toBe("1d 1h 30m");
    expect(formatDuration(60)).toBe("1h");
  });
});

describe("HTML sanitising", () => {
  it("removes scripts, event handlers and javascript: URLs but keeps tags and mailto", () => {
    const out = sanitizeFragment(
      '<p onclick="steal()">Hi {{agent.name}}<script>alert(1)</script>' +
        '<a href="javascript:alert(1)">x</a><a href="mailto:{{agent.email}}">m</a>' +
        '<img src="cid:logo" onerror="x()"><img src="javascript:alert(1)"></p>',
    );
    expect(out).not.toMatch(/script|onclick|onerror|javascript/i);
    expect(out).toContain("{{agent.name}}");
    expect(out).toContain('href="mailto:{{agent.email}}"');
    expect(out).toContain('src="cid:logo"');
  });

  it("keeps the document frame of a branded template but not <style> or <iframe>", () => {
    const out = sanitizeDocument(
      '<html><head><style>body{}</style></head><body style="margin:0"><iframe src="x"></iframe><table width="600"><tr><td>{{content}}</td></tr></table></body></html>',
    );
    expect(out).toContain('<body style="margin:0">');
    expect(out).toContain('<table width="600">');
    expect(out).not.toMatch(/<style|<iframe/);
  });
});

describe("tag checks", () => {
  it("names each unknown auto-reply tag", () => {
    const p = new Problems();
    checkAtTags(p, "text", "Hi @{consumer}, ticket @{ticket_id}, @{agnet} on @{date} @{}", AUTO_REPLY_TAGS);
    expect(p.list.map((x) => x.message.split(";")[0])).toEqual(["unknown tag @{agnet}", "unknown tag @{}"]);
    expect(p.list.every((x) => x.field === "text")).toBe(true);
  });

  it("accepts every documented tag", () => {
    const p = new Problems();
    checkAtTags(p, "text", AUTO_REPLY_TAGS.map((t) => `@{${t}}`).join(" "), AUTO_REPLY_TAGS);
    checkBraceTags(p, "html", SIGNATURE_TAGS.map((t) => `{{ ${t} }}`).join(" "), SIGNATURE_TAGS);
    expect(p.list).toEqual([]);
  });

  it("rejects unknown signature tags", () => {
    const p = new Problems();
    checkBraceTags(p, "text", "{{agent.phone}}", SIGNATURE_TAGS);
    expect(p.list[0]?.message).toMatch(/^unknown tag \{\{agent\.phone\}\}/);
  });
});
