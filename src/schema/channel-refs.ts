import type { EmailAddress } from "../engine/config/email-addresses.js";
import type { Queue } from "../engine/config/queues.js";
import { builder } from "./builder.js";

/** Declared apart from their implementations so queue.ts and email-address.ts can refer to each other without an import cycle. */
export const QueueRef = builder.objectRef<Queue>("Queue");
export const EmailAddressRef = builder.objectRef<EmailAddress>("EmailAddress");
