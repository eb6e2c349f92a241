export * from "./channel.js";
export * from "./conversation.js";
export * from "./tenancy.js";
