// Puppet connections per (Matrix user, network): created on `connect`, remembered in the store so a restarted
// bridge reconnects exactly the users who were connected, and reported to the user as state changes, once each.
import type { Store } from "../store/types.js";
import type { BridgeLogger, BridgeMetrics, ConnectionState, IrcIncoming, NetworkInfo, PuppetFactory, PuppetPort } from "./ports.js";
import { nickFromTemplate } from "./commands.js";

/** Store state key holding the JSON list of [userId, networkId] that should be connected. */
export const CONNECTIONS_STATE_KEY = "irc.connections";
/** Store state key holding the JSON list of [userId, networkId] disconnected for inactivity (reconnect on use). */
export const IDLE_STATE_KEY = "irc.idle";

export interface ConnectionManagerOptions {
  store: Store;
  createPuppet: PuppetFactory;
  networks: readonly NetworkInfo[];
  logger: BridgeLogger;
  metrics: BridgeMetrics;
  /** A notice for the user's management room. */
  notify(userId: string, text: string): Promise<void>;
  onIrcMessage(userId: string, networkId: string, msg: IrcIncoming): void;
  /** Clock for the idle policy (default Date.now). */
  now?: () => number;
}

const key = (userId: string, networkId: string) => `${networkId}\u0000${userId}`;

/**
 * How long a message handled right after a restart waits for its user's restored connection to come up before it
 * is handled anyway (then held or refused as usual): replayed and retried events must not be refused for a
 * connection that is seconds from ready, nor wait forever for one that will not come.
 */
export const RESTORE_WAIT_MS = 60_000;

export class ConnectionManager {
  private readonly puppets = new Map<string, PuppetPort>();
  /** Marks a connection gone in the metrics, whatever state it was in (idempotent). */
  private readonly gone = new Map<string, () => void>();
  private persistChain: Promise<void> = Promise.resolve();
  private readonly lists = new Map<string, Promise<[string, string][]>>();
  private readonly writers = new Map<string, { running: Promise<void> | null; next: Promise<void> | null }>();
  /** Last Matrix activity per connection (connect counts), for the idle policy. */
  private readonly lastActive = new Map<string, number>();
  private idleTimer: NodeJS.Timeout | null = null;
  /** Restored connections that have not reported up or down yet: settled by the first report. */
  private readonly restoring = new Map<string, { promise: Promise<void>; settle: () => void }>();

  constructor(private readonly o: ConnectionManagerOptions) {
    const shortest = Math.min(...o.networks.map((n) => n.idleTimeoutMs || Infinity));
    if (Number.isFinite(shortest)) {
      // Check a few times per timeout (at most once a minute); unref'd so it never keeps the process alive.
      this.idleTimer = setInterval(() => void this.sweepIdle().catch(() => undefined), Math.max(1_000, Math.min(60_000, shortest / 4)));
      this.idleTimer.unref();
    }
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /**
   * The user did something on Matrix for this network. If their puppet was disconnected for inactivity it is
   * reconnected now (the caller's message is then held until registration); returns true in that case.
   */
  async touch(userId: string, networkId: string): Promise<boolean> {
    const k = key(userId, networkId);
    this.lastActive.set(k, this.now());
    if (this.puppets.has(k)) return false;
    const idle = await this.loadList(IDLE_STATE_KEY);
    if (!idle.some(([u, n]) => u === userId && n === networkId)) return false;
    return (await this.connect(userId, networkId)) !== null;
  }

  /** Disconnects puppets whose users were inactive on Matrix past their network's idle timeout; returns how many. */
  async sweepIdle(): Promise<number> {
    const now = this.now();
    let n = 0;
    for (const [k, puppet] of [...this.puppets.entries()]) {
      const [networkId, userId] = [k.slice(0, k.indexOf("\u0000")), k.slice(k.indexOf("\u0000") + 1)];
      const timeout = this.network(networkId)?.idleTimeoutMs ?? 0;
      if (!timeout || now - (this.lastActive.get(k) ?? now) < timeout) continue;
      if (this.puppets.get(k) !== puppet) continue;
      this.puppets.delete(k);
      const done = this.gone.get(k);
      this.gone.delete(k);
      this.lastActive.delete(k);
      await this.persistList(IDLE_STATE_KEY, (list) => (list.some(([u, m]) => u === userId && m === networkId) ? list : [...list, [userId, networkId]]));
      await puppet.disconnect("Idle");
      done?.();
      n += 1;
      this.o.logger.info("puppet disconnected for inactivity", { userId, networkId });
      void this.o.notify(userId, `Disconnected from ${networkId}: no activity here for a while. Your next message to someone on ${networkId} reconnects you (or send \`connect ${networkId}\`).`);
    }
    return n;
  }

  network(networkId: string): NetworkInfo | undefined {
    return this.o.networks.find((n) => n.id === networkId);
  }

  get(userId: string, networkId: string): PuppetPort | undefined {
    return this.puppets.get(key(userId, networkId));
  }

  async desiredNick(userId: string, networkId: string): Promise<string> {
    const saved = await this.o.store.getUserNetwork(userId, networkId);
    const net = this.network(networkId);
    return saved?.nick ?? nickFromTemplate(net?.nickTemplate ?? "{localpart}", userId);
  }

  /** Starts a puppet unless one exists; returns the nick it will ask for, or null when already present. */
  async connect(userId: string, networkId: string): Promise<string | null> {
    if (this.puppets.has(key(userId, networkId))) return null;
    const nick = await this.desiredNick(userId, networkId);
    const password = await this.o.store.getIrcPassword(userId, networkId);
    if (this.puppets.has(key(userId, networkId))) return null;
    const log = this.o.logger;
    let state: ConnectionState | null = null;
    const moveTo = (next: ConnectionState | null) => {
      this.o.metrics.connectionState(networkId, state, next);
      state = next;
    };
    const puppet = this.o.createPuppet(
      { userId, networkId, nick, ...(password ? { account: { name: nick, password } } : {}) },
      {
        onMessage: (msg) => this.o.onIrcMessage(userId, networkId, msg),
        onConnected: ({ nick }) => {
          this.restoring.get(key(userId, networkId))?.settle();
          moveTo("connected");
          log.info("puppet connected", { userId, networkId });
          void this.o.notify(userId, `Connected to ${networkId} as ${nick}.`);
        },
        onDisconnected: ({ reason, willRetry, retryInMs, wasConnected, failed }) => {
          this.restoring.get(key(userId, networkId))?.settle();
          moveTo(willRetry ? "backoff" : null);
          log.info("puppet disconnected", { userId, networkId, reason, willRetry, failed: failed === true });
          if (failed) {
            // Forget the dead puppet so `connect` starts afresh; the store still lists the user, so a bridge
            // restart tries again (a fixed password or lifted ban then just works).
            if (this.puppets.get(key(userId, networkId)) === puppet) {
              this.puppets.delete(key(userId, networkId));
              this.gone.delete(key(userId, networkId));
            }
            void this.o.notify(userId, `Could not connect to ${networkId}: ${reason}. Not retrying; send \`connect ${networkId}\` to try again.`);
            return;
          }
          if (willRetry) {
            const secs = Math.round((retryInMs ?? 0) / 1000);
            const what = wasConnected === false ? `Could not connect to ${networkId}` : `Lost the connection to ${networkId}`;
            void this.o.notify(userId, `${what} (${reason}); retrying in ${secs} s, then with growing pauses. I will tell you when it is back.`);
          }
        },
        onLogin: ({ ok, account, reason }) =>
          void this.o.notify(userId, ok ? `Logged in to services on ${networkId}${account ? ` as ${account}` : ""}.` : `Services on ${networkId} refused your login (${reason ?? "refused"}); send \`login ${networkId} <password>\` to store another password.`),
        onNickChange: ({ newNick }) => void this.o.notify(userId, `Your nick on ${networkId} is now ${newNick}.`),
        onNickRejected: ({ nick, reason }) => void this.o.notify(userId, `${networkId} refused the nick ${nick} (${reason}); you keep ${puppet.nick}.`),
      },
    );
    this.puppets.set(key(userId, networkId), puppet);
    this.lastActive.set(key(userId, networkId), this.now());
    moveTo("connecting");
    this.gone.set(key(userId, networkId), () => {
      if (state !== null) moveTo(null);
    });
    await this.persist((list) => (list.some(([u, n]) => u === userId && n === networkId) ? list : [...list, [userId, networkId]]));
    await this.persistList(IDLE_STATE_KEY, (list) => list.filter(([u, n]) => !(u === userId && n === networkId)));
    puppet.connect();
    return nick;
  }

  /** Returns false when there was nothing to disconnect. */
  async disconnect(userId: string, networkId: string, reason = "Disconnected by user"): Promise<boolean> {
    const k = key(userId, networkId);
    const puppet = this.puppets.get(k);
    const done = this.gone.get(k);
    this.puppets.delete(k);
    this.gone.delete(k);
    await this.persist((list) => list.filter(([u, n]) => !(u === userId && n === networkId)));
    const wasIdle = (await this.loadList(IDLE_STATE_KEY)).some(([u, n]) => u === userId && n === networkId);
    await this.persistList(IDLE_STATE_KEY, (list) => list.filter(([u, n]) => !(u === userId && n === networkId)));
    if (!puppet) return wasIdle;
    await puppet.disconnect(reason);
    done?.();
    return true;
  }

  /** Reconnects everyone who was connected before a restart. */
  async restore(): Promise<number> {
    const list = await this.load();
    // Users disconnected for inactivity stay so until they next write: a restart must not wake them all.
    const idle = await this.loadList(IDLE_STATE_KEY);
    let n = 0;
    for (const [userId, networkId] of list) {
      if (!this.network(networkId)) continue;
      if (idle.some(([u, m]) => u === userId && m === networkId)) continue;
      this.expectRestore(userId, networkId);
      await this.connect(userId, networkId);
      n += 1;
    }
    return n;
  }

  private expectRestore(userId: string, networkId: string): void {
    const k = key(userId, networkId);
    let settle = () => undefined as void;
    const promise = new Promise<void>((resolve) => {
      const t = setTimeout(() => settle(), RESTORE_WAIT_MS);
      t.unref();
      settle = () => {
        clearTimeout(t);
        if (this.restoring.get(k)?.promise === promise) this.restoring.delete(k);
        resolve();
      };
    });
    this.restoring.set(k, { promise, settle });
  }

  /** Resolves once every connection of the user restored at start has come up or gone down (at once otherwise). */
  async restored(userId: string): Promise<void> {
    const mine = [...this.restoring.entries()].filter(([k]) => k.slice(k.indexOf("\u0000") + 1) === userId);
    await Promise.all(mine.map(([, r]) => r.promise));
  }

  /** Resolves once every line queued so far on any of the user's connections has left (see PuppetPort.whenSent). */
  async sent(userId: string): Promise<void> {
    const mine = [...this.puppets.entries()].filter(([k]) => k.slice(k.indexOf("\u0000") + 1) === userId).map(([, p]) => p);
    await Promise.all(mine.map((p) => new Promise<void>((resolve) => (p.whenSent ? p.whenSent(resolve) : resolve()))));
  }

  /** Closes every connection without forgetting who wants to be connected (bridge shutdown). */
  async stopAll(reason: (networkId: string) => string): Promise<void> {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
    const all = [...this.puppets.entries()].map(([k, p]) => ({ k, p, done: this.gone.get(k) }));
    this.puppets.clear();
    this.gone.clear();
    await Promise.all(all.map(async ({ k, p, done }) => {
      await p.disconnect(reason(k.slice(0, k.indexOf("\u0000"))));
      done?.();
    }));
    await this.writesDone();
  }

  private load(): Promise<[string, string][]> {
    return this.loadList(CONNECTIONS_STATE_KEY);
  }

  /** The list as last written or about to be (read from the store once, then kept here: it changes only here). */
  private loadList(stateKey: string): Promise<[string, string][]> {
    let p = this.lists.get(stateKey);
    if (!p) {
      p = this.readList(stateKey);
      this.lists.set(stateKey, p);
      p.catch(() => this.lists.delete(stateKey)); // a failed read is tried again next time
    }
    return p;
  }

  private async readList(stateKey: string): Promise<[string, string][]> {
    const raw = await this.o.store.getState(stateKey);
    if (!raw) return [];
    try {
      const v = JSON.parse(raw) as unknown;
      return Array.isArray(v) ? v.filter((e): e is [string, string] => Array.isArray(e) && typeof e[0] === "string" && typeof e[1] === "string") : [];
    } catch {
      this.o.logger.warn("connection list in the store is not JSON; starting with none");
      return [];
    }
  }

  private persist(update: (list: [string, string][]) => [string, string][]): Promise<void> {
    return this.persistList(CONNECTIONS_STATE_KEY, update);
  }

  /**
   * Applies `update` to the list and resolves once a write holding the change is durable. Changes made while a
   * write is out are written together by one next write: a mass connect (thousands of users at a start) used to
   * read, parse and rewrite the whole list once per user, O(U^2) bytes with an fsync each.
   */
  private persistList(stateKey: string, update: (list: [string, string][]) => [string, string][]): Promise<void> {
    // Serialised: two users connecting at once must not overwrite each other's entry.
    const run = async () => {
      const before = await this.loadList(stateKey);
      const next = update(before);
      // Lengths first: a connect adds an entry, and stringifying the whole list per connect was the O(U^2) cost.
      if (next === before || (next.length === before.length && JSON.stringify(next) === JSON.stringify(before))) return null;
      this.lists.set(stateKey, Promise.resolve(next));
      // Boxed, so the chain moves on to the next change without waiting for this write.
      return { written: this.writeSoon(stateKey) };
    };
    const p = this.persistChain.then(run, run);
    this.persistChain = p.then(() => undefined, () => undefined);
    return p.then((w) => w?.written);
  }

  /** Every change made so far is written (or its write failed). */
  private async writesDone(): Promise<void> {
    await this.persistChain;
    for (const w of this.writers.values()) await Promise.allSettled([w.running, w.next]);
  }

  /** A write of the list's current value: the one out if none started yet after the change, else the next one. */
  private writeSoon(stateKey: string): Promise<void> {
    let w = this.writers.get(stateKey);
    if (!w) { w = { running: null, next: null }; this.writers.set(stateKey, w); }
    const st = w;
    if (st.next) return st.next;
    const start = (): Promise<void> => {
      const p = (async () => {
        const list = await this.loadList(stateKey);
        await this.o.store.putState(stateKey, JSON.stringify(list));
      })();
      st.running = p;
      p.then(() => { if (st.running === p) st.running = null; }, () => { if (st.running === p) st.running = null; });
      return p;
    };
    if (!st.running) return start();
    st.next = st.running.catch(() => undefined).then(() => { st.next = null; return start(); });
    return st.next;
  }
}
