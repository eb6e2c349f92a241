import nodemailer from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeId } from "../../src/schema/ids.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { createQueueWithAddress } from "../helpers/fixtures.js";
import { buildRawMail } from "../helpers/raw-mail.js";

// GET /metrics: Prometheus text, behind a bearer token, with ingest's and the SMTP listener's figures.
const TOKEN = "metrics-token-0123456789";
let t: TestApp;
let addr: { addressId: string; address: string };

beforeAll(async () => {
  t = await startTestApp({ env: { METRICS_TOKEN: TOKEN, SMTP_ENABLED: "true", SMTP_PORT: "0" } });
  addr = await createQueueWithAddress(t.db.db, t.tenantId, { address: "metrics@acme.test" });
});
afterAll(async () => {
  await t?.stop();
});

const origin = () => new URL(t.url).origin;
async function scrape(): Promise<string> {
  const res = await fetch(`${origin()}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
  return res.text();
}
function value(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe("GET /metrics", () => {
  it("answers 401 without the token or with a wrong one", async () => {
    expect((await fetch(`${origin()}/metrics`)).status).toBe(401);
    const wrong = await fetch(`${origin()}/metrics`, { headers: { authorization: `Bearer ${TOKEN}x` } });
    expect(wrong.status).toBe(401);
    const apiKey = await fetch(`${origin()}/metrics`, { headers: { authorization: t.adminKey } });
    expect(apiKey.status).toBe(401);
  });

  it("counts ingest by source and outcome and SMTP replies, and shows the memory gauges", async () => {
    const before = await scrape();
    const stored = 'switchboard_ingest_messages_total{source="api",outcome="stored"}';
    const duplicate = 'switchboard_ingest_messages_total{source="api",outcome="duplicate"}';
    const smtp250 = 'switchboard_smtp_data_replies_total{code="250"}';
    const raw = buildRawMail({ to: addr.address, messageId: "metrics-1@customer.example" }).toString(
      "base64",
    );
    for (let i = 0; i < 2; i++) {
      await t.ok(
        `mutation($a: ID!, $raw: String!) { ingestRawMessage(addressId: $a, raw: $raw, base64: true) { __typename } }`,
        { a: encodeId("EmailAddress", addr.addressId), raw },
      );
    }
    await nodemailer
      .createTransport({ host: "127.0.0.1", port: t.app.smtp!.port, secure: false, ignoreTLS: true })
      .sendMail({ from: "c@customer.example", to: addr.address, subject: "Via SMTP", text: "Hi" });
    const after = await scrape();
    expect(value(after, stored) - value(before, stored)).toBe(1);
    expect(value(after, duplicate) - value(before, duplicate)).toBe(1);
    expect(value(after, smtp250) - value(before, smtp250)).toBe(1);
    expect(
      value(after, 'switchboard_ingest_messages_total{source="smtp",outcome="stored"}'),
    ).toBeGreaterThanOrEqual(1);
    // Timeline events by type: two new conversations (the API one and the SMTP one).
    const created = 'switchboard_events_total{type="conversation.created"}';
    expect(value(after, created) - value(before, created)).toBe(2);
    expect(after).toContain("# TYPE switchboard_smtp_buffered_bytes gauge");
    expect(value(after, "switchboard_smtp_buffered_bytes")).toBe(0);
    expect(value(after, "process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(after).toContain("nodejs_eventloop_delay_p99_seconds");
    // No tenant is named: the series carry no tenant labels.
    expect(after).not.toContain(t.tenantId);
  });
});

describe("GET /metrics without METRICS_TOKEN", () => {
  it("is not served", async () => {
    const plain = await startTestApp();
    try {
      const res = await fetch(`${new URL(plain.url).origin}/metrics`);
      expect(res.status).toBe(404);
    } finally {
      await plain.stop();
    }
  });
});
