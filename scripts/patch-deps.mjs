// Applied after every install (npm "postinstall"): fixes in dependencies that upstream has
// not released yet. Idempotent; fails the install when a pinned file no longer looks as
// expected, so a version bump cannot silently drop a fix. See docs/architecture.md.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

// PATCH_DEPS_ROOT: another node_modules (the test points it at a scratch copy).
const root = process.env.PATCH_DEPS_ROOT ?? join(import.meta.dirname, "..", "node_modules");
// --check: change nothing; fail listing every installed file that lacks a patch (and every
// patched package that is not installed at all). test/unit/patch-deps.test.ts runs it.
const check = process.argv.includes("--check");
const MARK = "/* switchboard: postgres#1208 */";

/**
 * postgres.js 3.4.9 (porsager/postgres#1154, #1208, PR #1209): a small write is buffered
 * behind setImmediate; when the connection closes first, `nextWrite` calls `socket.write`
 * on null and the TypeError, thrown from the immediate, kills the whole process. Closing
 * also cancels the immediate without clearing its handle, so a reconnected connection
 * never flushes a small write again. Patched: a write without a socket settles the pending
 * queries with CONNECTION_CLOSED (catchable), and closing clears the handle and buffer.
 */
const postgresEdits = [
  [
    "  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)",
    `  function nextWrite(fn) {\n    ${MARK}\n    if (!socket) {\n      nextWriteTimer !== null && clearImmediate(nextWriteTimer)\n      chunk = nextWriteTimer = null\n      error(Errors.connection('CONNECTION_CLOSED', options))\n      return false\n    }\n    const x = socket.write(chunk, fn)`,
  ],
  [
    "    clearImmediate(nextWriteTimer)\n    if (socket) {",
    "    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n    if (socket) {",
  ],
  [
    "    remaining = 0\n    incomings = null\n    clearImmediate(nextWriteTimer)\n",
    "    remaining = 0\n    incomings = null\n    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n",
  ],
];

const BYTEA_MARK = "/* switchboard: binary bytea */";

/**
 * postgres.js sends every parameter in text format, so a bytea value goes out as a hex
 * string twice its size ('\\x…'): the raw MIME and the attachments of every message were
 * hex-encoded on the event loop, written at double size and hex-decoded again by the
 * server. Patched: a parameter the server describes as bytea (type 17) whose value is a
 * Buffer/Uint8Array is bound in binary format (format code 1), i.e. its bytes as they are.
 * Every other parameter, and a bytea given as a string, is sent as before.
 */
const byteaEdits = [
  [
    "    b().B().str(portal + b.N).str(statement + b.N).i16(0).i16(parameters.length)\n\n    parameters.forEach((x, i) => {\n      if (x === null)\n        return b.i32(0xFFFFFFFF)\n",
    `    ${BYTEA_MARK}\n    const binary = parameters.map((x, i) => types[i] === 17 && x instanceof Uint8Array)\n    b().B().str(portal + b.N).str(statement + b.N)\n    binary.includes(true)\n      ? (b.i16(binary.length), binary.forEach(x => b.i16(x ? 1 : 0)))\n      : b.i16(0)\n    b.i16(parameters.length)\n\n    parameters.forEach((x, i) => {\n      if (x === null)\n        return b.i32(0xFFFFFFFF)\n\n      if (binary[i])\n        return b.i32(x.byteLength).raw(x)\n`,
  ],
];

const COPY_MARK = "/* switchboard: fewer copies */";

/**
 * postgres.js 3.4.9 copies a large parameter four or five times before the socket: into
 * the message builder by an exact-size concat (and again when the next field grows it),
 * the Bind and Execute messages concatenated, then `write` copies the message once more
 * (`Buffer.from`) or concatenates it with what is pending. Each copy is a new off-heap
 * buffer, and their churn makes V8 run full collections: a message-sized row (56 KB of
 * bytea, 26 KB of text) cost this process ~480 µs of CPU (`npm run bench -- pg-params`).
 * Patched: a value of 8 KB or more (a Buffer bound in binary, or a string, encoded once)
 * is its own chunk of the Bind message, not copied into it; the messages of a query go
 * out as a list; pending writes are kept as a list and leave in one write (concatenated
 * when small, `cork`/`writev` when not); `raw` grows the builder instead of concatenating.
 * The bytes on the wire are the same.
 */
const copyEdits = [
  ["    , chunk = null\n", "    , chunk = null\n    , chunkBytes = 0\n"],
  [
    "  function write(x, fn) {\n    chunk = chunk ? Buffer.concat([chunk, x]) : Buffer.from(x)\n    if (fn || chunk.length >= 1024)",
    "  function write(x, fn) {\n    /* switchboard: fewer copies */\n    chunk === null && (chunk = [], chunkBytes = 0)\n    if (Array.isArray(x)) {\n      for (let i = 0; i < x.length; i++)\n        chunk.push(x[i]), chunkBytes += x[i].length\n    } else {\n      chunk.push(x), chunkBytes += x.length\n    }\n    if (fn || chunkBytes >= 1024)",
  ],
  [
    "    const x = socket.write(chunk, fn)\n    nextWriteTimer !== null && clearImmediate(nextWriteTimer)",
    "    const x = chunk.length === 1\n      ? socket.write(chunk[0], fn)\n      : chunkBytes < 16384\n        ? socket.write(Buffer.concat(chunk, chunkBytes), fn)\n        : writeEach(chunk, fn)\n    nextWriteTimer !== null && clearImmediate(nextWriteTimer)",
  ],
  [
    "  function connectTimedOut() {",
    "  function writeEach(xs, fn) {\n    socket.cork()\n    for (let i = 0; i < xs.length - 1; i++)\n      socket.write(xs[i])\n    const x = socket.write(xs[xs.length - 1], fn)\n    socket.uncork()\n    return x\n  }\n\n  function connectTimedOut() {",
  ],
  [
    "        ? Buffer.concat([describe(q), Flush])\n        : q.prepare\n          ? q.prepared\n            ? prepared(q)\n            : Buffer.concat([describe(q), prepared(q)])",
    "        ? [describe(q), Flush]\n        : q.prepare\n          ? q.prepared\n            ? prepared(q)\n            : [describe(q), ...prepared(q)]",
  ],
  [
    "  function prepared(q) {\n    return Buffer.concat([\n      Bind(q.parameters, q.statement.types, q.statement.name, q.cursorName),\n      q.cursorFn\n        ? Execute('', q.cursorRows)\n        : ExecuteUnnamed\n    ])\n  }\n\n  function unnamed(q) {\n    return Buffer.concat([\n      Parse(q.statement.string, q.parameters, q.statement.types),\n      DescribeUnnamed,\n      prepared(q)\n    ])\n  }",
    "  function prepared(q) {\n    const bind = Bind(q.parameters, q.statement.types, q.statement.name, q.cursorName)\n        , execute = q.cursorFn ? Execute('', q.cursorRows) : ExecuteUnnamed\n    return Array.isArray(bind) ? (bind.push(execute), bind) : [bind, execute]\n  }\n\n  function unnamed(q) {\n    return [\n      Parse(q.statement.string, q.parameters, q.statement.types),\n      DescribeUnnamed,\n      ...prepared(q)\n    ]\n  }",
  ],
  [
    "      if (binary[i])\n        return b.i32(x.byteLength).raw(x)\n\n      type = types[i]\n      parameters[i] = x = type in options.serializers\n        ? options.serializers[type](x)\n        : '' + x\n\n      prev = b.i\n      b.inc(4).str(x).i32(b.i - prev - 4, prev)\n    })\n\n    b.i16(0)\n\n    return b.end()\n  }",
    "      if (binary[i]) {\n        if (x.byteLength < 8192)\n          return b.i32(x.byteLength).raw(x)\n        b.i32(x.byteLength)\n        return (parts || (parts = [])).push(b.cut(), x)\n      }\n\n      type = types[i]\n      parameters[i] = x = type in options.serializers\n        ? options.serializers[type](x)\n        : '' + x\n\n      if (x.length >= 8192) {\n        const bytes = Buffer.from(x, 'utf8')\n        b.i32(bytes.length)\n        return (parts || (parts = [])).push(b.cut(), bytes)\n      }\n\n      prev = b.i\n      b.inc(4).str(x).i32(b.i - prev - 4, prev)\n    })\n\n    b.i16(0)\n\n    if (parts === null)\n      return b.end()\n\n    // A large value is its own chunk, written as it is (no copy into the message).\n    parts.push(b.cut())\n    let length = -1\n    for (let i = 0; i < parts.length; i++)\n      length += parts[i].length\n    parts[0].writeUInt32BE(length, 1)\n    return parts\n  }",
  ],
  [
    "  function Bind(parameters, types, statement = '', portal = '') {\n    let prev\n      , type\n",
    "  function Bind(parameters, types, statement = '', portal = '') {\n    let prev\n      , type\n      , parts = null\n",
  ],
];

const copyBytesEdits = [
  [
    "  raw(x) {\n    buffer = Buffer.concat([buffer.subarray(0, b.i), x])\n    b.i = buffer.length\n    return b\n  },",
    "  raw(x) {\n    /* switchboard: fewer copies */\n    fit(x.length)\n    buffer.set(x, b.i)\n    b.i += x.length\n    return b\n  },",
  ],
  [
    "  end(at = 1) {",
    "  cut() {\n    const out = buffer.subarray(0, b.i)\n    b.i = 0\n    buffer = Buffer.allocUnsafe(size)\n    return out\n  },\n  end(at = 1) {",
  ],
];

const PIPE_MARK = "/* switchboard: reserved pipeline */";

/**
 * postgres.js 3.4.9 stops pipelining on a connection once `execute` reports it "full" —
 * which it did whenever the socket signalled backpressure (every write of more than 16 KB)
 * — and on a reserved connection (`sql.reserve()`, which our transactions use) it then sent
 * the queued queries one at a time, each only after the previous one's ReadyForQuery: a
 * round trip per statement. An IMAP batch's transaction (hundreds of pipelined statements,
 * a raw message of ~56 KB in each message's) spent most of its time that way: the backend
 * sat "idle in transaction" waiting for the client in 62 % of pg_stat_activity samples.
 * Patched: backpressure no longer marks a connection full (the stream buffers the write
 * either way; `max_pipeline` still bounds the queries in flight), and a reserved
 * connection sends queued queries until one reports it full again.
 */
const pipeEdits = [
  [
    "      build(q)\n      return write(toBuffer(q))\n        && !q.describeFirst",
    "      build(q)\n      /* switchboard: reserved pipeline */\n      // The socket's backpressure is not a reason to stop pipelining: what is written is\n      // buffered by the stream either way, and max_pipeline bounds the queries in flight.\n      write(toBuffer(q))\n      return !q.describeFirst",
  ],
];

const pipeIndexEdits = [
  [
    "    c.reserved = () => queue.length\n      ? c.execute(queue.shift())\n      : move(c, reserved)\n",
    "    c.reserved = () => {\n      /* switchboard: reserved pipeline */\n      while (queue.length) {\n        if (!c.execute(queue.shift()))\n          return\n      }\n      move(c, reserved)\n    }\n",
  ],
];

const RESERVED_CLOSE_MARK = "/* switchboard: reserved close */";

/**
 * postgres.js 3.4.9 \`reserve()\`, under every ingest transaction (\`pipelinedTransaction\`):
 * statements given to a reserved connection while it is "full" (after any statement not
 * yet prepared) wait in a queue of the reservation's own. When the connection closes (its
 * backend terminated, the server restarted, a failover) nothing rejects them: they never
 * settle, and an IMAP mailbox worker waiting on one stopped for good, its shutdown too
 * (found by a probe, session 16: 149 of 151 statements queued behind a \`pg_sleep\` never
 * settled after \`pg_terminate_backend\`). And \`release()\` put the closed connection back
 * with the open ones, so the next query given to it failed with CONNECTION_CLOSED (one 451
 * to an unrelated mail). Patched: the pool's \`onclose\` tells the reservation, which
 * rejects what waits and anything given to it later with the connection's error, and a
 * released closed connection stays with the closed ones (nor does a late \`release()\` of
 * the old reservation touch a connection the pool has since reconnected for someone else).
 */
const reservedCloseEdits = [
  [
    "    c.reserved.release = true\n\n    const sql = Sql(handler)\n    sql.release = () => {\n      c.reserved = null\n      onopen(c)\n    }\n\n    return sql\n\n    function handler(q) {\n      c.queue === full\n        ? queue.push(q)\n        : c.execute(q) || move(c, full)\n    }",
    "    c.reserved.release = true\n    /* switchboard: reserved close */\n    let closedWith = null\n    c.reserved.close = e => {\n      closedWith = e\n      while (queue.length)\n        queue.shift().reject(e)\n    }\n\n    const sql = Sql(handler)\n    sql.release = () => {\n      if (closedWith)\n        return\n      c.reserved = null\n      onopen(c)\n    }\n\n    return sql\n\n    function handler(q) {\n      if (closedWith)\n        return q.reject(closedWith)\n      c.queue === full\n        ? queue.push(q)\n        : c.execute(q) || move(c, full)\n    }",
  ],
  [
    "  function onclose(c, e) {\n    move(c, closed)\n    c.reserved = null\n",
    "  function onclose(c, e) {\n    move(c, closed)\n    c.reserved && c.reserved.close && c.reserved.close(e)\n    c.reserved = null\n",
  ],
];

/**
 * And in connection.js: a query's error that came before its connection closed (the backend
 * terminated mid-statement sends "terminating connection", then closes) stayed behind with
 * the query in the connection's state. The pool reconnects the same connection object, and
 * at its first ReadyForQuery the stale error failed the first query of the new session
 * (probe, session 16: after a backend was terminated, the next unrelated query failed with
 * 57P01). Patched: what was in progress is cleared when the connection closes (it has been
 * rejected by then).
 */
const closedStateEdits = [
  [
    "    !hadError && (query || sent.length) && error(Errors.connection('CONNECTION_CLOSED', options, socket))\n",
    "    !hadError && (query || sent.length) && error(Errors.connection('CONNECTION_CLOSED', options, socket))\n    /* switchboard: reserved close */\n    query = results = errorResponse = null\n",
  ],
];

const SCAN_MARK = "/* switchboard: indexOf scan */";

/**
 * smtp-server 3.21.6 looks for the end of DATA ("\\r\\n.\\r\\n") and for escape dots by
 * testing every byte of every chunk in a JavaScript loop (~3 ns a byte: 0.2 ms of the event
 * loop for a 64 KB chunk). Patched: jump from dot to dot with Buffer#indexOf (native
 * memchr); the loop body, and so what counts as a line-start dot, is unchanged.
 */
const smtpStreamEdits = [
  [
    "        for (i = 2; i < len - 2; i++) {\n            // if the dot is the first char in a line\n            if (chunk[i] === 0x2e && chunk[i - 1] === 0x0a) {",
    `        ${SCAN_MARK}\n        for (i = chunk.indexOf(0x2e, 2); i >= 0 && i < len - 2; i = chunk.indexOf(0x2e, i + 1)) {\n            // if the dot is the first char in a line\n            if (chunk[i] === 0x2e && chunk[i - 1] === 0x0a) {`,
  ],
];

/**
 * @zone-eu/mailsplit 5.4.19 (mailparser's splitter) finds each line end by testing every
 * byte in a loop over closure variables (~10 ns a byte in the parser threads). Patched: jump
 * to the next LF with Buffer#indexOf; what a line is does not change.
 */
const splitterEdits = [
  [
    "                // find next <LF>\n                if (chunk[i] !== 0x0a) {\n                    i++;\n                    continue;\n                }",
    `                // find next <LF>\n                if (chunk[i] !== 0x0a) {\n                    ${SCAN_MARK}\n                    const lf = chunk.indexOf(0x0a, i);\n                    i = lf < 0 ? chunk.length : lf;\n                    continue;\n                }`,
  ],
];

const KEEP_MARK = "/* switchboard: keep optimised closures */";

/**
 * V8 (Node 20) holds a function's optimised code only weakly from the shared feedback: a
 * closure created anew for every call (per chunk, per IMAP response line) loses its
 * TurboFan code at each major GC once no such closure is alive, and the next one is hot
 * again and compiled again — for the whole life of the process. In the ingest bench this
 * was ~12 recompiles of mailsplit's per-write line loop per parser thread and ~13 of
 * imapflow's response walker, 10–60 ms of compiler time each. Patched: the latest closures
 * of these sites stay reachable from a module variable (one message's context at most), so
 * their optimised code survives. Behaviour does not change.
 */
const splitterKeepEdits = [
  [
    "const YIELD_BYTES = 16 * 1024;\n",
    `const YIELD_BYTES = 16 * 1024;\n${KEEP_MARK}\nlet keptClosures = null;\n`,
  ],
  [
    "        setImmediate(iterateData);\n    }\n",
    "        keptClosures = [checkTrailingLinebreak, nextLine, onLine, iterateData];\n        setImmediate(iterateData);\n    }\n",
  ],
];
const tokenParserKeepEdits = [
  ["const STATE_ATOM = 0x001;\n", "const STATE_ATOM = 0x001;\nlet keptWalk = null;\n"],
  [
    "        await walk(this.tree);\n        return attributes;",
    `        ${KEEP_MARK}\n        keptWalk = walk;\n        await walk(this.tree);\n        return attributes;`,
  ],
];
const compilerKeepEdits = [
  [
    "const SEQ_RANGE = /^(\\d+|\\*)(:(\\d+|\\*))?$/;\n",
    "const SEQ_RANGE = /^(\\d+|\\*)(:(\\d+|\\*))?$/;\nlet keptClosures = null;\n",
  ],
  [
    "    if (response.attributes) {\n        let attributes = Array.isArray(response.attributes)",
    `    ${KEEP_MARK}\n    keptClosures = [emitEntry, walk];\n    if (response.attributes) {\n        let attributes = Array.isArray(response.attributes)`,
  ],
];

const SPECIES_MARK = "/* switchboard: species as data */";

/**
 * postgres.js's Query (a Promise subclass) and Result (an Array subclass) declare
 * \`static get [Symbol.species]()\` so that \`.then()\`/\`.map()\` return plain promises and
 * arrays. With the species as a getter V8 (Node 20) can never optimise their constructors:
 * every TurboFan attempt is aborted ("dependency change"), over and over for the life of the
 * process, and every query and result is built by unoptimised code (~6 µs a Query in a
 * micro-benchmark, 0.3 µs with the patch). Patched: the same species as a static data
 * property, which \`.then()\`/\`.map()\` read the same way.
 */
const querySpeciesEdits = [
  [
    "  static get [Symbol.species]() {\n    return Promise\n  }",
    `  ${SPECIES_MARK}\n  static [Symbol.species] = Promise`,
  ],
];
const resultSpeciesEdits = [
  [
    "  static get [Symbol.species]() {\n    return Array\n  }",
    `  ${SPECIES_MARK}\n  static [Symbol.species] = Array`,
  ],
];

const HEADER_KEY_MARK = "/* switchboard: header key memo */";

/**
 * nodemailer 10.6.0 normalises a header name (three regex replaces, one with a callback)
 * on every setHeader/getHeader/buildHeaders call, many times per MIME node: ~10 % of the
 * CPU of building a reply's MIME (bench/mime-build.ts profile). The result depends on the
 * key string alone, so it is memoised per string (bounded: the map is dropped at 512
 * names, custom header names are few). Non-string keys take the original path.
 */
const headerKeyEdits = [
  [
    "class MimeNode {\n    constructor(contentType, options) {",
    `${HEADER_KEY_MARK}\nconst _normalizedHeaderKeys = new Map();\nclass MimeNode {\n    constructor(contentType, options) {`,
  ],
  [
    "    _normalizeHeaderKey(key) {\n        key = (key || '')\n            .toString()",
    `    _normalizeHeaderKey(key) {\n        ${HEADER_KEY_MARK}\n        if (typeof key !== 'string') {\n            return this._normalizeHeaderKeyOnce(key);\n        }\n        let normalized = _normalizedHeaderKeys.get(key);\n        if (normalized === undefined) {\n            normalized = this._normalizeHeaderKeyOnce(key);\n            if (_normalizedHeaderKeys.size >= 512) {\n                _normalizedHeaderKeys.clear();\n            }\n            _normalizedHeaderKeys.set(key, normalized);\n        }\n        return normalized;\n    }\n    _normalizeHeaderKeyOnce(key) {\n        key = (key || '')\n            .toString()`,
  ],
];

/**
 * nodemailer 10.6.0's SMTP client escapes leading dots and normalises line ends of every
 * outgoing message (DataStream) by testing every byte in a JavaScript loop (in-process
 * A/B, a 2.6 KB message through the stream: 38 -> 21 µs of CPU). Only a CR or
 * LF, the byte after one, or a chunk's first byte can need an insert, so the loop jumps
 * between those with Buffer#indexOf; the test at each visited byte is the original's.
 */
const dataStreamEdits = [
  [
    "        for (i = 0, len = chunk.length; i < len; i++) {\n            const byte = chunk[i];",
    `        ${SCAN_MARK}
        // Only a CR or LF, the byte after one, or the chunk's first byte can need an
        // insert: jump between them with Buffer#indexOf; the test per byte is unchanged.
        let cr = chunk.indexOf(0x0d);
        let lf = chunk.indexOf(0x0a);
        const next = at => {
            const b = chunk[at];
            if (b === 0x0d || b === 0x0a) {
                return at + 1;
            }
            if (cr !== -1 && cr <= at) {
                cr = chunk.indexOf(0x0d, at + 1);
            }
            if (lf !== -1 && lf <= at) {
                lf = chunk.indexOf(0x0a, at + 1);
            }
            return cr === -1 ? (lf === -1 ? chunk.length : lf) : lf === -1 ? cr : Math.min(cr, lf);
        };
        for (i = 0, len = chunk.length; i < len; i = next(i)) {
            const byte = chunk[i];`,
  ],
];

const QP_MARK = "/* switchboard: linear trailing whitespace */";

/**
 * libqp 2.1.2 decodes quoted-printable after stripping each line's trailing whitespace with
 * \`/[\t ]+$/gm\`: at every position of a run of spaces or tabs that does not end its line,
 * the regex takes the rest of the run and gives it back, so the time is quadratic in the
 * run (25,000 spaces 1.3 s, 100,000 a parse timeout; found by a fuzz probe, ~100 KB of mail
 * cost 10 s of a parser thread per delivery). Patched: the match may only start where a
 * run starts (a lookbehind), which strips exactly the same characters in linear time.
 */
const qpEdits = [
  ["        .replace(/[\\t ]+$/gm, '')", `        ${QP_MARK}\n        .replace(/(?<![\\t ])[\\t ]+$/gm, '')`],
];

/** A file in both builds of a package: its ESM and its CommonJS copy. */
const postgresBuilds = (file) => [`postgres/src/${file}`, `postgres/cjs/src/${file}`];
const distBuilds = (pkg, file) => [`${pkg}/dist/esm/${file}`, `${pkg}/dist/cjs/${file}`];
const patch = (mark, edits, what) => ({ mark, edits, what: `the ${what} patch` });

const targets = [
  {
    files: postgresBuilds("connection.js"),
    patches: [
      patch(MARK, postgresEdits, "postgres.js write"),
      patch(BYTEA_MARK, byteaEdits, "postgres.js binary bytea"),
      patch(COPY_MARK, copyEdits, "postgres.js fewer copies"),
      patch(PIPE_MARK, pipeEdits, "postgres.js pipelining past backpressure"),
      patch(RESERVED_CLOSE_MARK, closedStateEdits, "postgres.js state cleared on close"),
    ],
  },
  {
    files: postgresBuilds("index.js"),
    patches: [
      patch(PIPE_MARK, pipeIndexEdits, "postgres.js reserved pipeline"),
      patch(RESERVED_CLOSE_MARK, reservedCloseEdits, "postgres.js reserved close"),
    ],
  },
  {
    files: postgresBuilds("bytes.js"),
    patches: [patch(COPY_MARK, copyBytesEdits, "postgres.js builder raw")],
  },
  {
    files: postgresBuilds("query.js"),
    patches: [patch(SPECIES_MARK, querySpeciesEdits, "postgres.js Query species")],
  },
  {
    files: postgresBuilds("result.js"),
    patches: [patch(SPECIES_MARK, resultSpeciesEdits, "postgres.js Result species")],
  },
  {
    files: distBuilds("smtp-server", "smtp-stream.js"),
    patches: [patch(SCAN_MARK, smtpStreamEdits, "smtp-server DATA scan")],
  },
  {
    files: distBuilds("nodemailer", "mime-node/index.js"),
    patches: [patch(HEADER_KEY_MARK, headerKeyEdits, "nodemailer header key memo")],
  },
  {
    files: distBuilds("nodemailer", "smtp-connection/data-stream.js"),
    patches: [patch(SCAN_MARK, dataStreamEdits, "nodemailer DATA scan")],
  },
  {
    files: ["@zone-eu/mailsplit/lib/message-splitter.js"],
    patches: [
      patch(SCAN_MARK, splitterEdits, "mailsplit line scan"),
      patch(KEEP_MARK, splitterKeepEdits, "mailsplit closure keep-alive"),
    ],
  },
  {
    files: ["libqp/lib/libqp.js"],
    patches: [patch(QP_MARK, qpEdits, "libqp linear trailing whitespace")],
  },
  {
    files: distBuilds("imapflow", "handler/token-parser.js"),
    patches: [patch(KEEP_MARK, tokenParserKeepEdits, "imapflow parser keep-alive")],
  },
  {
    files: distBuilds("imapflow", "handler/imap-compiler.js"),
    patches: [patch(KEEP_MARK, compilerKeepEdits, "imapflow compiler keep-alive")],
  },
];

const missing = [];
let applied = 0;
for (const { files, patches } of targets) {
  if (!files.some((rel) => existsSync(join(root, rel)))) missing.push(`${files.join(" / ")}: not installed`);
  for (const rel of files) {
    const file = join(root, rel);
    if (!existsSync(file)) continue;
    let src = readFileSync(file, "utf8");
    let changed = false;
    for (const { mark, edits, what } of patches) {
      if (src.includes(mark)) {
        applied++;
        continue;
      }
      if (check) {
        missing.push(`${rel}: ${what} not applied`);
        continue;
      }
      for (const [from, to] of edits) {
        if (!src.includes(from)) throw new Error(`patch-deps: ${rel} changed upstream; review ${what}`);
        src = src.replace(from, to);
      }
      changed = true;
    }
    if (!changed) continue;
    writeFileSync(file, src);
    console.log(`patch-deps: patched ${rel}`);
  }
}
if (check) {
  if (missing.length > 0) {
    console.error(`patch-deps: missing (run \`node scripts/patch-deps.mjs\`):\n  ${missing.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`patch-deps: all ${applied} patches applied`);
}
