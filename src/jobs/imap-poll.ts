import type { ImapConnector } from "../connectors/imap.js";
import type { JobRunner, QueueSpec } from "./boss.js";

/**
 * The reconciliation poll (issue #3): a safety net under IDLE. One job per account per
 * interval across all instances (pg-boss singleton slot); the handler syncs under the
 * mailbox's advisory lock, or skips when another instance's worker holds it.
 */
export const IMAP_POLL_QUEUE: QueueSpec = { name: "imap-poll", retryLimit: 0 };

export interface ImapPollJob {
  accountId: string;
}

export async function registerImapPoll(jobs: JobRunner, imap: ImapConnector): Promise<void> {
  await jobs.register<ImapPollJob>(IMAP_POLL_QUEUE, async (data) => {
    await imap.pollAccount(data.accountId);
  });
}

/** Called by the supervisor each interval; the singleton slot makes N instances send one job. */
export async function scheduleImapPolls(
  jobs: JobRunner,
  accountIds: string[],
  pollSeconds: number,
): Promise<void> {
  for (const accountId of accountIds) {
    await jobs.boss.send(IMAP_POLL_QUEUE.name, { accountId } satisfies ImapPollJob, {
      singletonKey: accountId,
      singletonSeconds: pollSeconds,
      retryLimit: 0,
      // A large backlog is drained by the poll that finds it; it must not be expired midway.
      expireInSeconds: 30 * 60,
    });
  }
}
