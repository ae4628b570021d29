// Feeds the e2ee_* metrics from the Matrix adapter's crypto observer. The shape is the observer's, declared here
// (structurally) so metrics imports nothing from src/matrix.
import { safeLabel } from "./labels.js";
import type { Metrics } from "./metrics.js";

export interface E2eeObserver {
  request(kind: string, seconds: number, ok: boolean): void;
  olmMessage(kind: string): void;
  roomEvent(what: "encrypted" | "decrypted"): void;
  decryptionFailure(reason: string): void;
  devices(loaded: number): void;
}

export function e2eeObserver(m: Metrics): E2eeObserver {
  return {
    request: (kind, seconds, ok) => {
      const k = safeLabel(kind);
      m.e2eeRequests.inc({ kind: k, outcome: ok ? "ok" : "error" });
      m.e2eeRequestDuration.observe({ kind: k }, seconds);
    },
    olmMessage: (kind) => m.e2eeOlmMessages.inc({ kind: safeLabel(kind) }),
    roomEvent: (what) => m.e2eeRoomEvents.inc({ what }),
    decryptionFailure: (reason) => m.e2eeDecryptionFailures.inc({ reason: safeLabel(reason) }),
    devices: (loaded) => m.e2eeDevices.set(loaded),
  };
}
