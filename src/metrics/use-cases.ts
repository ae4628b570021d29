// The bridge's use cases count through a small port of their own (BridgeMetrics in src/bridge/ports.ts) so they
// stay testable without Prometheus; this maps that port onto the registry's metrics. Structural typing keeps
// src/metrics free of imports from src/bridge (imports flow main -> bridge -> metrics, never back).

import { safeLabel } from "./labels.js";
import type { Direction, IrcConnectionState, MessageKind, Metrics } from "./metrics.js";

export interface UseCaseMetrics {
  messageBridged(direction: Direction, networkId: string, encrypted: boolean, kind?: MessageKind): void;
  messageFailed(direction: Direction, reason: string): void;
  /** A connection moved between states (`from` null when it is new, `to` null when it is gone). */
  connectionState(networkId: string, from: IrcConnectionState | null, to: IrcConnectionState | null): void;
}

export function useCaseMetrics(m: Pick<Metrics, "messagesBridged" | "messagesFailed" | "ircConnections" | "ircConnectAttempts">): UseCaseMetrics {
  return {
    messageBridged(direction, networkId, encrypted, kind = "dm") {
      m.messagesBridged.inc({ network: safeLabel(networkId), direction, kind, otr: encrypted ? "true" : "false" });
    },
    messageFailed(direction, reason) {
      m.messagesFailed.inc({ direction, reason: safeLabel(reason) });
    },
    connectionState(networkId, from, to) {
      const network = safeLabel(networkId);
      if (from) m.ircConnections.dec({ network, state: from });
      if (to) m.ircConnections.inc({ network, state: to });
      if (to === "connecting") m.ircConnectAttempts.inc({ network });
    },
  };
}
