import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

// ARCHITECTURE.md: the engine never imports transport, parser, queue or API libraries;
// outbound effects go through `MailSender` (src/engine/outbound/sender.ts).
const FORBIDDEN =
  /\bfrom\s+["'](?:nodemailer|smtp-server|mailparser|pg-boss|graphql|@pothos\/[^"']+|imapflow)(?:\/[^"']*)?["']/;
const DIR = "src/engine/outbound";

describe("outbound engine boundaries", () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith(".ts"));

  it("has files to check", () => {
    expect(files).toEqual(expect.arrayContaining(["compose.ts", "auto-reply.ts", "dsn.ts", "sender.ts"]));
  });

  it.each(files)("%s imports no transport, parser, queue or API library", (file) => {
    const source = readFileSync(join(DIR, file), "utf8");
    expect(source).not.toMatch(FORBIDDEN);
    expect(source).not.toMatch(/from\s+["']\.\.\/\.\.\/(?:connectors|jobs|schema)\//);
  });

  it("the pattern catches a forbidden import", () => {
    expect('import nodemailer from "nodemailer";').toMatch(FORBIDDEN);
    expect('import type { X } from "nodemailer/lib/mail-composer";').toMatch(FORBIDDEN);
    expect('import { convert } from "html-to-text";').not.toMatch(FORBIDDEN);
  });
});
