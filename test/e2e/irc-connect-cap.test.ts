// 1,000 puppets against a real ngIRCd through a counting TCP front: the server side never sees more connection
// attempts in flight (accepted, not yet welcomed with 001) than the per-network cap, and every puppet registers.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect, type Server, type Socket } from "node:net";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { IrcPuppet } from "../../src/irc/puppet.js";
import { ConnectLimiter } from "../../src/irc/connect-limiter.js";

const PUPPETS = 1000;
const CAP = 10;

/** Counts attempts in flight as the server sees them: from accept until the server's 001 passes or the socket closes. */
class CountingFront {
  server: Server;
  port = 0;
  inFlight = 0;
  peak = 0;
  accepted = 0;
  welcomed = 0;
  private sockets = new Set<Socket>();

  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => this.accept(client));
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen({ port: 0, host: "127.0.0.1", backlog: 2048 }, r));
    this.port = (this.server.address() as { port: number }).port;
  }

  private accept(client: Socket): void {
    this.accepted += 1;
    this.inFlight += 1;
    this.peak = Math.max(this.peak, this.inFlight);
    let open = true;
    const end = () => {
      if (open) {
        open = false;
        this.inFlight -= 1;
      }
    };
    const upstream = connect(this.target.port, this.target.host);
    this.sockets.add(client).add(upstream);
    let seen = "";
    upstream.on("data", (d) => {
      if (open) {
        seen = (seen + d.toString("latin1")).slice(-4096);
        if (/^:\S+ 001 /m.test(seen)) {
          this.welcomed += 1;
          end();
        }
      }
      client.write(d);
    });
    client.on("data", (d) => upstream.write(d));
    const close = () => {
      end();
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("close", close).on("error", close);
    upstream.on("close", close).on("error", close);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe(`${PUPPETS} puppets connect with at most ${CAP} attempts in flight`, { timeout: 900_000 }, () => {
  let irc: NgircdInstance;
  let front: CountingFront;
  const puppets: IrcPuppet[] = [];

  before(async () => {
    irc = await startNgircd();
    front = new CountingFront(irc);
    await front.listen();
  });

  after(async () => {
    // QUIT in batches: ngIRCd and two shared cores should not get 1,000 closes at once.
    for (let i = 0; i < puppets.length; i += 100) await Promise.all(puppets.slice(i, i + 100).map((p) => p.disconnect("test done")));
    await front?.stop();
    await irc?.stop();
  });

  it("every puppet registers; the server side never sees more than the cap connecting", async () => {
    const gate = new ConnectLimiter(CAP);
    let connected = 0;
    let allUp!: () => void;
    const done = new Promise<void>((r) => (allUp = r));
    const problems: string[] = [];
    for (let i = 0; i < PUPPETS; i++) {
      const p = new IrcPuppet(
        { host: "127.0.0.1", port: front.port, tls: false, nick: `p${i}`, connectGate: gate, backoff: { initialMs: 500, maxMs: 5_000, jitter: 0.5 } },
        {
          onMessage: () => {},
          onConnected: () => {
            connected += 1;
            if (connected === PUPPETS) allUp();
          },
          onDisconnected: ({ reason }) => problems.push(`p${i}: ${reason}`),
          onNickChange: () => {},
          onNickRejected: () => {},
        },
      );
      puppets.push(p);
      p.connect();
    }
    await done;
    assert.equal(connected, PUPPETS);
    assert.deepEqual(problems, [], "no attempt failed");
    assert.ok(front.peak <= CAP, `server side saw ${front.peak} attempts in flight at once (cap ${CAP})`);
    assert.ok(front.peak > 1, "attempts did overlap (the cap, not the test, limited them)");
    assert.equal(front.welcomed, PUPPETS);
    assert.equal(front.accepted, PUPPETS, "one connection per puppet: none failed and retried");
    assert.ok(gate.peakActive <= CAP);
    assert.ok(puppets.every((p) => p.connected));
  });
});
