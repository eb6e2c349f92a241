import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeId } from "../../src/schema/ids.js";
import { ANONYMOUS_BODY_BYTES, authenticatedBodyBytes } from "../../src/server.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";

// The GraphQL request body limit per caller: small without a key, a whole mail with one.
let t: TestApp;
const MAX_MESSAGE_BYTES = 24 * 1024 * 1024;
beforeAll(async () => {
  t = await startTestApp({ env: { MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) } });
});
afterAll(async () => {
  await t?.stop();
});

/** POST /graphql with this body, sent with a Content-Length or chunked; status and body. */
function post(
  body: Buffer,
  opts: { key?: string; chunked?: boolean },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      t.url,
      {
        method: "POST",
        agent: false,
        headers: {
          "content-type": "application/json",
          ...(opts.key ? { authorization: opts.key } : {}),
          ...(opts.chunked ? {} : { "content-length": String(body.length) }),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          text += d;
        });
        res.on("end", () => resolve({ status: res.statusCode!, text }));
      },
    );
    // The server may answer and close before all of a refused body is written: the rest of
    // the writes then fail on the socket, which is expected here. Own connection (no agent),
    // so the failed socket never goes back to a pool.
    const ignore = (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE" && err.code !== "ECONNRESET") reject(err);
    };
    req.on("error", ignore);
    req.on("socket", (socket) => socket.on("error", ignore));
    if (opts.chunked) {
      for (let at = 0; at < body.length; at += 64 * 1024) req.write(body.subarray(at, at + 64 * 1024));
      req.end();
    } else req.end(body);
  });
}

/** A valid GraphQL request padded to about `bytes` with an unused variable. */
const padded = (bytes: number) =>
  Buffer.from(JSON.stringify({ query: "{ __typename }", variables: { pad: "x".repeat(bytes) } }));

describe("GraphQL request size", () => {
  it("without a key: a query or introspection passes, a body over 1 MB is refused with 413 (by length or counted)", async () => {
    expect((await post(padded(1000), {})).status).toBe(200);
    for (const chunked of [false, true]) {
      const r = await post(padded(ANONYMOUS_BODY_BYTES + 10), { chunked });
      expect([chunked, r.status, r.text]).toEqual([
        chunked,
        413,
        expect.stringContaining("REQUEST_ENTITY_TOO_LARGE"),
      ]);
    }
    // A key that does not authenticate counts as none.
    expect((await post(padded(ANONYMOUS_BODY_BYTES + 10), { key: "sb_nope_nope" })).status).toBe(413);
  });

  it("with a key: a mail of up to MAX_MESSAGE_BYTES comes in through ingestRawMessage (base64, over yoga's 25 MB); beyond the limit 413", async () => {
    const addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "import@acme.test" });
    // ~20 MB raw: 26.7 MB of base64, which yoga's default limit refused.
    const raw = buildRawMail({
      subject: "Big import",
      text: "y".repeat(20 * 1024 * 1024),
      messageId: "big-1@x",
    });
    const body = Buffer.from(
      JSON.stringify({
        query: `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw, base64: true) {
          ... on IngestOutcome { status } } }`,
        variables: { a: encodeId("EmailAddress", addr.addressId), raw: raw.toString("base64") },
      }),
    );
    expect(body.length).toBeGreaterThan(25_000_000);
    const ok = await post(body, { key: t.adminKey, chunked: true });
    expect([ok.status, JSON.parse(ok.text)]).toEqual([
      200,
      { data: { ingestRawMessage: { status: "stored" } } },
    ]);
    const limit = authenticatedBodyBytes(MAX_MESSAGE_BYTES);
    expect((await post(padded(limit + 10), { key: t.adminKey })).status).toBe(413);
  });
});
