// Prometheus metrics for the bridge and the listener that serves them.
export {
  createMetrics,
  includeBridgeLibraryMetrics,
  instrumentStore,
  MetricsRegistry,
  PREFIX,
  type Direction,
  type IrcConnectionState,
  type MessageKind,
  type Metrics,
  type OtrEventLike,
  type OtrSessionState,
} from "./metrics.js";
export { startMetricsServer, MetricsServerError, type MetricsServer, type MetricsServerOptions, type Readiness } from "./server.js";
export { findUnsafeLabels, findUnsafeLabelsInText, safeLabel, type UnsafeLabel } from "./labels.js";
export { watchConnectQueue, instrumentMatrixHandlers, instrumentMatrixPort, instrumentPuppetFactory, observeBridgeLatency, observeBridgeHandoff, timeKeyGeneration, watchOtrSessions, type OtrSessionSummary, type CountablePuppet, type CountablePuppetEvents } from "./instrument.js";
export { useCaseMetrics, type UseCaseMetrics } from "./use-cases.js";
export { e2eeObserver, type E2eeObserver } from "./e2ee.js";
export { BridgedTracker, type GhostNamer, type RoomStoreLike } from "./bridged.js";
