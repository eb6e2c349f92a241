import pino from "pino";
import type { Logger } from "./engine/context.js";

/** One structured logger (STYLE 19). Secrets and message bodies are never passed to it. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { app: "switchboard" },
    redact: {
      paths: ["password", "*.password", "apiKey", "*.apiKey", "authorization", "*.authorization"],
      remove: true,
    },
  });
}
