// matrix-appservice-bridge (and the bot SDK under it, which it hooks) log through a process-wide winston logger
// that, unconfigured, drops the library's own lines while the SDK prints unstructured ones to the console. This
// routes both into our logger instead: one format, one level, and the same redaction as every other line.
// Kept apart from index.ts so that using the logger does not load the appservice library.

import { Writable } from "node:stream";
import { Logger as LibraryLogger } from "matrix-appservice-bridge";
import type { LogFields, Logger } from "./logger.js";

export function routeLibraryLogs(logger: Logger): void {
  const target = logger.child({ component: "appservice-library" });
  let pending = "";
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      pending += chunk.toString();
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        forward(target, pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
      done();
    },
  });
  // No console transport: everything goes to `sink`, as JSON lines, at every level; our logger filters.
  LibraryLogger.root.configureLogging({ json: true }, sink);
}

function forward(logger: Logger, line: string): void {
  if (!line.trim()) return;
  let entry: { level?: unknown; module?: unknown; requestId?: unknown; error?: unknown; message?: unknown; args?: unknown };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    return;
  }
  const fields: LogFields = { module: entry.module };
  if (entry.requestId !== undefined) fields["request_id"] = entry.requestId;
  if (entry.error !== undefined) fields["error"] = entry.error;
  if (entry.args !== undefined) fields["args"] = entry.args;
  const msg = typeof entry.message === "string" ? entry.message : "";
  switch (String(entry.level).toLowerCase()) {
    case "error":
      return logger.error(msg, fields);
    case "warn":
      return logger.warn(msg, fields);
    case "info":
      return logger.info(msg, fields);
    default:
      return logger.debug(msg, fields);
  }
}
