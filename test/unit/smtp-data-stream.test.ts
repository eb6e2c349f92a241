import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Transform } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

/**
 * scripts/patch-deps.mjs makes nodemailer's DataStream (dot-stuffing and CRLF
 * normalisation of every message the SMTP client sends) jump between line-break bytes
 * instead of testing every byte. Its output must be the original's for any bytes and any
 * chunking: `reference` is the shipped per-byte loop (nodemailer 10.6.0), run on the same
 * chunks.
 */
const require = createRequire(import.meta.url);
const pkg = dirname(dirname(dirname(require.resolve("nodemailer"))));
const DataStream = require(join(pkg, "dist/cjs/smtp-connection/data-stream.js")) as new () => Transform;

function reference(chunks: readonly Buffer[]): Buffer {
  const out: Buffer[] = [];
  let lastByte: number | false = false;
  for (const chunk of chunks) {
    if (chunk.length === 0) continue;
    let lastPos = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      const prev = i ? chunk[i - 1]! : lastByte;
      let insert: string | false = false;
      if (prev === 0x0d && byte !== 0x0a) insert = byte === 0x2e ? "\n." : "\n";
      else if (byte === 0x0a && prev !== 0x0d) insert = "\r";
      else if (byte === 0x2e && (prev === 0x0a || prev === false)) insert = ".";
      if (insert) {
        out.push(chunk.subarray(lastPos, i), Buffer.from(insert));
        lastPos = i;
      }
    }
    out.push(chunk.subarray(lastPos));
    lastByte = chunk[chunk.length - 1]!;
  }
  out.push(Buffer.from(lastByte === 0x0a ? ".\r\n" : lastByte === 0x0d ? "\n.\r\n" : "\r\n.\r\n"));
  return Buffer.concat(out);
}

function throughDataStream(chunks: readonly Buffer[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = new DataStream();
    const out: Buffer[] = [];
    s.on("data", (d: Buffer) => out.push(d));
    s.on("end", () => resolve(Buffer.concat(out)));
    s.on("error", reject);
    for (const c of chunks) s.write(c);
    s.end();
  });
}

describe("nodemailer DataStream scan (patch-deps)", () => {
  it("is applied to the installed nodemailer (ESM and CommonJS builds)", () => {
    for (const rel of [
      "dist/esm/smtp-connection/data-stream.js",
      "dist/cjs/smtp-connection/data-stream.js",
    ]) {
      expect(readFileSync(join(pkg, rel), "utf8")).toContain("switchboard: indexOf scan");
    }
  });

  it("stuffs dots and normalises line ends as the per-byte loop does", async () => {
    const cases = [
      "line\r\n.dot\r\n..two\r\nend",
      ".first\nbare lf\rbare cr\r.after cr\r\n\r\n.\r\n",
      "\r\r\n\n\r.\n.",
      "no breaks at all",
    ];
    for (const text of cases) {
      const bytes = Buffer.from(text, "latin1");
      for (let cut = 0; cut <= bytes.length; cut++) {
        const chunks = [bytes.subarray(0, cut), bytes.subarray(cut)];
        expect(await throughDataStream(chunks)).toEqual(reference(chunks));
      }
    }
  });

  it("matches the per-byte loop on random bytes in random chunks", async () => {
    const byte = fc.oneof(fc.constantFrom(0x0d, 0x0a, 0x2e, 0x41, 0x20), fc.integer({ min: 0, max: 255 }));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(byte, { maxLength: 40 }), {
          maxLength: 6,
        }),
        async (parts) => {
          const chunks = parts.map((p) => Buffer.from(p));
          expect(await throughDataStream(chunks)).toEqual(reference(chunks));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
