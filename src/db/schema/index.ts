export * from "./channel.js";
export * from "./conversation.js";
export * from "./rules.js";
export * from "./tenancy.js";
