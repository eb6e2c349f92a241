import { builder } from "./builder.js";
import "./scalars.js";
import "./errors.js";
import "./viewer.js";
import "./team.js";
import "./calendar.js";
import "./sla-policy.js";
import "./signature.js";
import "./branded-template.js";
import "./canned-response.js";
import "./auto-reply-template.js";
import "./skill.js";
import "./access-profile.js";
import "./user.js";
import "./api-key.js";
import "./tenant-settings.js";
import "./mail-account.js";
import "./email-address.js";
import "./queue.js";
import "./event.js";
import "./conversation.js";
import "./routing.js";
import "./outbound.js";

/** The whole schema: this file only imports the type files and builds it (STYLE, Pothos app layout). */
export const schema = builder.toSchema({ sortSchema: true });
