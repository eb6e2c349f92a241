// Applied after every install (npm "postinstall"): fixes in dependencies that upstream has
// not released yet. Idempotent; fails the install when a pinned file no longer looks as
// expected, so a version bump cannot silently drop a fix. See docs/architecture.md.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "node_modules");
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

const targets = [
  {
    files: ["postgres/src/connection.js", "postgres/cjs/src/connection.js"],
    patches: [
      { mark: MARK, edits: postgresEdits, what: "the postgres.js write patch" },
      { mark: BYTEA_MARK, edits: byteaEdits, what: "the postgres.js binary bytea patch" },
    ],
  },
  {
    files: ["postgres/src/query.js", "postgres/cjs/src/query.js"],
    patches: [{ mark: SPECIES_MARK, edits: querySpeciesEdits, what: "the postgres.js Query species patch" }],
  },
  {
    files: ["postgres/src/result.js", "postgres/cjs/src/result.js"],
    patches: [
      { mark: SPECIES_MARK, edits: resultSpeciesEdits, what: "the postgres.js Result species patch" },
    ],
  },
  {
    files: ["smtp-server/dist/esm/smtp-stream.js", "smtp-server/dist/cjs/smtp-stream.js"],
    patches: [{ mark: SCAN_MARK, edits: smtpStreamEdits, what: "the smtp-server DATA scan patch" }],
  },
  {
    files: ["@zone-eu/mailsplit/lib/message-splitter.js"],
    patches: [
      { mark: SCAN_MARK, edits: splitterEdits, what: "the mailsplit line scan patch" },
      { mark: KEEP_MARK, edits: splitterKeepEdits, what: "the mailsplit closure keep-alive patch" },
    ],
  },
  {
    files: ["imapflow/dist/esm/handler/token-parser.js", "imapflow/dist/cjs/handler/token-parser.js"],
    patches: [{ mark: KEEP_MARK, edits: tokenParserKeepEdits, what: "the imapflow parser keep-alive patch" }],
  },
  {
    files: ["imapflow/dist/esm/handler/imap-compiler.js", "imapflow/dist/cjs/handler/imap-compiler.js"],
    patches: [{ mark: KEEP_MARK, edits: compilerKeepEdits, what: "the imapflow compiler keep-alive patch" }],
  },
];

for (const { files, patches } of targets) {
  for (const rel of files) {
    const file = join(root, rel);
    if (!existsSync(file)) continue;
    let src = readFileSync(file, "utf8");
    let changed = false;
    for (const { mark, edits, what } of patches) {
      if (src.includes(mark)) continue;
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
