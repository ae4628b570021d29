// A real Synapse for end-to-end tests, run from the Debian sid chroot built by scripts/setup-synapse-chroot.sh
// (Synapse is only packaged in sid). Each instance gets its own directory inside the chroot (/srv/<id>), a
// sqlite database, a free loopback port, generous rate limits, and copies of the appservice registration files
// it is given. Ready when /_matrix/client/versions answers. Test users come from the shared-secret admin API.
// With `e2ee: true` it also turns on the experimental appservice E2EE flags (to-device events, device lists and
// one-time-key counts in transactions), and `dbContains` lets a test check what Synapse stored in plaintext.
import { spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { freePort } from "./ports.js";
import { spawnService, waitForUrl, type Service } from "./proc.js";

export const SYNAPSE_CHROOT = process.env.SYNAPSE_CHROOT ?? "/var/cache/matrix-otr-irc/synapse-sid";
const MARKER = ".matrix-otr-irc-ready";
const REPO_ROOT = resolve(new URL("../..", import.meta.url).pathname);

export interface StartSynapseOptions {
  /** An appservice registration file to load (copied into the chroot). */
  registrationPath?: string;
  /** More registration files, loaded too. */
  registrationPaths?: string[];
  /** Default "localhost". */
  serverName?: string;
  /**
   * Raw YAML appended to homeserver.yaml (later keys override earlier ones, whole mappings at a time). An
   * `experimental_features` mapping in it is merged with the one `e2ee` adds (its own keys win), not replacing it.
   */
  extraConfig?: string;
  /**
   * Turns on what an appservice needs for end-to-bridge encryption (MSC2409 to-device events and MSC3202
   * device lists / OTK counts / fallback key types in transactions). Off by default: with it, transactions to
   * any registration that has `receive_ephemeral` change shape, and the suites without E2EE should keep
   * testing the Synapse they were written against. Clients' own E2EE needs no flag and works either way.
   */
  e2ee?: boolean;
  /** How long to wait for the server to answer, default 120 s (the machine is shared). */
  startTimeoutMs?: number;
}

export interface RegisteredUser { userId: string; accessToken: string; deviceId?: string }

export interface SynapseInstance {
  /** Base URL, e.g. http://127.0.0.1:12345 */
  url: string;
  /** The server name: user ids are @localpart:<domain>. */
  domain: string;
  port: number;
  sharedSecret: string;
  /** The instance directory as seen from the host. */
  hostDir: string;
  logPath: string;
  /**
   * Host path of the sqlite database. Synapse runs it in WAL mode, so recent writes may still be in
   * `<dbPath>-wal` (and `-shm`) rather than in the main file: read `dbFiles()` or use `dbContains`.
   */
  dbPath: string;
  /** The database files that exist right now: homeserver.db and its -wal, -shm, -journal companions. */
  dbFiles(): string[];
  /**
   * Whether any database file holds `text`, as UTF-8 or in the ASCII-escaped form Synapse's JSON encoder
   * writes non-ASCII with (`\u00e9`, surrogate pairs above U+FFFF). For "was this stored in plaintext?" checks.
   */
  dbContains(text: string): boolean;
  registerUser(localpart: string, password: string, opts?: { admin?: boolean }): Promise<RegisteredUser>;
  /** Stops and starts Synapse on the same port with the same data. */
  restart(): Promise<void>;
  /** Stops Synapse, keeping its data, until `up()` (a homeserver outage). */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

/** Builds the chroot when it is missing (takes a few minutes once per machine). */
export function ensureSynapseChroot(): void {
  if (existsSync(join(SYNAPSE_CHROOT, MARKER))) return;
  const r = spawnSync("bash", [join(REPO_ROOT, "scripts/setup-synapse-chroot.sh")], {
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, SYNAPSE_CHROOT },
  });
  if (r.status !== 0 || !existsSync(join(SYNAPSE_CHROOT, MARKER))) {
    throw new Error(`Synapse chroot missing and scripts/setup-synapse-chroot.sh failed (exit ${r.status})`);
  }
}

function unpaddedB64(b: Buffer): string {
  return b.toString("base64").replace(/=+$/, "");
}

function limit(perSecond: number, burst: number): string {
  return `{per_second: ${perSecond}, burst_count: ${burst}}`;
}

/** The homeserver.yaml keys `e2ee: true` adds (verified with Synapse 1.160). */
export const E2EE_EXPERIMENTAL_FEATURES: Readonly<Record<string, boolean>> = {
  msc2409_to_device_messages_enabled: true, // to-device events in AS transactions (de.sorunome.msc2409.to_device)
  msc3202_transaction_extensions: true, // device lists, OTK counts and unused fallback key types in transactions
};

/**
 * extraConfig plus what `e2ee` adds, as YAML to append. Without e2ee, extraConfig goes in verbatim; with it,
 * extraConfig is parsed (duplicate keys allowed, the last wins, as PyYAML does) and re-emitted with its
 * `experimental_features` merged over the E2EE ones, since a second top-level key would replace the first.
 */
function extraYaml(extraConfig: string | undefined, e2ee: boolean): string {
  if (!e2ee) return extraConfig ?? "";
  const extra = (extraConfig ? parseYaml(extraConfig, { uniqueKeys: false }) : null) as Record<string, unknown> | null;
  if (extra !== null && (typeof extra !== "object" || Array.isArray(extra))) {
    throw new Error("startSynapse: extraConfig must be a YAML mapping");
  }
  const own = extra?.experimental_features;
  if (own !== undefined && own !== null && (typeof own !== "object" || Array.isArray(own))) {
    throw new Error("startSynapse: extraConfig experimental_features must be a mapping");
  }
  const merged = { ...extra, experimental_features: { ...E2EE_EXPERIMENTAL_FEATURES, ...(own as object | null) } };
  return stringifyYaml(merged);
}

/** `text` as Python's json module writes it with ensure_ascii (Synapse's event_json): \uXXXX for non-ASCII. */
function pythonJsonEscaped(text: string): string {
  return JSON.stringify(text).slice(1, -1)
    .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function homeserverYaml(o: {
  serverName: string; port: number; dir: string; secret: string; registrations: string[];
}): string {
  const big = limit(10_000, 100_000);
  // Signing key inline: "ed25519 <key id> <unpadded base64 seed>", the format Synapse writes itself.
  const signingKey = `ed25519 a_${randomBytes(3).toString("hex")} ${unpaddedB64(randomBytes(32))}`;
  return [
    `server_name: "${o.serverName}"`,
    `pid_file: ${o.dir}/homeserver.pid`,
    `listeners:`,
    `  - port: ${o.port}`,
    `    bind_addresses: ['127.0.0.1']`,
    `    type: http`,
    `    tls: false`,
    `    x_forwarded: false`,
    `    resources:`,
    `      - names: [client]`,
    `        compress: false`,
    `database:`,
    `  name: sqlite3`,
    `  args:`,
    `    database: ${o.dir}/homeserver.db`,
    `media_store_path: ${o.dir}/media_store`,
    `signing_key: "${signingKey}"`,
    `trusted_key_servers: []`,
    `suppress_key_server_warning: true`,
    `report_stats: false`,
    `enable_metrics: false`,
    `presence:`,
    `  enabled: false`,
    `url_preview_enabled: false`,
    `enable_registration: false`,
    `registration_shared_secret: "${o.secret}"`,
    `macaroon_secret_key: "${randomBytes(24).toString("hex")}"`,
    `form_secret: "${randomBytes(24).toString("hex")}"`,
    `app_service_config_files:${o.registrations.length ? "" : " []"}`,
    ...o.registrations.map((r) => `  - ${r}`),
    `rc_message: ${big}`,
    `rc_registration: ${big}`,
    `rc_registration_token_validity: ${big}`,
    `rc_login:`,
    `  address: ${big}`,
    `  account: ${big}`,
    `  failed_attempts: ${big}`,
    `rc_joins:`,
    `  local: ${big}`,
    `  remote: ${big}`,
    `rc_joins_per_room: ${big}`,
    `rc_invites:`,
    `  per_room: ${big}`,
    `  per_user: ${big}`,
    `  per_issuer: ${big}`,
    `rc_3pid_validation: ${big}`,
    `rc_admin_redaction: ${big}`,
    `rc_room_creation: ${big}`,
    `rc_presence:`,
    `  per_user: ${big}`,
    `rc_delayed_event_mgmt: ${big}`,
    `rc_reports: ${big}`,
    `rc_media_create: ${big}`,
    `rc_third_party_invite: ${big}`,
    `rc_user_directory: ${big}`,
    `rc_key_requests: ${big}`,
    "",
  ].join("\n");
}

/** Removes instance dirs left by test processes that died before stop() (their pid is in the name). */
function removeOrphanedInstances(): void {
  const srv = join(SYNAPSE_CHROOT, "srv");
  let names: string[] = [];
  try { names = readdirSync(srv); } catch { return; }
  for (const name of names) {
    const m = /^hs-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try { process.kill(pid, 0); } catch (e) { alive = (e as NodeJS.ErrnoException).code === "EPERM"; }
    if (!alive) rmSync(join(srv, name), { recursive: true, force: true });
  }
}

export async function startSynapse(opts: StartSynapseOptions = {}): Promise<SynapseInstance> {
  ensureSynapseChroot();
  removeOrphanedInstances();
  const serverName = opts.serverName ?? "localhost";
  const id = `hs-${process.pid}-${randomBytes(4).toString("hex")}`;
  const dir = `/srv/${id}`; // as Synapse sees it
  const hostDir = join(SYNAPSE_CHROOT, dir);
  mkdirSync(hostDir, { recursive: true, mode: 0o700 });

  const registrations: string[] = [];
  const regSources = [...(opts.registrationPath ? [opts.registrationPath] : []), ...(opts.registrationPaths ?? [])];
  regSources.forEach((src, i) => {
    const name = `registration-${i}.yaml`;
    copyFileSync(src, join(hostDir, name));
    registrations.push(`${dir}/${name}`);
  });

  const port = await freePort();
  const secret = randomBytes(24).toString("hex");
  let yaml = homeserverYaml({ serverName, port, dir, secret, registrations });
  const extra = extraYaml(opts.extraConfig, opts.e2ee ?? false);
  if (extra) yaml += `\n${extra}\n`;
  writeFileSync(join(hostDir, "homeserver.yaml"), yaml, { mode: 0o600 });

  const url = `http://127.0.0.1:${port}`;
  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  let svc: Service | null = null;
  let logPath = "";

  const launch = async () => {
    svc = spawnService({
      name: "synapse",
      cmd: "chroot",
      args: [SYNAPSE_CHROOT, "python3", "-m", "synapse.app.homeserver", "-c", `${dir}/homeserver.yaml`],
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", HOME: "/root", PYTHONUNBUFFERED: "1" },
      ...(logPath ? { logPath } : {}),
    });
    logPath = svc.logPath;
    await waitForUrl(`${url}/_matrix/client/versions`, timeoutMs, svc);
  };

  try {
    await launch();
  } catch (e) {
    await (svc as Service | null)?.stop(2000);
    rmSync(hostDir, { recursive: true, force: true });
    throw e;
  }

  const registerUser = async (localpart: string, password: string, o: { admin?: boolean } = {}) => {
    const endpoint = `${url}/_synapse/admin/v1/register`;
    const nonceRes = await fetch(endpoint);
    if (!nonceRes.ok) throw new Error(`register nonce: HTTP ${nonceRes.status} ${await nonceRes.text()}`);
    const { nonce } = (await nonceRes.json()) as { nonce: string };
    const admin = o.admin ?? false;
    const mac = createHmac("sha1", secret)
      .update(`${nonce}\0${localpart}\0${password}\0${admin ? "admin" : "notadmin"}`)
      .digest("hex");
    const res = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ nonce, username: localpart, password, admin, mac }),
    });
    const body = (await res.json()) as { user_id?: string; access_token?: string; device_id?: string; error?: string };
    if (!res.ok || !body.user_id || !body.access_token) {
      throw new Error(`register ${localpart}: HTTP ${res.status} ${body.error ?? JSON.stringify(body)}`);
    }
    return { userId: body.user_id, accessToken: body.access_token, ...(body.device_id ? { deviceId: body.device_id } : {}) };
  };

  const dbPath = join(hostDir, "homeserver.db");
  const dbFiles = () => ["", "-wal", "-shm", "-journal"].map((s) => dbPath + s).filter((f) => existsSync(f));
  const dbContains = (text: string) => {
    const needles = [...new Set([text, pythonJsonEscaped(text)])].map((t) => Buffer.from(t, "utf8"));
    return dbFiles().some((f) => {
      const bytes = readFileSync(f);
      return needles.some((n) => bytes.includes(n));
    });
  };

  let stopped = false;
  return {
    url,
    domain: serverName,
    port,
    sharedSecret: secret,
    hostDir,
    get logPath() { return logPath; },
    dbPath,
    dbFiles,
    dbContains,
    registerUser,
    async restart() {
      await (svc as Service | null)?.stop();
      await launch();
    },
    async down() {
      await (svc as Service | null)?.stop();
    },
    async up() {
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await (svc as Service | null)?.stop();
      rmSync(hostDir, { recursive: true, force: true });
    },
  };
}
