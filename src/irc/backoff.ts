// Reconnect delays for puppets: jittered exponential backoff, so a server restart does not bring every puppet
// back in the same second (which also trips connection throttles on most networks).

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** 0..1: the share of each delay that is randomised. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 2_000, maxMs: 300_000, jitter: 0.3 };

/** Delay before attempt `attempt` (1-based); `random` returns a number in [0, 1). */
export function backoffDelayMs(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(base * (1 - opts.jitter) + base * opts.jitter * random());
}
