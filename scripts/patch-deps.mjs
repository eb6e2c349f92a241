// Applied after every install (npm "postinstall"): fixes in dependencies that upstream has
// not released yet. Idempotent; fails the install when a pinned file no longer looks as
// expected, so a version bump cannot silently drop a fix. See docs/operations.md.
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

for (const rel of ["postgres/src/connection.js", "postgres/cjs/src/connection.js"]) {
  const file = join(root, rel);
  if (!existsSync(file)) continue;
  let src = readFileSync(file, "utf8");
  if (src.includes(MARK)) continue;
  for (const [from, to] of postgresEdits) {
    if (!src.includes(from))
      throw new Error(`patch-deps: ${rel} changed upstream; review the postgres.js patch`);
    src = src.replace(from, to);
  }
  writeFileSync(file, src);
  console.log(`patch-deps: patched ${rel}`);
}
