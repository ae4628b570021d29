// What the workload (bench/bridge-workload.ts) needs from a bridge under test: how to start and stop it, how a
// Matrix user sets it up and connects, what its puppet and ghosts are called, and what it can report about itself.
import type { BenchUsers } from "./bridge-matrix.js";
import type { Inbox } from "./bridge-inbox.js";

export interface World {
  hsUrl: string;
  domain: string;
  ircHost: string;
  ircPort: number;
  users: BenchUsers;
  inbox: Inbox;
  /** Synapse's process, for its CPU time (context for the latencies: both bridges share it). */
  homeserverPid: number | null;
  /** Where the bench keeps its files for this run. */
  dir: string;
}

export interface Subject {
  readonly name: string;
  /** The process whose RSS and CPU are measured (set once started). */
  readonly pid: number;
  /** Can this bridge run OTR with IRC contacts? */
  readonly otr: boolean;
  /** Prometheus endpoint of the bridge (JS heap, event-loop lag, bridge-added latency), if it has one. */
  readonly metricsUrl: string | null;
  start(): Promise<void>;
  /** Everything before the connect: management room, network room. Not part of the connect time. */
  prepare(userId: string): Promise<void>;
  /** Asks the bridge to connect this user's puppet; resolves once it says the puppet is on IRC. */
  connect(userId: string): Promise<void>;
  /** The puppet's IRC nick for this user. */
  puppetNick(localpart: string): string;
  /** Rooms of this user that are not DMs (so a new invite tells a DM apart). */
  ownRooms(userId: string): Set<string>;
  stop(): Promise<void>;
}
