/**
 * A process-wide allowance of bytes held in memory, shared by every IMAP mailbox worker
 * (connectors/imap.ts): a batch of mail takes its bytes before its sources are fetched and
 * gives them back once it is ingested. Each worker's batch is capped already; this caps
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
    return new Promise((resolve) => {
      const grant = () => {
        this.heldBytes += n;
        this.peakBytes = Math.max(this.peakBytes, this.heldBytes);
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.heldBytes -= n;
          this.serve();
        });
      };
      if (this.waiting.length === 0 && this.fits(n)) grant();
      else this.waiting.push({ bytes: n, grant });
    });
  }

  private fits(n: number): boolean {
    return this.heldBytes === 0 || this.heldBytes + n <= this.limit;
  }

  private serve(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) this.waiting.shift()!.grant();
  }
}
