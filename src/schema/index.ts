import { builder } from "./builder.js";
import "./scalars.js";
import "./errors.js";
import "./viewer.js";
import "./team.js";
import "./mail-account.js";
import "./email-address.js";
import "./queue.js";
import "./event.js";

/** The whole schema: this file only imports the type files and builds it (STYLE, Pothos app layout). */
export const schema = builder.toSchema({ sortSchema: true });
