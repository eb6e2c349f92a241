import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import { useDisableIntrospection } from "@graphql-yoga/plugin-disable-introspection";
import { GraphQLError, type GraphQLSchema } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { createYoga, maskError, type Plugin, type YogaInitialContext } from "graphql-yoga";
import { WebSocketServer } from "ws";
import type { Config } from "./config.js";
import { authenticate } from "./engine/auth.js";
import type { EngineContext } from "./engine/context.js";
import type { Viewer } from "./engine/viewer.js";
import { queryCostErrors, useVariableCostLimit } from "./query-cost.js";
import type { GraphQLContext } from "./schema/context.js";

export interface HttpApp {
  server: Server;
  url: string;
  wsUrl: string;
  start(): Promise<{ port: number }>;
  stop(): Promise<void>;
  /** Extra HTTP routes (attachment downloads, metrics) registered by other modules. */
  route(
    prefix: string,
    handler: (req: IncomingMessage, res: ServerResponse, viewer: Viewer | null) => Promise<void>,
  ): void;
}

type WsExtra = {
  /** The key given at connection init: re-checked on every subscribe (revocation, archiving, role changes). */
  apiKey?: string;
};

type SubscribeArgs = Parameters<
  NonNullable<Parameters<typeof useServer<Record<string, unknown> | undefined, WsExtra>>[0]["onSubscribe"]>
>;

/** Subscriptions one WebSocket connection may run at once; each costs reads to start. */
export const WS_MAX_SUBSCRIPTIONS = 100;

/**
 * HTTP + WebSocket front door: GraphQL (with GraphiQL) and graphql-ws on the same path,
 * `/healthz` (process alive) and `/readyz` (database answers). graphql-ws operations run
 * through `yoga.getEnveloped`, so they get the same plugins, limits and context as HTTP.
 */
/** The largest WebSocket frame a client may send. */
export const WS_MAX_PAYLOAD = 1024 * 1024;

/** `err` with `code` unless it has one already. */
function withCode(err: GraphQLError, code: string): GraphQLError {
  if (err.extensions?.code !== undefined) return err;
  return new GraphQLError(err.message, {
    nodes: err.nodes,
    source: err.source,
    positions: err.positions,
    path: err.path,
    originalError: err.originalError,
    extensions: { ...err.extensions, code },
  });
}

/** What an unauthenticated GraphQL request may send: any query or introspection fits. */
export const ANONYMOUS_BODY_BYTES = 1024 * 1024;

/**
 * What an authenticated GraphQL request may send: yoga's default 25 MB, or enough for
 * `ingestRawMessage` to carry a mail of MAX_MESSAGE_BYTES in base64 (4/3 of it) with room
 * for the rest of the request.
 */
export function authenticatedBodyBytes(maxMessageBytes: number): number {
  return Math.max(25_000_000, Math.ceil((maxMessageBytes * 4) / 3) + 1024 * 1024);
}

export function createHttpApp(opts: {
  config: Pick<Config, "host" | "port" | "graphql" | "env" | "maxMessageBytes">;
  schema: GraphQLSchema;
  engine: EngineContext;
  ready: () => Promise<boolean>;
  /** `GET /metrics` with `Authorization: Bearer <token>`; without it the route is 404. */
  metrics?: { token: string; render: () => string };
}): HttpApp {
  const { config, schema, engine } = opts;
  const routes: { prefix: string; handler: Parameters<HttpApp["route"]>[1] }[] = [];

  const bodyLimit = authenticatedBodyBytes(config.maxMessageBytes);
  const yoga = createYoga<{ viewer?: Viewer | null }, GraphQLContext>({
    schema,
    // Per caller instead (`useBodyLimit`): authenticated before the body is read.
    maxRequestBodySize: false,
    graphqlEndpoint: "/graphql",
    landingPage: false,
    graphiql: { subscriptionsProtocol: "WS" },
    // Masking stays on: only typed results and GraphQLErrors we raise reach clients.
    maskedErrors: {
      maskError: (error, message, isDev) => {
        const original = (error as { originalError?: unknown }).originalError;
        // The database gave up waiting for a lock (DB_LOCK_TIMEOUT_MS) or broke a deadlock:
        // nothing is wrong with the request, and the same request a moment later will do.
        // A typed, retryable error, not "Unexpected error." (second re-probe, session 16).
        // (drizzle wraps the driver's error as its `cause`.)
        const failed = original as { code?: unknown; cause?: { code?: unknown } } | undefined;
        const sqlState = failed?.code ?? failed?.cause?.code;
        if (sqlState === "55P03" || sqlState === "40P01" || sqlState === "40001") {
          engine.log.warn({ err: original }, "request gave up on a lock; the client may retry");
          return new GraphQLError("The data is busy (locked by another operation); try again", {
            extensions: { code: "RETRY" },
            ...(error instanceof GraphQLError ? { path: error.path, nodes: error.nodes } : {}),
          });
        }
        // GraphQLErrors we raise on purpose (auth, bad input) pass unmasked and are not bugs.
        if (original !== undefined && !(original instanceof GraphQLError)) {
          engine.log.error({ err: original }, "unexpected GraphQL error");
        }
        const out = maskError(error, message, isDev);
        // What graphql-js, Pothos and the limits raise about a request (a variable that does
        // not coerce, `first: -1`, a malformed global ID or cursor, a query over the cost
        // limit) comes without a code: it is the caller's input, so say so.
        if (out instanceof GraphQLError && out.message !== message) return withCode(out, "BAD_USER_INPUT");
        return out;
      },
    },
    logging: false,
    plugins: [
      useBodyLimit((viewer) => (viewer ? bodyLimit : ANONYMOUS_BODY_BYTES)),
      EnvelopArmorPlugin({
        maxDepth: { n: config.graphql.maxDepth },
        maxAliases: { n: config.graphql.maxAliases },
        maxTokens: { n: config.graphql.maxTokens },
        costLimit: { maxCost: config.graphql.maxCost },
        maxDirectives: { n: 20 },
        blockFieldSuggestion: { enabled: !config.graphql.introspection },
      }),
      useVariableCostLimit(config.graphql.maxCost),
      ...(config.graphql.introspection ? [] : [useDisableIntrospection()]),
    ],
    context: async (init: YogaInitialContext & { viewer?: Viewer | null }): Promise<GraphQLContext> => {
      // HTTP requests come authenticated (the handler below); WebSocket operations with theirs.
      const viewer =
        init.viewer !== undefined
          ? init.viewer
          : await authenticate(engine.db, engine.clock, init.request?.headers.get("authorization"));
      return {
        engine,
        viewer,
        loaders: new Map(),
        bodyBudget: { limit: config.graphql.maxResponseBodyBytes, spent: new WeakMap() },
      };
    },
  });

  const server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    try {
      if (path === "/healthz") return json(res, 200, { status: "ok" });
      if (path === "/readyz") {
        const ok = await opts.ready().catch(() => false);
        return json(res, ok ? 200 : 503, { status: ok ? "ready" : "unavailable" });
      }
      if (path === "/metrics" && opts.metrics) {
        const given = Buffer.from(req.headers.authorization ?? "");
        const wanted = Buffer.from(`Bearer ${opts.metrics.token}`);
        if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) {
          return json(res, 401, { error: "metrics need the bearer token (METRICS_TOKEN)" });
        }
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
        return res.end(opts.metrics.render());
      }
      for (const r of routes) {
        if (path.startsWith(r.prefix)) {
          const viewer = await authenticate(engine.db, engine.clock, req.headers.authorization);
          return await r.handler(req, res, viewer);
        }
      }
      if (path === "/") {
        res.writeHead(302, { location: "/graphql" });
        return res.end();
      }
      // Authenticated before yoga reads the body, whose size limit depends on the caller.
      const viewer = await authenticate(engine.db, engine.clock, req.headers.authorization);
      return yoga(req, res, { viewer });
    } catch (err) {
      engine.log.error({ err, path }, "http handler failed");
      if (!res.headersSent) json(res, 500, { error: "internal error" });
      else res.end();
    }
  });

  // A frame is parsed before anything else looks at it (also before authentication):
  // 1 MiB holds any subscription; large mutations (attachments) go over HTTP.
  const wss = new WebSocketServer({ server, path: "/graphql", maxPayload: WS_MAX_PAYLOAD });
  const wsHandle = useServer<Record<string, unknown> | undefined, WsExtra>(
    {
      execute: (args) => (args.rootValue as { execute: typeof import("graphql").execute }).execute(args),
      subscribe: (args) =>
        (args.rootValue as { subscribe: typeof import("graphql").subscribe }).subscribe(args),
      // Authenticated once at connection init; returning false closes with 4403 Forbidden.
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        const raw = params.authorization ?? params.Authorization ?? params.apiKey;
        const key = typeof raw === "string" ? raw : null;
        if (!key || !(await authenticate(engine.db, engine.clock, key))) return false;
        ctx.extra.apiKey = key;
        return true;
      },
      onSubscribe: async (ctx, _id, params) => {
        // Checked first, before any read: a flood of subscribes costs the database nothing.
        // graphql-ws keeps every running (and starting) subscription of the connection in
        // `ctx.subscriptions`, this one included, and drops it when it completes.
        if (Object.keys(ctx.subscriptions).length > WS_MAX_SUBSCRIPTIONS) {
          return [
            new GraphQLError(`At most ${WS_MAX_SUBSCRIPTIONS} subscriptions run at once on one connection`, {
              extensions: { code: "TOO_MANY_SUBSCRIPTIONS" },
            }),
          ];
        }
        return startSubscription(ctx, params);
      },
    },
    wss,
  );

  /** What `onSubscribe` does once the subscription has a place: the checks and its execution arguments. */
  async function startSubscription(ctx: SubscribeArgs[0], params: SubscribeArgs[2]) {
    // The connection was authenticated at init, but a key revoked or a user archived
    // since then must not start new subscriptions: re-resolve the viewer each time.
    const viewer = await authenticate(engine.db, engine.clock, ctx.extra.apiKey);
    if (!viewer) {
      ctx.extra.socket.close(4403, "Forbidden");
      return [new GraphQLError("Forbidden", { extensions: { code: "FORBIDDEN" } })];
    }
    const {
      schema: s,
      execute,
      subscribe,
      contextFactory,
      parse,
      validate,
    } = yoga.getEnveloped({
      ...ctx,
      req: ctx.extra.request,
      socket: ctx.extra.socket,
      params,
      viewer,
    });
    // A syntax error or a query over the limits (graphql-armor checks them while
    // parsing) is an error for this subscription, not a reason to close the connection
    // and every other subscription on it.
    let document: ReturnType<typeof parse>;
    let errors: readonly GraphQLError[];
    try {
      document = parse(params.query);
      errors = validate(s, document);
    } catch (err) {
      if (err instanceof GraphQLError) return [withCode(err, "GRAPHQL_PARSE_FAILED")];
      throw err;
    }
    if (errors.length > 0) return errors.map((e) => withCode(e, "GRAPHQL_VALIDATION_FAILED"));
    // The cost limit with the page sizes served, as `useVariableCostLimit` checks it at
    // execution: a subscription never reaches that hook, and until the re-probe of session
    // 16 one with 30 aliases of `messages(first: $m)` sent 62 MB per event.
    const overCost = queryCostErrors(
      s,
      document,
      params.variables ?? {},
      config.graphql.maxCost,
      params.operationName ?? null,
    );
    if (overCost.length > 0) return overCost;
    return {
      schema: s,
      operationName: params.operationName,
      document,
      variableValues: params.variables,
      contextValue: await contextFactory(),
      rootValue: { execute, subscribe },
    };
  }

  const app: HttpApp = {
    server,
    url: "",
    wsUrl: "",
    route(prefix, handler) {
      routes.push({ prefix, handler });
    },
    start: () =>
      new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(config.port, config.host, () => {
          const { port } = server.address() as AddressInfo;
          app.url = `http://${config.host}:${port}/graphql`;
          app.wsUrl = `ws://${config.host}:${port}/graphql`;
          resolve({ port });
        });
      }),
    async stop() {
      await wsHandle.dispose();
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return app;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/**
 * yoga's request body limit (`maxRequestBodySize`), but per caller: `limitOf(viewer)` bytes,
 * checked against Content-Length and counted on the stream (chunked requests). Without a
 * key a request may send `ANONYMOUS_BODY_BYTES`: it can do nothing but fail or introspect,
 * so it has no business making the server parse 25 MB of JSON.
 */
function useBodyLimit(
  limitOf: (viewer: Viewer | null | undefined) => number,
): Plugin<{ viewer?: Viewer | null }> {
  const tooLarge = () =>
    new GraphQLError("Request body too large", {
      extensions: { http: { status: 413 }, code: "REQUEST_ENTITY_TOO_LARGE" },
    });
  return {
    onRequestParse({ request, serverContext, requestParser, setRequestParser, fetchAPI }) {
      const limit = limitOf((serverContext as { viewer?: Viewer | null }).viewer);
      const length = request.headers.get("content-length");
      if (length !== null) {
        // One non-negative integer, as yoga's own check demands (Node's parser refuses
        // most other forms before this).
        if (!/^\d+$/.test(length)) {
          throw new GraphQLError("Content-Length header is invalid.", {
            extensions: { http: { status: 400 }, code: "BAD_REQUEST" },
          });
        }
        if (Number(length) > limit) throw tooLarge();
      }
      if (!requestParser || !request.body) return;
      const parse = requestParser;
      setRequestParser((req) => {
        let read = 0;
        // The stream class of the body's own implementation (native, or whatwg-node's), as
        // yoga's own limit does (graphql-yoga#4583).
        const Transform = req.body instanceof ReadableStream ? TransformStream : fetchAPI.TransformStream;
        const body = req.body!.pipeThrough(
          new Transform<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              read += chunk.byteLength;
              if (read > limit) controller.error(tooLarge());
              else controller.enqueue(chunk);
            },
          }),
        );
        return parse(
          new fetchAPI.Request(req.url, {
            method: req.method,
            headers: req.headers,
            signal: req.signal,
            body,
            // @ts-expect-error Node's fetch needs it for a streamed body; the DOM types lack it.
            duplex: "half",
          }),
        );
      });
    },
  };
}
