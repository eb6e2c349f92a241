import { describe, expect, it } from "vitest";
import { effectiveInboxLimit, type InboxLimitSetting } from "../../src/engine/config/inbox-limit.js";
import { isValidSkillName } from "../../src/engine/config/skills.js";
import { isHostname, isIanaTimeZone } from "../../src/engine/config/tenant-settings.js";

const DEFAULT: InboxLimitSetting = { inboxLimit: null, inboxLimitOff: false };
const OFF: InboxLimitSetting = { inboxLimit: null, inboxLimitOff: true };
const n = (v: number): InboxLimitSetting => ({ inboxLimit: v, inboxLimitOff: false });

describe("effectiveInboxLimit", () => {
  it.each([
    ["no team, agent default → system 5", DEFAULT, null, { limit: 5, off: false, source: "SYSTEM" }],
    ["team default, agent default → system 5", DEFAULT, DEFAULT, { limit: 5, off: false, source: "SYSTEM" }],
    ["team number inherited", DEFAULT, n(4), { limit: 4, off: false, source: "TEAM" }],
    ["team OFF inherited", DEFAULT, OFF, { limit: null, off: true, source: "TEAM" }],
    ["agent number beats team number", n(2), n(7), { limit: 2, off: false, source: "AGENT" }],
    ["agent number beats team OFF", n(3), OFF, { limit: 3, off: false, source: "AGENT" }],
    ["agent 0 is a real limit, not inherit", n(0), n(5), { limit: 0, off: false, source: "AGENT" }],
    ["agent OFF beats team number", OFF, n(9), { limit: null, off: true, source: "AGENT" }],
    ["agent OFF without team", OFF, null, { limit: null, off: true, source: "AGENT" }],
  ] as const)("%s", (_name, agent, team, expected) => {
    expect(effectiveInboxLimit(agent, team)).toEqual(expected);
  });
});

describe("skill names", () => {
  it.each(["en", "de-DE", "tier_1", "v1.2", "lang:fr", "Ünïcode", "x".repeat(30), "日本語"])(
    "accepts %j",
    (name) => expect(isValidSkillName(name)).toBe(true),
  );
  it.each(["", "a", "x".repeat(31), "has space", "a/b", "emoji😀", "tab\there", "a,b", "<b>"])(
    "rejects %j",
    (name) => expect(isValidSkillName(name)).toBe(false),
  );
});

describe("host names and time zones", () => {
  it.each(["example.com", "mail.example.co.uk", "a-b.example", "xn--bcher-kva.example"])(
    "accepts host %j",
    (h) => expect(isHostname(h)).toBe(true),
  );
  it.each([
    "",
    "localhost",
    "-bad.example",
    "bad-.example",
    "under_score.example",
    "a..b",
    "1.2.3.4",
    "ex ample.com",
    `${"a".repeat(64)}.com`,
    "example.com\r\nX: y",
  ])("rejects host %j", (h) => expect(isHostname(h)).toBe(false));

  it.each(["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"])("accepts zone %j", (z) =>
    expect(isIanaTimeZone(z)).toBe(true),
  );
  it.each(["", "Mars/Olympus", "+01:00", "Europe/Berlin ", "Europe\\Berlin", "CEST2"])(
    "rejects zone %j",
    (z) => expect(isIanaTimeZone(z)).toBe(false),
  );
});
