// Structured logging: one line per event, JSON or logfmt, on standard error by default. Every line goes through
// the redaction layer (redact.ts) after the fields are merged, so neither a caller nor a child logger's bound
// fields can put a message body or a secret on a line. Children share their root's level and format, so a
// SIGHUP reload reaches every logger already handed out.

import { randomBytes } from "node:crypto";
import { redact, scrubString } from "./redact.js";
import { currentRequest } from "./context.js";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "json" | "logfmt";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. `{ request_id }` for one Matrix transaction). */
  child(fields: LogFields): Logger;
  /** Changes level and format for this logger's whole family (root and every child). */
  configure(cfg: Partial<LoggingOptions>): void;
  isLevelEnabled(level: LogLevel): boolean;
}

export interface LoggingOptions {
  level: LogLevel;
  format: LogFormat;
}

export interface LoggerSink {
  write(line: string): unknown;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

interface Shared extends LoggingOptions {
  sink: LoggerSink;
  now: () => Date;
}

export function createLogger(
  cfg: LoggingOptions,
  opts: { sink?: LoggerSink; now?: () => Date; fields?: LogFields } = {},
): Logger {
  const shared: Shared = { level: cfg.level, format: cfg.format, sink: opts.sink ?? process.stderr, now: opts.now ?? (() => new Date()) };
  return makeLogger(shared, opts.fields ?? {});
}

/** A short random id to tie together the lines of one Matrix transaction or one command. */
export function newRequestId(): string {
  return randomBytes(6).toString("hex");
}

function makeLogger(shared: Shared, bound: LogFields): Logger {
  const log = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (RANK[level] < RANK[shared.level]) return;
    const safe = redact({ ...currentRequest()?.fields, ...bound, ...fields }, { stack: shared.level === "debug" }) as LogFields;
    const record: LogFields = { ts: shared.now().toISOString(), level, msg: scrubString(msg) };
    for (const [k, v] of Object.entries(safe)) record[k in record ? `field_${k}` : k] = v;
    shared.sink.write((shared.format === "json" ? jsonLine(record) : logfmtLine(record)) + "\n");
  };
  return {
    debug: (msg, fields) => log("debug", msg, fields),
    info: (msg, fields) => log("info", msg, fields),
    warn: (msg, fields) => log("warn", msg, fields),
    error: (msg, fields) => log("error", msg, fields),
    child: (fields) => makeLogger(shared, { ...bound, ...fields }),
    configure: (cfg) => {
      if (cfg.level) shared.level = cfg.level;
      if (cfg.format) shared.format = cfg.format;
    },
    isLevelEnabled: (level) => RANK[level] >= RANK[shared.level],
  };
}

function jsonLine(record: LogFields): string {
  return JSON.stringify(record);
}

// logfmt has no nesting: nested maps become dotted keys, lists of plain values are comma-joined, other lists JSON.
function logfmtLine(record: LogFields): string {
  const parts: string[] = [];
  const add = (key: string, v: unknown): void => {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) add(`${key}.${k}`, x);
      return;
    }
    parts.push(`${logfmtKey(key)}=${logfmtValue(v)}`);
  };
  for (const [k, v] of Object.entries(record)) add(k, v);
  return parts.join(" ");
}

function logfmtKey(k: string): string {
  return k.replace(/[^A-Za-z0-9_.\-]/g, "_") || "_";
}

function logfmtValue(v: unknown): string {
  if (v === undefined || v === null) return "";
  const s =
    typeof v === "string"
      ? v
      : Array.isArray(v)
        ? v.every((x) => ["string", "number", "boolean"].includes(typeof x) && !String(x).includes(",")) ? v.join(",") : JSON.stringify(v)
        : String(v);
  // Quote anything with spaces, quotes, '=' or control characters; JSON string escaping keeps it on one line.
  return s === "" || /[\s"=\\\x00-\x1f\x7f]/.test(s) ? JSON.stringify(s) : s;
}
