// Puppet connections per (Matrix user, network): created on `connect`, remembered in the store so a restarted
// bridge reconnects exactly the users who were connected, and reported to the user as state changes, once each.
import type { Store } from "../store/types.js";
import type { BridgeLogger, BridgeMetrics, ConnectionState, IrcIncoming, NetworkInfo, PuppetFactory, PuppetPort } from "./ports.js";
import { nickFromTemplate } from "./commands.js";

/** Store state key holding the JSON list of [userId, networkId] that should be connected. */
export const CONNECTIONS_STATE_KEY = "irc.connections";

export interface ConnectionManagerOptions {
  store: Store;
  createPuppet: PuppetFactory;
  networks: readonly NetworkInfo[];
  logger: BridgeLogger;
  metrics: BridgeMetrics;
  /** A notice for the user's management room. */
  notify(userId: string, text: string): Promise<void>;
  onIrcMessage(userId: string, networkId: string, msg: IrcIncoming): void;
}

const key = (userId: string, networkId: string) => `${networkId}\u0000${userId}`;

export class ConnectionManager {
  private readonly puppets = new Map<string, PuppetPort>();
  /** Marks a connection gone in the metrics, whatever state it was in (idempotent). */
  private readonly gone = new Map<string, () => void>();
  private persistChain: Promise<void> = Promise.resolve();

  constructor(private readonly o: ConnectionManagerOptions) {}

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
          moveTo("connected");
          log.info("puppet connected", { userId, networkId });
          void this.o.notify(userId, `Connected to ${networkId} as ${nick}.`);
        },
        onDisconnected: ({ reason, willRetry, retryInMs, wasConnected, failed }) => {
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
    moveTo("connecting");
    this.gone.set(key(userId, networkId), () => {
      if (state !== null) moveTo(null);
    });
    await this.persist((list) => (list.some(([u, n]) => u === userId && n === networkId) ? list : [...list, [userId, networkId]]));
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
    if (!puppet) return false;
    await puppet.disconnect(reason);
    done?.();
    return true;
  }

  /** Reconnects everyone who was connected before a restart. */
  async restore(): Promise<number> {
    const list = await this.load();
    let n = 0;
    for (const [userId, networkId] of list) {
      if (!this.network(networkId)) continue;
      await this.connect(userId, networkId);
      n += 1;
    }
    return n;
  }

  /** Closes every connection without forgetting who wants to be connected (bridge shutdown). */
  async stopAll(reason: (networkId: string) => string): Promise<void> {
    const all = [...this.puppets.entries()].map(([k, p]) => ({ k, p, done: this.gone.get(k) }));
    this.puppets.clear();
    this.gone.clear();
    await Promise.all(all.map(async ({ k, p, done }) => {
      await p.disconnect(reason(k.slice(0, k.indexOf("\u0000"))));
      done?.();
    }));
    await this.persistChain;
  }

  private async load(): Promise<[string, string][]> {
    const raw = await this.o.store.getState(CONNECTIONS_STATE_KEY);
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
    // Serialised: two users connecting at once must not overwrite each other's entry.
    const run = async () => {
      const next = update(await this.load());
      await this.o.store.putState(CONNECTIONS_STATE_KEY, JSON.stringify(next));
    };
    const p = this.persistChain.then(run, run);
    this.persistChain = p.catch(() => undefined);
    return p;
  }
}
