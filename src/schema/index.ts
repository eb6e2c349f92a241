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
import "./event.js";
import "./conversation.js";
import "./status.js";
import "./sla.js";
import "./rule.js";
import "./timeline.js";

/** The whole schema: this file only imports the type files and builds it (STYLE, Pothos app layout). */
export const schema = builder.toSchema({ sortSchema: true });
