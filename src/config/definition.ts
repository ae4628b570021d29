// The bridge's configuration, declared once. The `Config` type, the defaults, the validation, the commented
// sample (config/config.sample.yaml) and the reference (docs/configuration.md) all come from this file; edit it,
// then run `npm run gen:config`. Keys are snake_case in YAML and in the type alike, so the type reads like the file.

import { isIP } from "node:net";
import { bool, checkedSecret, int, list, obj, oneOf, record, secret, secretInto, str, type Infer } from "./schema.js";

// Matrix server names: a DNS name, an IPv4 literal or a bracketed IPv6 literal, then an optional port.
const SERVER_NAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const HOSTNAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|[0-9A-Fa-f:]+)$/;
// Localparts the bridge creates must fit the Matrix user id grammar (historical characters excluded).
const LOCALPART = /^[a-z0-9._=\-/]+$/;
const USER_ID = /^@[a-z0-9._=\-/+]+:.+$/;
export const NETWORK_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;
const HEX_KEY = /^[0-9a-fA-F]{64}$/;
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/;

function httpUrl(s: string): string | null {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `expected an http(s) URL, got string ${JSON.stringify(s)}`;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return `expected an http(s) URL, got scheme ${u.protocol}`;
  return null;
}

function bindAddress(s: string): string | null {
  return isIP(s) || HOSTNAME.test(s) ? null : `expected an IP address or hostname, got string ${JSON.stringify(s)}`;
}

function permissionKey(k: string): string | null {
  if (k === "*" || USER_ID.test(k) || SERVER_NAME.test(k)) return null;
  return `expected "*", a server name or a Matrix user id (@user:server) as key, got ${JSON.stringify(k)}`;
}

/**
 * The 32-byte master key, from 64 hex digits or base64 (standard or url-safe); null when the text is neither.
 * Same grammar as the store's parseMasterKey, so check-config rejects exactly what the store would.
 */
export function decodeMasterKey(text: string): Uint8Array | null {
  const t = text.trim();
  if (HEX_KEY.test(t)) return Uint8Array.from(Buffer.from(t, "hex"));
  if (BASE64_KEY.test(t)) {
    const b = Buffer.from(t.replace(/-/g, "+").replace(/_/g, "/"), "base64");
    if (b.length === 32) return Uint8Array.from(b);
  }
  return null;
}

function templateProblem(template: string, allowed: string[], required: string[]): string | null {
  for (const m of template.matchAll(/\{([^}]*)\}/g)) {
    if (!allowed.includes(m[1]!)) return `unknown placeholder {${m[1]}}: allowed are ${allowed.map((a) => `{${a}}`).join(", ")}`;
  }
  for (const r of required) if (!template.includes(`{${r}}`)) return `must contain {${r}}, got ${JSON.stringify(template)}`;
  return null;
}

const homeserver = obj({
  url: str({ expected: "an http(s) URL", typeName: "URL", validate: httpUrl })
    .describe("Client-server API URL of the homeserver, as the bridge reaches it.")
    .example("http://localhost:8008"),
  domain: str({ expected: "a server name", typeName: "server name", pattern: SERVER_NAME })
    .describe("The homeserver's server name: the part after the colon in user ids.")
    .example("example.org"),
  outbox_max_messages: int(1, 10_000_000)
    .describe("Messages from IRC that may wait for the homeserver (down, slow), in all rooms together; they wait in the store, sealed, and go out in order once it answers. Beyond this, new ones are dropped and each room told how many.")
    .default(10_000),
  outbox_max_age_hours: int(1, 720)
    .describe("A message from IRC that the homeserver has not taken after this long is dropped (its room is told), so one room the homeserver keeps refusing cannot hold messages for ever.")
    .default(24),
}, { renamed: { server_name: "domain" } }).describe("The homeserver the bridge serves.");

const appservice = obj({
  id: str({ expected: "a non-empty id", minLength: 1 })
    .describe("Application service id, written into the registration file.")
    .default("matrix-otr-irc"),
  bind_address: str({ expected: "an IP address or hostname", typeName: "address", validate: bindAddress })
    .describe("Address the appservice HTTP listener binds to (the homeserver pushes transactions here).")
    .default("127.0.0.1"),
  port: int(1, 65535).describe("Port of the appservice HTTP listener.").default(8090),
  url: str({ expected: "an http(s) URL", typeName: "URL", validate: httpUrl })
    .describe("URL at which the homeserver reaches this bridge; written into the registration file.")
    .example("http://localhost:8090"),
  bot_localpart: str({ expected: "a Matrix localpart ([a-z0-9._=-/])", typeName: "localpart", pattern: LOCALPART })
    .describe("Localpart of the bridge bot; users talk to it in their management room.")
    .default("ircotr"),
  ghost_localpart_template: str({
    expected: "a localpart template",
    typeName: "template",
    validate: (s) => templateProblem(s, ["network", "nick"], ["network", "nick"]) ??
      (LOCALPART.test(s.replace(/\{network\}|\{nick\}/g, "x")) ? null : `literal parts must be localpart characters [a-z0-9._=-/], got ${JSON.stringify(s)}`),
  })
    .describe("Localpart of the Matrix user (ghost) that stands for an IRC user; must contain {network} and {nick}. The registration's exclusive user namespace is derived from it.")
    .default("irc_{network}_{nick}"),
  channel_alias_template: str({
    expected: "a room alias template",
    typeName: "template",
    validate: (s) => templateProblem(s, ["network", "channel"], ["network", "channel"]) ??
      (/^#[a-z0-9._=\-\/]*$/.test(s.replace(/\{network\}|\{channel\}/g, "x")) ? null : `must start with # and have literal parts in [a-z0-9._=-/], got ${JSON.stringify(s)}`),
  })
    .describe("Alias of the Matrix room (portal) for an IRC channel, without the :domain part; {channel} is the case-folded channel name with its #. The registration's exclusive alias namespace is derived from it.")
    .default("#irc_{network}_{channel}"),
}, { renamed: { sender_localpart: "bot_localpart", bind: "bind_address", localpart_template: "ghost_localpart_template" } })
  .describe("The application service: its listener, its registration and the Matrix users it owns.");

const sasl = obj({
  mechanism: oneOf(["PLAIN", "EXTERNAL"] as const).describe("SASL mechanism.").example("PLAIN"),
  username: str({ minLength: 1 }).optional().describe("Account name for PLAIN.").example("bridgebot"),
  password_file: str({ minLength: 1, typeName: "path" }).optional().describe("File holding the PLAIN password (read at load; a trailing newline is ignored).")
    .example("/run/secrets/irc-sasl-password"),
  password: secret({ fileKey: "password_file" }),
  cert_file: str({ minLength: 1, typeName: "path" }).optional().describe("Client certificate (PEM) for EXTERNAL."),
  key_file: str({ minLength: 1, typeName: "path" }).optional().describe("Private key (PEM) of the client certificate for EXTERNAL."),
}).refine((s, add) => {
  if (s.mechanism === "PLAIN") {
    if (s.username === undefined) add(["username"], "required when mechanism is PLAIN");
    if (s.password_file === undefined) add(["password_file"], "required when mechanism is PLAIN");
  } else {
    if (s.cert_file === undefined) add(["cert_file"], "required when mechanism is EXTERNAL");
    if (s.key_file === undefined) add(["key_file"], "required when mechanism is EXTERNAL");
  }
});

const network = obj({
  id: str({ expected: "a network id ([a-z0-9-], up to 32, starting with a letter or digit)", typeName: "id", pattern: NETWORK_ID })
    .describe("Short id used in commands, ghost localparts and metrics labels.")
    .example("libera"),
  name: str({ minLength: 1 }).describe("Human-readable name.").example("Libera.Chat"),
  host: str({ expected: "a hostname or IP address", typeName: "hostname", pattern: HOSTNAME })
    .describe("IRC server hostname.")
    .example("irc.libera.chat"),
  port: int(1, 65535).describe("IRC server port.").default(6697),
  tls: bool().describe("Connect with TLS.").default(true),
  tls_ca_file: str({ minLength: 1, typeName: "path" }).optional()
    .describe("CA bundle (PEM) to verify the server with, instead of the system's.")
    .example("/etc/ssl/certs/irc-ca.pem"),
  tls_servername: str({ minLength: 1 }).optional().describe("Name to verify the server certificate against, when it differs from host.")
    .example("irc.example.net"),
  password_file: str({ minLength: 1, typeName: "path" }).optional()
    .describe("File holding the server password (PASS), read at load; a trailing newline is ignored.")
    .example("/run/secrets/irc-server-password"),
  password: secret({ fileKey: "password_file" }),
  sasl: sasl.optional().describe("SASL authentication for the bridge's connections to this network."),
  nick_template: str({ expected: "a nick template", typeName: "template", validate: (s) => templateProblem(s, ["localpart"], ["localpart"]) })
    .describe("IRC nick of a Matrix user's puppet connection; {localpart} is the user's Matrix localpart.")
    .default("{localpart}"),
  max_line_bytes: int(64, 8191).describe("Longest IRC line the server accepts, in bytes, including the trailing CR LF.").default(512),
  otr_fragment_size: int(64, 65535).optional()
    .describe("Largest OTR fragment in bytes; when absent it is derived from max_line_bytes.")
    .example(400),
  quit_message: str().describe("QUIT message sent when the bridge shuts down.").default("Bridge shutting down"),
  max_concurrent_connects: int(1, 1000)
    .describe("Connection attempts to this network in flight at once (all users); the rest wait their turn, e.g. after a server restart.")
    .default(10),
  flood_burst_lines: int(1, 100).describe("Message lines a puppet may send back to back before pacing starts.").default(5),
  flood_line_interval_ms: int(50, 60000).describe("Once the burst is used, one more line every this many milliseconds.").default(1000),
  flood_penalty_bytes: int(0, 8191)
    .describe("A line costs one more line of budget per this many bytes, as servers charge long lines more; 0 = off.")
    .default(0),
  ctcp_version: str().describe("Answer to CTCP VERSION requests; empty = no answer.").default("matrix-otr-irc"),
  ctcp_ping: bool().describe("Answer CTCP PING requests.").default(true),
  idle_timeout_minutes: int(0, 525600)
    .describe("Disconnect a user's IRC connection after this many minutes without activity on Matrix; their next message reconnects. 0 = never.")
    .default(0),
  outgoing_addresses: list(str({ expected: "an IP address of this host", validate: (s) => (isIP(s) ? null : `expected an IP address, got string ${JSON.stringify(s)}`) }))
    .describe("Local source addresses for IRC connections, for networks that limit connections per IP: each Matrix user gets one of them, always the same one while this list is unchanged. Empty = the system's choice.")
    .default([]),
  max_held_lines: int(0, 100000)
    .describe("Lines a user may type while their connection is being re-established; sent in order once it is back, refused beyond this.")
    .default(100),
  dynamic_channels: bool()
    .describe("Create a portal room when a Matrix user joins an alias of the channel_alias_template for this network (otherwise only `join` and `link` make portals).")
    .default(true),
  membership_sync: oneOf(["lazy", "full"] as const)
    .describe("lazy: IRC users appear in a portal room when they speak; full: every IRC user in the channel gets a ghost in the room.")
    .default("lazy"),
  op_power_level: int(0, 100).describe("Power level that goes with channel operator (+o): given to whoever has +o on IRC; setting someone to it or above in the room gives +o. At 100 (the bot's own level) the bot cannot take it back when +o goes.").default(50),
  voice_power_level: int(0, 100).describe("Power level that goes with voice (+v): given to whoever has +v on IRC; setting someone to it (below op) in the room gives +v.").default(10),
}, { renamed: { server: "host", ssl: "tls", nick_format: "nick_template" } });

const networks = list(network, 1)
  .refine((ns, add) => {
    const seen = new Map<string, number>();
    ns.forEach((n, i) => {
      const first = seen.get(n.id);
      if (first !== undefined) add([i, "id"], `duplicate network id ${JSON.stringify(n.id)} (also networks[${first}].id)`);
      else seen.set(n.id, i);
    });
  })
  .describe("IRC networks the bridge connects to. Each Matrix user gets one connection per network they connect to.");

const permissions = record("\"*\", server name or user id", permissionKey, oneOf(["user", "admin"] as const))
  .describe("Who may use the bridge: keys are \"*\", a server name or a Matrix user id; values are user or admin. The most specific key wins (user id, then server name, then \"*\"). Empty: nobody.")
  .example({ "example.org": "user", "@admin:example.org": "admin" })
  .default({});

const channels = obj({
  quit_debounce_ms: int(0, 60000)
    .describe("QUITs are gathered this long before ghosts leave rooms, so a netsplit's burst is handled as one batch (and a quick rejoin cancels the leave).")
    .default(2000),
  membership_requests_per_second: int(1, 1000)
    .describe("Upper bound on ghost join/leave requests per second to the homeserver, across all portal rooms.")
    .default(10),
  max_message_lines: int(1, 1000)
    .describe("A Matrix message with more lines than this is sent to IRC as one line with a link to it instead.")
    .default(4),
  reply_template: str().describe("How a Matrix reply reads on IRC; {nick} is the IRC nick replied to, {text} the reply.").default("{nick}: {text}"),
  edit_template: str().describe("How a Matrix edit reads on IRC; {text} is the new text.").default("* {text}"),
}).orEmpty().describe("IRC channels as Matrix rooms (portals). OTR does not apply to channels: it is one-to-one.");

const otr = obj({
  default_policy: oneOf(["never", "manual", "opportunistic", "always"] as const)
    .describe("OTR policy for users who have not chosen one: never (no OTR), manual (only on request), opportunistic (advertise and start when the peer can), always (refuse to send plaintext).")
    .default("opportunistic"),
  trust_on_first_use: bool()
    .describe("Treat the first fingerprint seen for a peer as verified. Off: fingerprints stay unverified until checked (SMP or manual).")
    .default(false),
  persist_sessions: bool()
    .describe("Keep established OTR conversations (their session keys and counters) in the store, sealed under the master key, so a restart or crash does not end them: the IRC contact's client goes on without a new AKE. Keys OTR has forgotten are erased from SQLite's files within a second; PostgreSQL cannot promise that (docs/store.md). Off: a restart ends every private conversation, and a planned shutdown tells each contact so.")
    .default(true),
}).orEmpty().describe("Off-the-Record messaging with IRC users.");

const encryption = obj({
  allow: bool()
    .describe("Matrix end-to-end encryption between users' devices and the bridge: the bot and each ghost get their own device (created by the appservice, MSC4190), join encrypted rooms and decrypt and encrypt there. Needs a homeserver that sends to-device events, device lists and key counts to appservices (Synapse: experimental_features msc2409_to_device_messages_enabled and msc3202_transaction_extensions; see docs/encryption.md). Off: encrypted rooms are refused with a notice and an unencrypted room is offered instead.")
    .default(true),
  default: bool()
    .describe("Rooms the bridge creates (DM rooms with IRC contacts, the management room it offers) are encrypted.")
    .default(true),
  require: bool()
    .describe("Refuse to start when the homeserver cannot do appservice encryption. Off: the bridge says so once at start and runs without encryption.")
    .default(false),
  device_display_name: str({ minLength: 1, validate: (s) => (s.length > 100 || /[\u0000-\u001f]/.test(s) ? "expected at most 100 characters, no control characters" : null) }).describe("Display name of the bridge's devices, as users see it in device lists.").default("IRC bridge (matrix-otr-irc)"),
  dm_retention_days: int(0, 36500)
    .describe("An m.room.retention max_lifetime set on DM rooms the bridge creates, so a homeserver with retention enabled may purge old (encrypted) events; 0 = none.")
    .default(0),
  probe_timeout_seconds: int(1, 300)
    .describe("How long the start-up check waits for the homeserver to deliver a to-device message to the bridge.")
    .default(15),
  max_loaded_devices: int(2, 1_000_000)
    .describe("Devices (the bot's and the ghosts') kept open in memory at once; beyond this the least recently used are closed, their state stored, and reopened from the store when next needed (tens of milliseconds). Each open device holds its own crypto machine and in-memory database, about 0.5 MB of RSS (npm run bench:e2ee).")
    .default(50),
  device_idle_minutes: int(1, 10_080)
    .describe("A ghost's device unused this long is closed (reopened from the store when next needed).")
    .default(10),
}).orEmpty().describe("End-to-bridge encryption of the Matrix leg (docs/encryption.md).");

const store = obj({
  engine: oneOf(["sqlite", "postgres"] as const).describe("Storage engine.").default("sqlite"),
  sqlite_path: str({ minLength: 1, typeName: "path" }).describe("SQLite database file (engine sqlite).").default("./data/bridge.db"),
  postgres_url: str({ minLength: 1, typeName: "URL" }).optional()
    .describe("PostgreSQL connection URL (engine postgres). Prefer postgres_url_file or the environment variable MATRIX_OTR_IRC_POSTGRES_URL for URLs with a password.")
    .example("postgresql://bridge@localhost/bridge"),
  postgres_url_file: str({ minLength: 1, typeName: "path" }).optional().describe("File holding the PostgreSQL connection URL.")
    .example("/run/secrets/postgres-url"),
  postgres_url_secret: secretInto("postgres_url", { fileKey: "postgres_url_file", env: "MATRIX_OTR_IRC_POSTGRES_URL" }),
  master_key_file: str({ minLength: 1, typeName: "path" })
    .describe("File holding the 32-byte master key (64 hex digits) that seals secrets in the store; created on first start when missing. The environment variable MATRIX_OTR_IRC_MASTER_KEY overrides it.")
    .default("./data/master.key"),
  // Checked here so check-config catches a malformed key; the store reads (or creates) the key itself.
  master_key: checkedSecret({
    fileKey: "master_key_file",
    env: "MATRIX_OTR_IRC_MASTER_KEY",
    missingFileOk: true,
    validate: (s) => (decodeMasterKey(s) ? null : "expected a 32-byte key as 64 hex digits or base64"),
  }),
}, { renamed: { database: "sqlite_path", master_key_path: "master_key_file" } })
  .refine((s, add) => {
    if (s.engine === "postgres" && s.postgres_url === undefined) {
      add(["engine"], "engine postgres needs postgres_url, postgres_url_file or MATRIX_OTR_IRC_POSTGRES_URL");
    }
  })
  .orEmpty()
  .describe("Where the bridge keeps its state: rooms, nicks, OTR keys and fingerprints, sealed secrets.");

const metrics = obj({
  enabled: bool().describe("Serve /metrics, /health and /ready.").default(true),
  bind_address: str({ expected: "an IP address or hostname", typeName: "address", validate: bindAddress })
    .describe("Address of the metrics listener; keep it private, it is unauthenticated.")
    .default("127.0.0.1"),
  port: int(1, 65535).describe("Port of the metrics listener; must differ from appservice.port.").default(9102),
}).orEmpty().describe("Prometheus metrics and health checks, on their own listener.");

const logging = obj({
  level: oneOf(["debug", "info", "warn", "error"] as const).describe("Least severe level written.").default("info"),
  format: oneOf(["json", "logfmt"] as const).describe("Line format: JSON lines or logfmt.").default("json"),
}).orEmpty().describe("Log lines on standard error. Message bodies, secrets and keys are never logged, at any level.");

export const configSchema = obj({
  homeserver,
  appservice,
  networks,
  permissions,
  channels,
  otr,
  encryption,
  store,
  metrics,
  logging,
}, { renamed: { bridge: "appservice", ircService: "networks", irc: "networks", database: "store", logs: "logging" } })
  .refine((c, add) => {
    if (c.metrics.enabled && c.metrics.port === c.appservice.port) {
      add(["metrics", "port"], `must differ from appservice.port (${c.appservice.port}): metrics never share the appservice listener`);
    }
    const ghost = ghostUserRegex(c.appservice.ghost_localpart_template, c.homeserver.domain);
    if (ghost.test(`@${c.appservice.bot_localpart}:${c.homeserver.domain}`)) {
      add(["appservice", "bot_localpart"], `${JSON.stringify(c.appservice.bot_localpart)} falls inside the ghost namespace of ghost_localpart_template`);
    }
  });

/**
 * The checked configuration. Keys are snake_case, as in the YAML file; defaults are applied. Secrets read at
 * load time appear as `networks[].password` and `networks[].sasl.password`; `store.postgres_url` holds the URL
 * whether it was inline, in postgres_url_file or in MATRIX_OTR_IRC_POSTGRES_URL. The master key is only
 * checked (format, readability): the store reads or creates it (src/store/master-key.ts).
 */
export type Config = Infer<typeof configSchema>;
export type NetworkConfig = Config["networks"][number];
export type StoreConfig = Config["store"];
export type MetricsConfig = Config["metrics"];
export type EncryptionConfig = Config["encryption"];
export type LoggingConfig = Config["logging"];
export type Permission = "user" | "admin";

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The regex source (anchored) matching every alias the channel alias template can produce on this server. */
export function channelAliasRegexSource(template: string, domain: string): string {
  const parts = template.split(/(\{network\}|\{channel\})/);
  const body = parts.map((p) => (p === "{network}" || p === "{channel}" ? ".+" : escapeRegex(p))).join("");
  return `^${body}:${escapeRegex(domain)}$`;
}

/** The regex source (anchored) matching every ghost user id the template can produce on this server. */
export function ghostUserRegexSource(template: string, domain: string): string {
  const parts = template.split(/(\{network\}|\{nick\})/);
  const body = parts.map((p) => (p === "{network}" || p === "{nick}" ? ".+" : escapeRegex(p))).join("");
  return `^@${body}:${escapeRegex(domain)}$`;
}

export function ghostUserRegex(template: string, domain: string): RegExp {
  return new RegExp(ghostUserRegexSource(template, domain));
}
