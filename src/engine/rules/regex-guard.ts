/**
 * Static screening of rule regexes before they run on untrusted mail (ReDoS).
 *
 * JavaScript regexes backtrack, and a rule runs against bodies an attacker writes. The
 * patterns refused here are the ones whose worst case on a 64 KB body is minutes or
 * worse, measured on this project's 2-core machine:
 * - nested quantifiers — a repeated group that itself contains a repetition or an
 *   optional part, `(a+)+`, `(\w+\s?)*`, `(?:ab*){2,}`, `(a?a?)+` — exponential;
 * - repeated alternation, `(a|ab)+`, `(?:x|y)*` — exponential when branches overlap,
 *   and telling overlapping from disjoint branches is not worth the risk;
 * - back-references, `\1`, `\k<n>` — not regular, exponential in general;
 * - two unbounded repetitions in one sequence that can eat the same characters with
 *   nothing between them that the first cannot eat: `\s*\s*`, `\d+\d+`, `.*a.*b`,
 *   `\w+x\w+` — each such pair adds a factor n (`.*a.*b` takes ~14 s on 2,000 chars).
 *   `\w+@\w+` stays allowed: `@` is not a word character, so it pins the split.
 * What remains is at worst quadratic in the input (a lone `[a-z]+x` over 64 KB of
 * letters), which the 64 KB body cap keeps finite.
 */

export const REGEX_MAX_LENGTH = 500;

/** Above this a counted repetition (`{1,50}`) is treated like an unbounded one. */
const LARGE_COUNT = 20;

interface CharAtom {
  kind: "char";
  /** Source of the atom alone (`\d`, `[^a-z]`, `.`, `x`), compilable on its own. */
  source: string;
}
interface GroupAtom {
  kind: "group";
  branches: Term[][];
  /** Lookarounds match no characters. */
  zeroWidth: boolean;
}
interface AssertAtom {
  kind: "assert";
}
type Atom = CharAtom | GroupAtom | AssertAtom;

interface Term {
  atom: Atom;
  min: number;
  max: number;
}

class Unsafe extends Error {}

/** Parses just enough of the pattern to judge it; syntax errors are left to RegExp. */
class Parser {
  private i = 0;
  constructor(private readonly src: string) {}

  parse(): Term[][] {
    const branches = this.alternation();
    return branches;
  }

  private alternation(): Term[][] {
    const branches: Term[][] = [[]];
    while (this.i < this.src.length) {
      const ch = this.src[this.i];
      if (ch === ")") break;
      if (ch === "|") {
        this.i++;
        branches.push([]);
        continue;
      }
      const atom = this.atom();
      const term: Term = { atom, min: 1, max: 1 };
      this.quantifier(term);
      (branches[branches.length - 1] as Term[]).push(term);
    }
    return branches;
  }

  private atom(): Atom {
    const src = this.src;
    const start = this.i;
    const ch = src[this.i];
    if (ch === "(") {
      this.i++;
      let zeroWidth = false;
      if (src[this.i] === "?") {
        const rest = src.slice(this.i, this.i + 4);
        if (rest.startsWith("?:")) this.i += 2;
        else if (rest.startsWith("?=") || rest.startsWith("?!")) {
          this.i += 2;
          zeroWidth = true;
        } else if (rest.startsWith("?<=") || rest.startsWith("?<!")) {
          this.i += 3;
          zeroWidth = true;
        } else if (rest.startsWith("?<")) {
          const close = src.indexOf(">", this.i);
          this.i = close < 0 ? src.length : close + 1;
        }
      }
      const branches = this.alternation();
      if (src[this.i] === ")") this.i++;
      return { kind: "group", branches, zeroWidth };
    }
    if (ch === "[") {
      this.i++;
      while (this.i < src.length && src[this.i] !== "]") this.i += src[this.i] === "\\" ? 2 : 1;
      this.i++;
      return { kind: "char", source: src.slice(start, this.i) };
    }
    if (ch === "\\") {
      const next = src[this.i + 1] ?? "";
      if (/[1-9]/.test(next) || (next === "k" && src[this.i + 2] === "<")) {
        throw new Unsafe("back-references are not allowed");
      }
      if (next === "b" || next === "B") {
        this.i += 2;
        return { kind: "assert" };
      }
      const m = /^\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|c[A-Za-z]|.)/s.exec(src.slice(this.i));
      this.i += m === null ? 1 : m[0].length;
      return { kind: "char", source: src.slice(start, this.i) };
    }
    this.i++;
    if (ch === "^" || ch === "$") return { kind: "assert" };
    return { kind: "char", source: ch ?? "" };
  }

  private quantifier(term: Term): void {
    const src = this.src;
    const ch = src[this.i];
    if (ch === "*") [term.min, term.max] = [0, Number.POSITIVE_INFINITY];
    else if (ch === "+") [term.min, term.max] = [1, Number.POSITIVE_INFINITY];
    else if (ch === "?") [term.min, term.max] = [0, 1];
    else if (ch === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(this.i));
      // In non-unicode mode a brace that is no quantifier is a literal.
      if (m === null) return;
      term.min = Number(m[1]);
      term.max = m[2] === undefined ? term.min : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
      this.i += m[0].length - 1;
    } else return;
    this.i++;
    if (src[this.i] === "?") this.i++; // lazy
  }
}

const repeats = (t: Term) => t.max > 1;
const unbounded = (t: Term) => t.max > LARGE_COUNT;

/** Any element of variable length (even `?`: `(a?a?)+` splits "aaaa" in exponentially many ways). */
function containsVariable(branches: Term[][]): boolean {
  return branches.some((seq) =>
    seq.some((t) => t.min !== t.max || (t.atom.kind === "group" && containsVariable(t.atom.branches))),
  );
}

// Characters to compare character sets on: ASCII plus a few from other ranges.
const PROBES = [
  ...Array.from({ length: 128 }, (_, i) => String.fromCharCode(i)),
  "é",
  "ß",
  "Ж",
  "中",
  "\u00a0",
  "\u2028",
  "\ud83d",
];

type CharSet = boolean[];

function charSet(atom: Atom, flags: string): CharSet {
  if (atom.kind === "char") {
    try {
      const re = new RegExp(`^(?:${atom.source})$`, flags);
      return PROBES.map((c) => re.test(c));
    } catch {
      return PROBES.map(() => true);
    }
  }
  // A group is judged as if it could match anything: conservative, and rare in rules.
  return PROBES.map(() => atom.kind === "group" && !atom.zeroWidth);
}

const overlaps = (a: CharSet, b: CharSet) => a.some((x, i) => x && b[i]);

function checkSequence(seq: Term[], flags: string): void {
  const sets = seq.map((t) => charSet(t.atom, flags));
  for (let i = 0; i < seq.length; i++) {
    if (!unbounded(seq[i] as Term)) continue;
    const first = sets[i] as CharSet;
    for (let j = i + 1; j < seq.length; j++) {
      const t = seq[j] as Term;
      if (t.atom.kind === "assert" || (t.atom.kind === "group" && t.atom.zeroWidth)) continue;
      const set = sets[j] as CharSet;
      if (unbounded(t) && overlaps(first, set)) {
        throw new Unsafe(
          "two unbounded repetitions can match the same text (like .*a.*b or \\s*\\s*); " +
            "use a character class that excludes what separates them",
        );
      }
      // A required piece the first repetition cannot match pins where it stops.
      if (t.min > 0 && !overlaps(first, set)) break;
    }
  }
}

function check(branches: Term[][], flags: string): void {
  for (const seq of branches) {
    checkSequence(seq, flags);
    for (const t of seq) {
      if (t.atom.kind !== "group") continue;
      if (repeats(t) && t.atom.branches.length > 1) {
        throw new Unsafe("a repeated group with alternatives, like (a|ab)+, can backtrack exponentially");
      }
      if (repeats(t) && containsVariable(t.atom.branches)) {
        throw new Unsafe(
          "a repeated group with a repetition or optional part inside, like (a+)+, can backtrack exponentially",
        );
      }
      check(t.atom.branches, flags);
    }
  }
}

/**
 * Why a rule regex is refused, or null when it is acceptable: too long, invalid, or
 * one of the catastrophic-backtracking shapes above. `flags` are those it will run with.
 */
export function regexProblem(source: string, flags: string): string | null {
  if (source.length > REGEX_MAX_LENGTH) return `at most ${REGEX_MAX_LENGTH} characters`;
  try {
    new RegExp(source, flags);
  } catch (e) {
    return `not a valid regular expression: ${(e as Error).message}`;
  }
  try {
    check(new Parser(source).parse(), flags);
  } catch (e) {
    if (e instanceof Unsafe) return e.message;
    throw e;
  }
  return null;
}
