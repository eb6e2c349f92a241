import type { EngineContext } from "../engine/context.js";
import type { Viewer } from "../engine/viewer.js";

/** Per-request (or per-WebSocket-connection) GraphQL context. */
export interface GraphQLContext {
  engine: EngineContext;
  viewer: Viewer | null;
  /** Request-scoped DataLoader cache, keyed by loader name. */
  loaders: Map<string, unknown>;
  /** Message body bytes a response may carry (`spendBodyBytes`), and what each has carried. */
  bodyBudget: { limit: number; spent: WeakMap<object, number> };
}
