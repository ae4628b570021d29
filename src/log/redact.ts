// The redaction layer every log line passes through. The house rule is that no message body, secret, password,
// token or key reaches a log line at any level, so this does not trust callers to remember: fields are dropped by
// name (recursively, whatever the nesting), OTR wire data is scrubbed out of any string, and byte arrays (keys,
// MACs, ciphertext) are reduced to their length.

export const REDACTED = "[redacted]";

// Compared after normalisation (camelCase -> snake_case, lowercase, '-' -> '_').
const SENSITIVE_NAMES = new Set([
  "body", "formatted_body", "text", "plaintext", "message", "content", "raw", "line", "lines", "reason_text",
  "secret", "secrets", "password", "passwd", "pass", "pw", "passphrase", "answer", "question",
  "token", "tokens", "access_token", "as_token", "hs_token", "refresh_token", "authorization", "cookie",
  "key", "keys", "private_key", "privkey", "master_key", "sealed", "ciphertext", "mac", "mac_key",
  "ssid", "x", "gx", "gy", "shared_secret", "sasl",
]);
const SENSITIVE_SUFFIXES = ["_body", "_text", "_secret", "_password", "_passwd", "_token", "_key", "_keys", "_plaintext"];
const SENSITIVE_PREFIXES = ["password", "secret", "token", "private_key", "plaintext"];

function normalise(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/-/g, "_").toLowerCase();
}

export function isSensitiveField(name: string): boolean {
  const n = normalise(name);
  if (SENSITIVE_NAMES.has(n)) return true;
  if (SENSITIVE_SUFFIXES.some((s) => n.endsWith(s))) return true;
  return SENSITIVE_PREFIXES.some((p) => n.startsWith(p));
}

// OTR data, fragments (v3 `?OTR|`, v2 `?OTR,`) and error messages carry ciphertext or peer text; the query tag
// (`?OTRv23?`) is harmless and kept so logs still show that an AKE was offered.
const OTR_DATA = /\?OTR(?:[:|,]|Error:)[^\s]*/g;
const MAX_STRING = 1000;

// Objects that reached a string before reaching us (JSON.stringify, util.inspect, URLs in library log lines):
// `"body":"..."`, `body: '...'` and `?access_token=...` lose their values when the name is a sensitive one.
const EMBEDDED_JSON = /"([A-Za-z0-9_\-]{1,40})"(\s*:\s*)"(?:[^"\\]|\\.)*"/g;
const EMBEDDED_INSPECT = /\b([A-Za-z_][A-Za-z0-9_]{0,39})(: )(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")/g;
const QUERY_SECRET = /([?&](?:access_token|token|password|as_token|hs_token)=)[^&\s#]*/gi;

export function scrubString(s: string): string {
  const scrubbed = s
    .replace(OTR_DATA, "?OTR:[redacted]")
    .replace(EMBEDDED_JSON, (m, name: string, sep: string) => (isSensitiveField(name) ? `"${name}"${sep}"${REDACTED}"` : m))
    .replace(EMBEDDED_INSPECT, (m, name: string, sep: string) => (isSensitiveField(name) ? `${name}${sep}'${REDACTED}'` : m))
    .replace(QUERY_SECRET, `$1${REDACTED}`);
  return scrubbed.length > MAX_STRING ? `${scrubbed.slice(0, MAX_STRING)}...[${scrubbed.length} chars]` : scrubbed;
}

const MAX_DEPTH = 6;
const MAX_ITEMS = 50;

/** A copy of `value` that is safe to log. */
export function redact(value: unknown, opts: { stack?: boolean } = {}): unknown {
  return walk(value, 0, new WeakSet(), opts.stack ?? false);
}

function walk(v: unknown, depth: number, seen: WeakSet<object>, stack: boolean): unknown {
  if (v === null || v === undefined || typeof v === "boolean" || typeof v === "number") return v;
  if (typeof v === "string") return scrubString(v);
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "symbol" || typeof v === "function") return `[${typeof v}]`;
  if (v instanceof Uint8Array || v instanceof ArrayBuffer) return `[${v.byteLength} bytes]`;
  if (v instanceof Date) return v.toISOString();
  if (seen.has(v)) return "[circular]";
  if (depth >= MAX_DEPTH) return "[nested]";
  seen.add(v);
  try {
    if (v instanceof Error) return errorFields(v, depth, seen, stack);
    if (v instanceof Map) return walk(Object.fromEntries(v), depth, seen, stack);
    if (v instanceof Set) return walk([...v], depth, seen, stack);
    if (Array.isArray(v)) {
      const out = v.slice(0, MAX_ITEMS).map((x) => walk(x, depth + 1, seen, stack));
      if (v.length > MAX_ITEMS) out.push(`[${v.length - MAX_ITEMS} more]`);
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      out[k] = isSensitiveField(k) ? REDACTED : walk(x, depth + 1, seen, stack);
    }
    return out;
  } finally {
    seen.delete(v);
  }
}

// An error's own message is meant for operators (house rule: errors carry a code and a human message), so it is
// kept, scrubbed like any string; its other own fields go through the name rules like everything else.
function errorFields(e: Error, depth: number, seen: WeakSet<object>, stack: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { name: e.name, error: scrubString(e.message) };
  for (const [k, x] of Object.entries(e)) {
    if (k === "message" || k === "stack") continue;
    out[k] = isSensitiveField(k) ? REDACTED : walk(x, depth + 1, seen, stack);
  }
  if (e.cause !== undefined) out["cause"] = walk(e.cause, depth + 1, seen, stack);
  if (stack && e.stack) out["stack"] = scrubString(e.stack);
  return out;
}
