import type { EngineContext } from "../engine/context.js";
import { NotFoundError } from "../engine/errors.js";
import type { Viewer } from "../engine/viewer.js";
import type { GraphQLContext } from "./context.js";

/**
 * A node's `loadOne` from the engine's permission-checked getter: `node(id:)` answers null
 * for an anonymous caller and for an object the caller may not see (the getter's
 * NotFoundError), and lets every other error through.
 */
export function loadVisible<T>(get: (ctx: EngineContext, viewer: Viewer, id: string) => Promise<T>) {
  return async (id: string, ctx: GraphQLContext): Promise<T | null> => {
    if (!ctx.viewer) return null;
    return get(ctx.engine, ctx.viewer, id).catch((e) => {
      if (e instanceof NotFoundError) return null;
      throw e;
    });
  };
}
