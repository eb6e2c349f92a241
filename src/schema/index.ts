import { builder } from "./builder.js";
import "./scalars.js";
import "./errors.js";
import "./viewer.js";
import "./team.js";
import "./event.js";
import "./conversation.js";
import "./routing.js";

/** The whole schema: this file only imports the type files and builds it (STYLE, Pothos app layout). */
export const schema = builder.toSchema({ sortSchema: true });
