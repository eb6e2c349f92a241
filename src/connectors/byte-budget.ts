/**
 * A process-wide allowance of bytes held in memory. The IMAP mailbox workers share one
 * (connectors/imap.ts): a batch of mail takes its bytes before its sources are fetched and
 * gives them back once it is ingested. The SMTP listener has its own and never waits
 * (`holding`): a message that does not fit is answered 451 and sent again later. Each worker's batch is capped already; this caps
 * what all of them hold together — after an outage a hundred mailboxes may each have a
 * batch of large mail waiting at once.
 *
 * Requests are served in order (no large batch starves behind a stream of small ones). A
 * request larger than the whole allowance is served when nothing else is held, so one
 * large mail always gets through.
 */
export class ByteBudget {
  private heldBytes = 0;
  private peakBytes = 0;
  private readonly waiting: { bytes: number; grant: () => void }[] = [];

  constructor(readonly limit: number) {}

  /** Bytes held now, and the most ever held at once (for tests and metrics). */
  get held(): number {
    return this.heldBytes;
  }
  get peak(): number {
    return this.peakBytes;
  }

  /** Resolves when `bytes` may be held; call the returned function once to give them back. */
  acquire(bytes: number): Promise<() => void> {
    const n = Math.max(0, bytes);
    if (this.waiting.length === 0 && this.fits(n)) return Promise.resolve(this.take(n));
    return new Promise((resolve) => this.waiting.push({ bytes: n, grant: () => resolve(this.take(n)) }));
  }

  /**
   * A share that grows piece by piece and is given back whole, once (`release`): one
   * object per holder rather than a give-back function per piece, so a message received
   * in many small pieces holds no more than its bytes. `tryAdd` takes bytes now or not at
   * all (never waits, never ahead of a waiting request): for a holder that can ask its peer
   * to come back later instead (the SMTP listener answers 451).
   */
  holding(): BudgetHolding {
    let bytes = 0;
    let released = false;
    return {
      tryAdd: (n) => {
        const m = Math.max(0, n);
        if (released || this.waiting.length > 0 || !this.fits(m)) return false;
        this.heldBytes += m;
        this.peakBytes = Math.max(this.peakBytes, this.heldBytes);
        bytes += m;
        return true;
      },
      release: () => {
        if (released) return;
        released = true;
        this.heldBytes -= bytes;
        bytes = 0;
        this.serve();
      },
    };
  }

  private take(n: number): () => void {
    this.heldBytes += n;
    this.peakBytes = Math.max(this.peakBytes, this.heldBytes);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.heldBytes -= n;
      this.serve();
    };
  }

  private fits(n: number): boolean {
    return this.heldBytes === 0 || this.heldBytes + n <= this.limit;
  }

  private serve(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) this.waiting.shift()!.grant();
  }
}

/** What `ByteBudget.holding` returns. */
export interface BudgetHolding {
  /** Adds `bytes` now or not at all; false when they do not fit, others wait, or it was released. */
  tryAdd(bytes: number): boolean;
  /** Gives back everything added; later calls do nothing. */
  release(): void;
}
