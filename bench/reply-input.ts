import type { ComposeInput } from "../src/engine/outbound/compose.js";

/** A reply of the send-core / mime-build benches: template, signature, quoted history, hidden BCC. */
export function replyInput(i: number): ComposeInput {
  return {
    kind: "REPLY",
    address: {
      displayName: "ACME Support",
      fromAddress: "support@acme.example",
      replyTo: ["desk@acme.example"],
      bcc: ["audit@acme.example"],
      ticketFormat: { placement: "END", delimiter: "SQUARE" },
      signaturePolicy: "ALL",
      historyPolicy: "ALWAYS",
      templateHtml: '<html><body><table width="100%"><tr><td>{{content}}</td></tr></table></body></html>',
    },
    subjectOptions: { appendTicketOnFirstReply: false, agentsMayEditSubject: false },
    conversation: {
      ticketNumber: 100000 + i,
      subject: "Re: My order has not arrived",
      isFirstReply: i % 2 === 0,
      messages: [
        {
          messageId: `<c${i}@customer.example>`,
          references: `<root${i}@acme.example>`,
          from: { name: "Carla Customer", address: `carla${i}@customer.example` },
          date: new Date("2024-03-01T10:00:00Z"),
          text: null,
          html: "<p>Hello,</p><p>my order <b>#4711</b> has not arrived yet. Can you check?</p><p>Carla</p>",
        },
      ],
    },
    agent: { name: "Ann Agent", alias: "Annie", email: "ann@acme.example" },
    companyName: "ACME Corp",
    signature: { html: "<p>Kind regards,<br>{{agent.alias}} — {{company}}</p>", text: null },
    body: { html: `<p>Hi Carla,</p><p>your parcel left our warehouse today (reply ${i}).</p>` },
    messageIdDomain: "mail.acme.example",
    now: new Date(),
    timeZone: "Europe/Berlin",
  };
}
