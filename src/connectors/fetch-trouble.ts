import { describeImapError } from "./imap-errors.js";

/** What the server said, and its code (imap-errors.ts), for the record's detail. */
function reasonOf(error: unknown): string {
  const { message, code } = describeImapError(error);
  return `${message}${code ? ` (${code})` : ""}`.slice(0, 500);
}

/**
 * What one mailbox's fetches have failed on, so that one message the server cannot deliver
 * does not stop the mailbox for good (SPEC §3: no input may stall the pipeline).
 *
 * A server may fail a FETCH for one message and take the whole batch with it: Dovecot
 * drops the session when a message's file cannot be read, Exchange answers NO for a
 * message it cannot convert to RFC 822, a proxy or a link cuts every connection after so
 * many bytes. The batch is all or nothing, and each new session started again from the
 * same checkpoint with the same batch: the mail before the bad one never landed either,
 * and nothing after it ever arrived.
 *
 * Now, after a batch failed, its UIDs are fetched one at a time (the mail before the bad
 * one lands; a link that cuts after a few MB carries one message per FETCH). A single UID
 * that failed `quarantineAfter` times in a row is recorded as rejected (`fetch_failed`,
 * with the server's error) and passed: the checkpoint moves on, the message stays on the
 * server for an admin to look at, and the rest of the mailbox is read. Kept in memory per
 * account by the connector: a restart starts the count again, which costs a few retries.
 */
export class FetchTrouble {
  /** UIDs up to here are fetched one at a time: a batch that reached them failed. */
  private carefulThrough = 0;
  private readonly failures = new Map<number, { count: number; error: string }>();
  private uidValidity: number | null = null;

  /** When each left-out UID's last miss was counted (`missed`). */
  private readonly missedAt = new Map<number, number>();

  constructor(
    readonly quarantineAfter = 3,
    /**
     * Misses of a left-out UID count only this far apart (the worker's retry wait). Every
     * new mail's IDLE wake-up starts a sync at once, and in a busy mailbox three syncs
     * within two seconds recorded as `fetch_failed` a message the server left out for four
     * (second re-probe, session 17).
     */
    readonly missGapMs = 0,
  ) {}

  /** The UIDs that follow are of this UIDVALIDITY: under a new one, what was known of the old UIDs goes. */
  validity(uidValidity: number): void {
    if (this.uidValidity === uidValidity) return;
    this.uidValidity = uidValidity;
    this.carefulThrough = 0;
    this.failures.clear();
    this.missedAt.clear();
  }

  /** How many UIDs from `uid` on the next batch asks for. */
  batchSize(uid: number, normal: number): number {
    return uid <= this.carefulThrough ? 1 : normal;
  }

  /** A FETCH of `uids` failed. */
  failed(uids: readonly number[], error: unknown): void {
    const last = uids.at(-1);
    if (last === undefined) return;
    this.carefulThrough = Math.max(this.carefulThrough, last);
    if (uids.length !== 1) return;
    const uid = uids[0]!;
    this.failures.set(uid, { count: (this.failures.get(uid)?.count ?? 0) + 1, error: reasonOf(error) });
  }

  /**
   * A FETCH answer left these out while the server still lists them (`stillListed`): each
   * counts a failed fetch, all at once. Unlike `failed`, the batches that follow stay
   * whole: the next try asks for all of them again in one FETCH, so several such UIDs cost
   * three tries together, not three each in turn.
   */
  missed(uids: readonly number[], error: unknown): void {
    const reason = reasonOf(error);
    const now = Date.now();
    for (const uid of uids) {
      const last = this.missedAt.get(uid);
      if (last !== undefined && now - last < this.missGapMs) continue;
      this.missedAt.set(uid, now);
      this.failures.set(uid, { count: (this.failures.get(uid)?.count ?? 0) + 1, error: reason });
    }
  }

  /** These were fetched: their count starts again. */
  fetched(uids: readonly number[]): void {
    for (const uid of uids) {
      this.failures.delete(uid);
      this.missedAt.delete(uid);
    }
  }

  /** Why `uid` is to be passed over, or null while it is still to be tried. */
  poisoned(uid: number): string | null {
    const f = this.failures.get(uid);
    if (!f || f.count < this.quarantineAfter) return null;
    return `the IMAP server failed to deliver it ${f.count} times in a row: ${f.error}`;
  }

  /** It was recorded as rejected. */
  passed(uid: number): void {
    this.failures.delete(uid);
    this.missedAt.delete(uid);
  }
}
