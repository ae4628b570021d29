// The request a piece of work belongs to, carried across awaits (AsyncLocalStorage): log lines written while
// handling one Matrix event or one IRC message get its request_id without every function passing a child logger,
// and the metrics read when the work started (end-to-end bridging latency).

import { AsyncLocalStorage } from "node:async_hooks";
import type { LogFields } from "./logger.js";

export interface RequestContext {
  /** Added to every log line written inside the request (e.g. `{ request_id }`); never bodies or secrets. */
  readonly fields: LogFields;
  /** Date.now() when the request arrived. */
  readonly startedAt: number;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** Runs `fn` (and everything it awaits or schedules) as part of a request with these log fields. */
export function runInRequest<T>(fields: LogFields, fn: () => T, startedAt = Date.now()): T {
  return storage.run({ fields, startedAt }, fn);
}

export function currentRequest(): RequestContext | undefined {
  return storage.getStore();
}
