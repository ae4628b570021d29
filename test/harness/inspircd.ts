// A real InspIRCd 3 linked to real Atheme services, for tests that need SASL (PLAIN, EXTERNAL) or NickServ:
// ngIRCd has neither. Both run on loopback with free ports and a temp dir. InspIRCd runs as root
// (`--runasroot`, no fork), with its DNS resolver pinned to 127.0.0.1 and hostname lookups off, so nothing leaves
// the machine. It completes each client registration on a once-a-second timer, so connects take ~1 s.
// Atheme links as `services.test` over a server port and provides NickServ and SaslServ.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { freePort } from "./ports.js";
import { spawnService, tempDir, waitForPort, type Service } from "./proc.js";
import { IrcClient } from "./irc-client.js";

export interface InspircdOptions {
  /** Link Atheme services (NickServ, SaslServ). Default true. */
  services?: boolean;
  /** Offer SASL (InspIRCd's sasl module) when services are linked. Default true; false leaves NickServ only. */
  sasl?: boolean;
  /** Accounts to register with NickServ once services are up. */
  accounts?: { name: string; password: string }[];
  /** Also listen with TLS (self-signed certificate, written to `tlsCertFile`), asking clients for a certificate. */
  tls?: boolean;
  /**
   * Flood control, InspIRCd's <connect> knobs. Default: none (threshold and commandrate effectively unlimited).
   * `threshold` is the penalty (in command-seconds) a client may build up; past it the client is delayed
   * (`fakelag` on) or disconnected with "Excess Flood" (`fakelag` off). `commandRate` is commands per second x 1000
   * (InspIRCd's unit: 1000 = one command a second). `recvq` (bytes) caps unread input.
   */
  fakelag?: boolean;
  threshold?: number;
  commandRate?: number;
  recvq?: number;
  /** Server password clients must send with PASS. */
  password?: string;
  /** Raw config lines appended to inspircd.conf. */
  extraConfig?: string[];
  startTimeoutMs?: number;
}

export interface InspircdInstance {
  host: string;
  /** Plaintext client port. */
  port: number;
  /** TLS client port (when `tls`). */
  tlsPort: number | null;
  /** PEM of the server's self-signed certificate (when `tls`), to trust as a CA. */
  tlsCertFile: string | null;
  name: string;
  servicesName: string;
  dir: string;
  readonly logPath: string;
  readonly servicesLogPath: string;
  /** InspIRCd's log so far. */
  readLog(): string;
  /** Registers a NickServ account by connecting as `name` and sending REGISTER. */
  registerAccount(name: string, password: string): Promise<void>;
  /** Makes a client certificate + key (PEM) whose fingerprint `account` may use for SASL EXTERNAL. */
  addCertFingerprint(account: string, password: string): Promise<{ certFile: string; keyFile: string; fingerprint: string }>;
  /** Stops and starts the IRC server on the same ports; services relink. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const INSPIRCD = process.env.INSPIRCD_BIN ?? "/usr/sbin/inspircd";
const ATHEME = process.env.ATHEME_BIN ?? "/usr/bin/atheme-services";

function inspircdConf(o: {
  name: string; host: string; port: number; tlsPort: number | null; linkPort: number; dir: string; linkPassword: string;
  services: boolean; sasl: boolean; fakelag: boolean; threshold: number; commandRate: number; recvq: number; password?: string; extra: string[];
}): string {
  const tlsLines = o.tlsPort === null ? [] : [
    `<module name="ssl_gnutls">`,
    `<module name="sslinfo">`,
    `<sslprofile name="test" provider="gnutls" certfile="${o.dir}/server.pem" keyfile="${o.dir}/server.key" ` +
      `hash="sha256" requestclientcert="yes" priority="NORMAL">`,
    `<bind address="${o.host}" port="${o.tlsPort}" type="clients" sslprofile="test">`,
  ];
  return [
    `<server name="${o.name}" description="matrix-otr-irc test server" network="TestNet">`,
    `<admin name="Admin" nick="admin" email="admin@${o.name}">`,
    `<bind address="${o.host}" port="${o.port}" type="clients">`,
    `<bind address="${o.host}" port="${o.linkPort}" type="servers">`,
    ...tlsLines,
    `<connect name="main" allow="*" maxchans="100" timeout="60" pingfreq="120" hardsendq="1048576" softsendq="65536" ` +
      `recvq="${o.recvq}" threshold="${o.threshold}" commandrate="${o.commandRate}" ` +
      `fakelag="${o.fakelag ? "on" : "off"}" localmax="100000" globalmax="100000" useident="no" limit="100000" ` +
      `resolvehostnames="no" maxconnwarn="off"${o.password ? ` password="${o.password}" hash="plaintext"` : ""}>`,
    // No DNS leaves the machine: the resolver is pinned to loopback (nothing answers there, lookups fail fast).
    `<dns server="127.0.0.1" timeout="1">`,
    `<pid file="${o.dir}/inspircd.pid">`,
    `<options defaultmodes="nt" hostintopic="yes" pingwarning="15" splitwhois="no">`,
    `<performance clonesonconnect="no" quietbursts="yes" somaxconn="128" softlimit="10000">`,
    `<security announceinvites="dynamic" hideserver="" hidesplits="no" hideulines="no" maxtargets="20">`,
    `<limits maxaway="200" maxchan="64" maxhost="64" maxident="10" maxkey="30" maxkick="255" maxmodes="20" ` +
      `maxnick="30" maxquit="255" maxreal="128" maxtopic="307">`,
    `<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="${o.dir}/inspircd.log">`,
    `<module name="spanningtree">`,
    `<module name="services_account">`,
    `<module name="cap">`,
    `<module name="svshold">`,
    ...(o.services ? [
      ...(o.sasl ? [`<module name="sasl">`, `<sasl target="services.test" requiressl="no">`] : []),
      `<link name="services.test" ipaddr="127.0.0.1" port="${o.linkPort}" allowmask="127.0.0.0/8" ` +
        `sendpass="${o.linkPassword}" recvpass="${o.linkPassword}" timeout="60">`,
      `<uline server="services.test" silent="yes">`,
    ] : []),
    ...o.extra,
    "",
  ].join("\n");
}

function athemeConf(o: { ircName: string; linkPort: number; dir: string; linkPassword: string }): string {
  const mods = ["protocol/inspircd", "backend/opensex", "crypto/pbkdf2v2",
    "nickserv/main", "nickserv/identify", "nickserv/register", "nickserv/help", "nickserv/info", "nickserv/logout",
    "nickserv/ghost", "nickserv/set_core", "nickserv/set_password", "nickserv/cert",
    "saslserv/main", "saslserv/plain", "saslserv/external"];
  return [
    ...mods.map((m) => `loadmodule "modules/${m}";`),
    `pbkdf2v2 { };`,
    `serverinfo {`,
    `  name = "services.test"; desc = "Atheme test services"; numeric = "00A"; recontime = 1;`,
    `  netname = "TestNet"; hidehostsuffix = "users.test"; adminname = "admin";`,
    `  adminemail = "admin@${o.ircName}"; registeremail = "noreply@${o.ircName}"; mta = "/bin/true";`,
    `  loglevel = { error; info; admin; network; }; maxlogins = 100; maxusers = 100; mdlimit = 30;`,
    `  emaillimit = 1000; emailtime = 300; auth = none; casemapping = rfc1459;`,
    `};`,
    `uplink "${o.ircName}" {`,
    `  host = "127.0.0.1"; send_password = "${o.linkPassword}"; receive_password = "${o.linkPassword}"; port = ${o.linkPort};`,
    `};`,
    `nickserv { nick = "NickServ"; user = "NickServ"; host = "services.test"; real = "Nickname Services"; maxnicks = 5; expire = 0; };`,
    `saslserv { nick = "SaslServ"; user = "SaslServ"; host = "services.test"; real = "SASL Authentication Agent"; };`,
    // No flood or registration rate limits: tests register and log in many accounts quickly.
    `general { flood_msgs = 0; flood_time = 10; ratelimit_uses = 0; ratelimit_period = 60; kline_time = 7;`,
    `  commit_interval = 5; default_clone_allowed = 100000; default_clone_warn = 100000;`,
    `  uplink_sendq_limit = 1048576; language = "en"; };`,
    `logfile "${o.dir}/atheme.log" { all; };`,
    "",
  ].join("\n");
}

function sleep(ms: number) { return new Promise((r) => setTimeout(r, ms)); }

function selfSignedCert(dir: string, base: string, cn: string): { certFile: string; keyFile: string; fingerprint: string } {
  const certFile = join(dir, `${base}.pem`);
  const keyFile = join(dir, `${base}.key`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", `/CN=${cn}`,
    "-addext", `subjectAltName=DNS:${cn},IP:127.0.0.1`, "-keyout", keyFile, "-out", certFile], { stdio: "ignore" });
  chmodSync(keyFile, 0o600);
  const fpOut = execFileSync("openssl", ["x509", "-in", certFile, "-noout", "-fingerprint", "-sha256"]).toString();
  const fingerprint = (fpOut.split("=")[1] ?? "").trim().replace(/:/g, "").toLowerCase();
  return { certFile, keyFile, fingerprint };
}

export async function startInspircd(opts: InspircdOptions = {}): Promise<InspircdInstance> {
  const host = "127.0.0.1";
  const name = "irc.test";
  const services = opts.services ?? true;
  const dir = tempDir("inspircd");
  mkdirSync(join(dir, "atheme-data"));
  const port = await freePort(host);
  const linkPort = await freePort(host);
  const tlsPort = opts.tls ? await freePort(host) : null;
  const linkPassword = randomBytes(12).toString("hex");
  let tlsCertFile: string | null = null;
  if (opts.tls) tlsCertFile = selfSignedCert(dir, "server", name).certFile;

  writeFileSync(join(dir, "inspircd.conf"), inspircdConf({
    name, host, port, tlsPort, linkPort, dir, linkPassword, services, sasl: opts.sasl ?? true, fakelag: opts.fakelag ?? false,
    threshold: opts.threshold ?? 1_000_000, commandRate: opts.commandRate ?? 1_000_000, recvq: opts.recvq ?? 65536, ...(opts.password ? { password: opts.password } : {}),
    extra: opts.extraConfig ?? [],
  }));
  writeFileSync(join(dir, "atheme.conf"), athemeConf({ ircName: name, linkPort, dir, linkPassword }));
  const servicesLog = join(dir, "atheme.log");
  const timeoutMs = opts.startTimeoutMs ?? 60_000;

  let ircd: Service | null = null;
  let atheme: Service | null = null;
  let logPath = "";

  const syncCount = () => existsSync(servicesLog)
    ? (readFileSync(servicesLog, "utf8").match(/finished synching with uplink/g) ?? []).length : 0;
  const waitLinked = async (before: number) => {
    const deadline = Date.now() + timeoutMs;
    while (syncCount() <= before) {
      if (atheme && !atheme.isRunning()) throw new Error(`atheme exited; log ${servicesLog}:\n${atheme.tail()}`);
      if (Date.now() > deadline) throw new Error(`atheme did not link within ${timeoutMs} ms; see ${servicesLog}`);
      await sleep(100);
    }
  };

  const launchIrcd = async () => {
    ircd = spawnService({
      name: "inspircd",
      cmd: INSPIRCD,
      args: ["--runasroot", "--nofork", "--config", join(dir, "inspircd.conf")],
      cwd: dir,
      ...(logPath ? { logPath } : {}),
    });
    logPath = ircd.logPath;
    await waitForPort(host, port, timeoutMs, ircd);
  };

  await launchIrcd();
  if (services) {
    const before = syncCount();
    atheme = spawnService({
      name: "atheme",
      cmd: ATHEME,
      args: ["-n", "-c", join(dir, "atheme.conf"), "-D", join(dir, "atheme-data"), "-l", join(dir, "atheme-main.log"),
        "-p", join(dir, "atheme.pid")],
      cwd: dir,
    });
    await waitLinked(before);
  }

  const nickservCommand = async (nick: string, command: string, ok: RegExp) => {
    const c = new IrcClient(host, port, opts.password ? { password: opts.password } : {});
    try {
      await c.connect(nick);
      const from = c.mark();
      c.privmsg("NickServ", command);
      const m = await c.waitFor((x) => x.command === "NOTICE" && x.nick === "NickServ"
        && (ok.test(x.params[1] ?? "") || /not|invalid|denied|error|already/i.test(x.params[1] ?? "")), 30_000, from);
      if (!ok.test(m.params[1] ?? "")) throw new Error(`NickServ ${command.split(" ")[0]} for ${nick}: ${m.params[1]}`);
    } finally {
      await c.quit().catch(() => c.destroy());
    }
  };

  const registerAccount = async (account: string, password: string) => {
    if (!services) throw new Error("registerAccount needs services: true");
    await nickservCommand(account, `REGISTER ${password} ${account}@example.invalid`, /registered/i);
  };

  let certCounter = 0;
  const addCertFingerprint = async (account: string, password: string) => {
    if (!services) throw new Error("addCertFingerprint needs services: true");
    const cert = selfSignedCert(dir, `client-${++certCounter}`, account);
    const c = new IrcClient(host, port, opts.password ? { password: opts.password } : {});
    try {
      await c.connect(`${account.slice(0, 20)}_c${certCounter}`);
      const from = c.mark();
      c.privmsg("NickServ", `IDENTIFY ${account} ${password}`);
      await c.waitFor((x) => x.command === "NOTICE" && x.nick === "NickServ" && /identified for|now logged in/i.test(x.params[1] ?? ""), 30_000, from);
      const from2 = c.mark();
      c.privmsg("NickServ", `CERT ADD ${cert.fingerprint}`);
      const m = await c.waitFor((x) => x.command === "NOTICE" && x.nick === "NickServ", 30_000, from2);
      if (!/added/i.test(m.params[1] ?? "")) throw new Error(`NickServ CERT ADD: ${m.params[1]}`);
    } finally {
      await c.quit().catch(() => c.destroy());
    }
    return cert;
  };

  for (const a of opts.accounts ?? []) await registerAccount(a.name, a.password);

  let stopped = false;
  return {
    host, port, tlsPort, tlsCertFile, name, servicesName: "services.test", dir,
    get logPath() { return logPath; },
    servicesLogPath: servicesLog,
    readLog: () => (existsSync(join(dir, "inspircd.log")) ? readFileSync(join(dir, "inspircd.log"), "utf8") : ""),
    registerAccount,
    addCertFingerprint,
    async restart() {
      const before = syncCount();
      await (ircd as Service | null)?.stop();
      await launchIrcd();
      if (services) await waitLinked(before);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await (atheme as Service | null)?.stop();
      await (ircd as Service | null)?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
