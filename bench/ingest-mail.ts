import { randomBytes } from "node:crypto";
import { buildRawMail } from "../test/helpers/raw-mail.js";

/** A typical customer mail: 2–50 KB of text, every fifth with a 20–200 KB attachment. */
export function typicalMail(to: string, i: number, run: number): Buffer {
  const size = 2048 + Math.floor(Math.random() * 48 * 1024);
  const para = "Hello, my order has not arrived yet and the tracking page shows nothing new. ";
  const text = para.repeat(Math.ceil(size / para.length)).slice(0, size);
  return buildRawMail({
    // Different customers, as in real traffic (one sender would serialise on its contact row).
    from: `Customer ${i % 1000} <customer${i % 1000}@customer.example>`,
    to,
    subject: `Order ${run}-${i} question`,
    messageId: `bench-${run}-${i}-${randomBytes(4).toString("hex")}@customer.example`,
    text,
    attachments:
      i % 5 === 0
        ? [
            {
              filename: `invoice-${i}.pdf`,
              contentType: "application/pdf",
              content: randomBytes(20_000 + Math.floor(Math.random() * 180_000)),
            },
          ]
        : [],
  });
}
