// Without encryption too, the appservice transaction is answered only after its message events were recorded
// (src/matrix/adapter.ts, TransactionInbox): a failed record answers 500 and hands nothing on; an event recorded
// before (a retry, a replay) is dropped; events that cannot become IRC lines are not recorded.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MatrixAdapter, type TransactionInbox } from "../../src/matrix/adapter.js";

test("transactions are answered after the inbox recorded their messages; failures answer 500; redeliveries are dropped", { timeout: 60_000 }, async () => {
  const known = new Set<string>();
  const recorded: string[] = [];
  let failNext = false;
  let release: (() => void) | null = null;
  const inbox: TransactionInbox = {
    async record(events) {
      if (release === null && recorded.length === 0) await new Promise<void>((r) => (release = r));
      if (failNext) { failNext = false; throw Object.assign(new Error("disk full"), { code: "database-error" }); }
      return events.map((e) => {
        recorded.push(e.eventId);
        if (known.has(e.eventId)) return false;
        known.add(e.eventId);
        return true;
      });
    },
  };
  const a = new MatrixAdapter({
    homeserverUrl: "http://127.0.0.1:1", domain: "example.org", ghostTemplate: "irc_{network}_{nick}", networkIds: ["libera"],
    registration: { id: "t", url: "http://127.0.0.1", sender_localpart: "ircotr", as_token: "a", hs_token: "h", namespaces: { users: [], aliases: [], rooms: [] } },
    onError() {}, onLog() {}, inbox,
  });
  const handed: string[] = [];
  a.setHandlers({ async onInvite() {}, async onMembership() {}, async onMessage(e) { handed.push(e.eventId); } });
  await a.start(0, "127.0.0.1");
  try {
    const server = (a as unknown as { bridge: { appService: { server: import("node:http").Server } } }).bridge.appService.server;
    const { port } = server.address() as import("node:net").AddressInfo;
    const msg = (id: string, sender = "@alice:example.org") => ({ type: "m.room.message", event_id: id, room_id: "!dm:example.org", sender, content: { msgtype: "m.text", body: "hello" } });
    const put = (txn: string, events: unknown[]) => fetch(`http://127.0.0.1:${port}/_matrix/app/v1/transactions/${txn}`, {
      method: "PUT", headers: { "content-type": "application/json", authorization: "Bearer h" }, body: JSON.stringify({ events }),
    });
    let answered = false;
    const first = put("1", [msg("$a"), msg("$ghost", "@irc_libera_bob:example.org"), { type: "m.room.message", event_id: "$nobody", room_id: "!dm:example.org", sender: "@alice:example.org", content: { msgtype: "m.image" } }]).then((r) => { answered = true; return r; });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(answered, false, "not answered before the record is durable");
    release!();
    assert.equal((await first).status, 200);
    assert.deepEqual(recorded, ["$a"], "only what can become IRC lines is recorded");
    failNext = true;
    const failed = await put("2", [msg("$b")]);
    assert.equal(failed.status, 500, "the homeserver will retry");
    assert.equal((await put("2", [msg("$b")])).status, 200, "the retry goes through");
    assert.equal((await put("3", [msg("$a"), msg("$c")])).status, 200);
    await new Promise((r) => setTimeout(r, 100));
    // A ghost's message is handed on unrecorded (the bridge ignores its own users' messages).
    assert.deepEqual(handed, ["$a", "$ghost", "$b", "$c"], "$b handed on once (after its retry), the redelivered $a dropped");
  } finally {
    await a.stop();
  }
});
