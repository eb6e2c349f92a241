import type { EngineContext } from "../engine/context.js";
import { NotFoundError } from "../engine/errors.js";
import type { Viewer } from "../engine/viewer.js";
import type { GraphQLContext } from "./context.js";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A node's `loadOne` from the engine's permission-checked getter: `node(id:)` answers null
 * for an anonymous caller and for an object the caller may not see (the getter's
 * NotFoundError), and lets every other error through.
 */
export function loadVisible<T>(get: (ctx: EngineContext, viewer: Viewer, id: string) => Promise<T>) {
  return async (id: string, ctx: GraphQLContext): Promise<T | null> => {
    // A global ID of the right type around something that is no UUID names nothing.
    if (!ctx.viewer || !UUID_RE.test(id)) return null;
    return get(ctx.engine, ctx.viewer, id).catch((e) => {
      if (e instanceof NotFoundError) return null;
      throw e;
    });
  };
}
