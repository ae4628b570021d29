// Metrics taken at the seams main.ts wires, so src/irc, src/matrix and src/bridge never import Prometheus: the
// Matrix port's calls (method, outcome, latency), and each IRC puppet's lines, connect failures and send queue.
// Everything here is typed structurally; labels are method names, network ids and reason codes, never who.

import { currentRequest, newRequestId, runInRequest } from "../log/index.js";
import { safeLabel } from "./labels.js";
import type { Direction, Metrics } from "./metrics.js";
import { timeAsyncMethods } from "./timed-proxy.js";

/**
 * Wraps every async method of `target` (the Matrix port) so each call counts in matrix_api_calls_total by method and
 * outcome (ok / error) and its latency in matrix_api_call_duration_seconds. Sync methods and properties pass through.
 */
export function instrumentMatrixPort<T extends object>(target: T, metrics: Pick<Metrics, "matrixApiCalls" | "matrixApiDuration">): T {
  return timeAsyncMethods(target, (method) => {
    const end = metrics.matrixApiDuration.startTimer({ method });
    return (outcome) => {
      end();
      metrics.matrixApiCalls.inc({ method, outcome });
    };
  });
}

/** The part of an IRC puppet the counting needs: the send methods return the number of lines written or queued. */
export interface CountablePuppet {
  say(target: string, text: string): number;
  notice(target: string, text: string): number;
  action(target: string, text: string): number;
  readonly queuedLines?: number;
}

export interface CountablePuppetEvents {
  onMessage(msg: unknown): void;
  onConnected(info: { nick: string }): void;
  onDisconnected(info: { reason: string; willRetry: boolean; wasConnected?: boolean }): void;
  onQueueWait?(waitedMs: number): void;
}

/**
 * Wraps a puppet factory: lines sent (what say/notice/action report) and received (messages addressed to the puppet)
 * per network, connect failures by reason (an outage before the connection came up), the reconnect that ends an
 * outage as one more connect attempt (the bridge counts the first when it starts the puppet; the puppet reports
 * outages, not each retry inside one), and the send queue depth of the live puppets, read at scrape time.
 */
export function instrumentPuppetFactory<R extends { networkId: string }, E extends CountablePuppetEvents, P extends CountablePuppet>(
  factory: (req: R, events: E) => P,
  metrics: Pick<Metrics, "ircLinesSent" | "ircLinesReceived" | "ircConnectAttempts" | "ircConnectFailures" | "ircSendQueueDepth" | "ircSendQueueWait" | "onCollect"> &
    Partial<Pick<Metrics, "otrAkeStarted" | "otrFragmentsReassembled">>,
): (req: R, events: E) => P {
  const live = new Map<P, string>();
  metrics.onCollect(() => {
    const depth = new Map<string, number>();
    for (const [p, network] of live) depth.set(network, (depth.get(network) ?? 0) + (p.queuedLines ?? 0));
    metrics.ircSendQueueDepth.reset();
    for (const [network, n] of depth) metrics.ircSendQueueDepth.set({ network }, n);
  });
  return (req, events) => {
    const network = safeLabel(req.networkId);
    let down = false;
    const counted: E = {
      ...events,
      onMessage: (msg: unknown) => {
        metrics.ircLinesReceived.inc({ network });
        const text = (msg as { text?: unknown } | null)?.text;
        if (typeof text === "string") {
          if (isDhCommit(text)) metrics.otrAkeStarted?.inc();
          if (isLastFragment(text)) metrics.otrFragmentsReassembled?.inc();
        }
        // Starts the clock of message_bridge_latency_seconds (irc_to_matrix) for whatever this message causes.
        runInRequest({}, () => events.onMessage(msg));
      },
      onQueueWait: (waitedMs: number) => {
        metrics.ircSendQueueWait.observe({ network }, waitedMs / 1000);
        events.onQueueWait?.(waitedMs);
      },
      onConnected: (info: { nick: string }) => {
        if (down) metrics.ircConnectAttempts.inc({ network });
        down = false;
        events.onConnected(info);
      },
      onDisconnected: (info: { reason: string; willRetry: boolean; wasConnected?: boolean }) => {
        down = info.willRetry;
        if (info.wasConnected === false) metrics.ircConnectFailures.inc({ network, reason: reasonLabel(info.reason) });
        if (!info.willRetry) live.delete(puppet);
        events.onDisconnected(info as never);
      },
    };
    const puppet = factory(req, bindAll(events, counted));
    live.set(puppet, network);
    const sent = (n: number, text: string) => {
      if (n > 0) metrics.ircLinesSent.inc({ network }, n);
      if (n > 0 && isDhCommit(text)) metrics.otrAkeStarted?.inc();
      return n;
    };
    return new Proxy(puppet, {
      get(obj, prop, receiver) {
        if (prop === "say" || prop === "notice" || prop === "action") {
          return (target: string, text: string) => sent(obj[prop](target, text), text);
        }
        const v = Reflect.get(obj, prop, receiver) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(obj) : v;
      },
    });
  };
}

// Every OTR AKE begins with a DH-Commit (version 3 or 2, type 0x02: base64 "AAMC" / "AAIC"), whole or as the first
// piece of a fragmented message; one seen in either direction is one AKE started by us or by the peer. Only this
// prefix of OTR wire data is looked at, never a plaintext.
function isDhCommit(text: string): boolean {
  return /^\?OTR:AA[MI]C/.test(text) || /^\?OTR(\|[0-9a-fA-F]+\|[0-9a-fA-F]+)?,0*1,\d+,\?OTR:AA[MI]C/.test(text);
}

// The last piece of a fragmented OTR message from the peer (k == n > 1): the library reassembles the message then.
function isLastFragment(text: string): boolean {
  const m = /^\?OTR(?:\|[0-9a-fA-F]+\|[0-9a-fA-F]+)?,0*(\d+),0*(\d+),/.exec(text);
  return m !== null && m[1] === m[2] && Number(m[2]) > 1;
}

/** Events objects may be class instances: methods not overridden are bound to the original. */
function bindAll<E extends object>(original: E, overrides: Partial<E>): E {
  const out: Record<string, unknown> = {};
  let o: object | null = original;
  while (o && o !== Object.prototype) {
    for (const k of Object.getOwnPropertyNames(o)) {
      if (k === "constructor" || k in out) continue;
      const v = (original as Record<string, unknown>)[k];
      out[k] = typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(original) : v;
    }
    o = Object.getPrototypeOf(o) as object | null;
  }
  return Object.assign(out, overrides) as E;
}

// Puppet reasons read "could not connect: ECONNREFUSED" (a socket error code) or "could not connect" (the server
// closed before registering; its ERROR text may carry a nick or host, so it is never a label).
function reasonLabel(reason: string): string {
  const code = /^could not connect: ([A-Za-z][A-Za-z0-9_-]{0,40})$/.exec(reason)?.[1];
  return code ? safeLabel(code) : "closed_before_registration";
}

export interface MatrixEventHandlers {
  onInvite(e: never): Promise<void>;
  onMessage(e: never): Promise<void>;
  onMembership(e: never): Promise<void>;
}

/**
 * Wraps the bridge's handlers of Matrix events (which the appservice library hands over one by one, out of each
 * transaction): each event is handled as a request with its own `request_id` on every log line it causes, counted in
 * matrix_transactions_total by outcome and timed in matrix_transaction_duration_seconds. Errors are rethrown.
 */
export function instrumentMatrixHandlers<H extends MatrixEventHandlers>(
  handlers: H,
  metrics: Pick<Metrics, "matrixTransactions" | "matrixTransactionDuration"> | null,
): H {
  const wrap = (name: keyof MatrixEventHandlers) => (e: never) =>
    runInRequest({ request_id: newRequestId() }, async () => {
      const end = metrics?.matrixTransactionDuration.startTimer();
      try {
        await (handlers[name] as (e: never) => Promise<void>).call(handlers, e);
        metrics?.matrixTransactions.inc({ outcome: "ok" });
      } catch (err) {
        metrics?.matrixTransactions.inc({ outcome: "error" });
        throw err;
      } finally {
        end?.();
      }
    });
  const wrapped = { onInvite: wrap("onInvite"), onMessage: wrap("onMessage"), onMembership: wrap("onMembership") };
  // A proxy, not a copy: the handlers are a class instance, and other handler methods keep working unwrapped.
  return new Proxy(handlers, {
    get(obj, prop, receiver) {
      if (prop === "onInvite" || prop === "onMessage" || prop === "onMembership") return wrapped[prop];
      const v = Reflect.get(obj, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(obj) : v;
    },
  });
}

/** Observes the time since the current request (a Matrix event or IRC message) arrived, when there is one. */
export function observeBridgeLatency(metrics: Pick<Metrics, "messageLatency">, direction: Direction): void {
  const started = currentRequest()?.startedAt;
  if (started !== undefined) metrics.messageLatency.observe({ direction }, (Date.now() - started) / 1000);
}

/** message_bridge_handoff_seconds: the same clock, stopped when the message is handed to the other side. */
export function observeBridgeHandoff(metrics: Pick<Metrics, "messageHandoff">, direction: Direction): void {
  const started = currentRequest()?.startedAt;
  if (started !== undefined) metrics.messageHandoff.observe({ direction }, (Date.now() - started) / 1000);
}

/** What the OTR pipeline says about each conversation it holds: no names, only the state. */
export interface OtrSessionSummary {
  state: "plaintext" | "encrypted" | "finished";
  verified: boolean;
  version: 2 | 3 | null;
}

/** otr_sessions{state, version} read from the live conversations at each scrape. */
export function watchOtrSessions(metrics: Pick<Metrics, "otrSessions" | "onCollect">, summary: () => readonly OtrSessionSummary[]): void {
  metrics.onCollect(() => {
    const counts = new Map<string, { state: string; version: string; n: number }>();
    for (const s of summary()) {
      const state = s.state === "encrypted" ? (s.verified ? "encrypted_verified" : "encrypted_unverified") : s.state;
      const version = s.version === null ? "none" : String(s.version);
      const k = `${state}/${version}`;
      const c = counts.get(k) ?? { state, version, n: 0 };
      c.n++;
      counts.set(k, c);
    }
    metrics.otrSessions.reset();
    for (const c of counts.values()) metrics.otrSessions.set({ state: c.state, version: c.version }, c.n);
  });
}

/** Times each key generation into otr_key_generation_duration_seconds (failures too). */
export function timeKeyGeneration<K>(generate: () => Promise<K>, metrics: Pick<Metrics, "otrKeyGeneration">): () => Promise<K> {
  return async () => {
    const end = metrics.otrKeyGeneration.startTimer();
    try {
      return await generate();
    } finally {
      end();
    }
  };
}

/** irc_reconnect_queue_size: connections waiting for a connect slot on any network, read at scrape time. */
export function watchConnectQueue(metrics: Pick<Metrics, "ircReconnectQueue" | "onCollect">, gates: Iterable<{ readonly queued: number }>): void {
  const all = [...gates];
  metrics.onCollect(() => metrics.ircReconnectQueue.set(all.reduce((sum, gate) => sum + gate.queued, 0)));
}
