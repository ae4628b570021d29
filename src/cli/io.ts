// What a command needs from the outside world, passed in so commands run the same under test as in the binary.

import type { StartBridgeOptions, RunningBridge } from "../main.js";

export const EXIT_OK = 0;
/** Something failed at run time (the homeserver refused us, the store could not open, ...). */
export const EXIT_RUNTIME = 1;
/** The command line or the config is wrong: fixing the invocation or the file fixes it. */
export const EXIT_USAGE = 2;

export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
  signals: SignalSource;
  /** Where the daemon's log lines go (standard error in the binary). */
  logSink?: { write(line: string): unknown };
  /** The composition root; tests pass their own to exercise `start` without a homeserver. */
  startBridge?: (o: StartBridgeOptions) => Promise<RunningBridge>;
}

export class UsageError extends Error {
  readonly code = "usage";
}

export function processIo(): CliIo {
  return {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    env: process.env,
    signals: process,
  };
}
