/**
 * Sends a sample customer mail into the running server's SMTP listener, for trying
 * Switchboard out: `npm run send-sample -- --to support@acme.test [--subject …] [--port 2525]`.
 */
import { parseArgs } from "node:util";
import nodemailer from "nodemailer";

const { values } = parseArgs({
  options: {
    to: { type: "string" },
    from: { type: "string", default: "Jane Customer <jane@customer.example>" },
    subject: { type: "string", default: "My order has not arrived" },
    text: {
      type: "string",
      default:
        "Hello,\n\nI ordered a blue kettle two weeks ago and it has not arrived. Can you help?\n\nJane",
    },
    host: { type: "string", default: process.env.SMTP_HOST || "127.0.0.1" },
    port: { type: "string", default: process.env.SMTP_PORT || "2525" },
    "in-reply-to": { type: "string" },
  },
});
if (!values.to) {
  console.error(
    "usage: npm run send-sample -- --to <one of your configured addresses> [--subject S] [--port 2525]",
  );
  process.exit(2);
}
const transport = nodemailer.createTransport({
  host: values.host,
  port: Number(values.port),
  secure: false,
  ignoreTLS: true,
});
const info = await transport.sendMail({
  from: values.from,
  to: values.to,
  subject: values.subject,
  text: values.text,
  ...(values["in-reply-to"] ? { inReplyTo: values["in-reply-to"], references: values["in-reply-to"] } : {}),
});
console.log(`sent ${info.messageId}: ${info.response}`);
