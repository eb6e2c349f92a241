import type {
  RoutingAgent,
  RoutingContext,
  RoutingQueue,
  RoutingSnapshot,
  WaitingConversation,
} from "../../src/engine/routing/types.js";
import { DEFAULT_QUEUE_ROUTING } from "../../src/engine/routing/types.js";

/** Builders for routing records: a routable default plus the one field a case changes. */

export const NOW = new Date("2024-06-03T12:00:00.000Z");
export const CTX: RoutingContext = { timeZone: "Europe/Berlin", businessOpen: true };

export function minutesAgo(minutes: number, now: Date = NOW): Date {
  return new Date(now.getTime() - minutes * 60_000);
}

export function secondsAgo(seconds: number, now: Date = NOW): Date {
  return new Date(now.getTime() - seconds * 1000);
}

export function agent(id: string, overrides: Partial<RoutingAgent> = {}): RoutingAgent {
  return {
    id,
    teamId: "team-1",
    presence: "AVAILABLE",
    loggedIn: true,
    inboxLimit: null,
    teamInboxLimit: 5,
    skills: [],
    activeCount: 0,
    parkedCount: 0,
    offeredCount: 0,
    dailyCount: 0,
    dailyCountDate: null,
    lastAssignedAt: null,
    lastAutoDeliveredAt: null,
    ...overrides,
  };
}

export function queue(overrides: Partial<RoutingQueue> = {}): RoutingQueue {
  return {
    id: "q-1",
    memberAgentIds: [],
    memberTeamIds: ["team-1"],
    ...DEFAULT_QUEUE_ROUTING,
    ...overrides,
  };
}

export function conv(id: string, overrides: Partial<WaitingConversation> = {}): WaitingConversation {
  return {
    id,
    priority: 0,
    enqueuedAt: minutesAgo(1),
    slaDueAt: null,
    requiredSkills: [],
    preferredAgentId: null,
    excludedAgentIds: [],
    ...overrides,
  };
}

export function snapshot(overrides: Partial<RoutingSnapshot> = {}): RoutingSnapshot {
  return { ...CTX, queue: queue(), agents: [], waiting: [], ...overrides };
}
