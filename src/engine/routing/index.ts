/** The routing decision core: pure functions over snapshot records, no I/O. */
export * from "./assign.js";
export * from "./eligibility.js";
export * from "./queue-order.js";
export * from "./strategies.js";
export * from "./tenant-day.js";
export * from "./types.js";
export * from "./validate.js";
export * from "./working-set.js";
