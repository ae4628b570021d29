// OTR v3 instance tags against libotr: the same contact logged in twice (two libotr processes, same key, two
// instance tags, e.g. two clients behind one bouncer), seeing every line we send, as the network would show it.
// Our DH-commit answering a query goes to instance 0, so both logins answer; we must hold two sessions, read
// both, and each of our messages must be read by exactly one login while the other drops it as not its own.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OtrAccount, OtrConversation, POLICY, type OtrEvent } from "../../src/otr/index.js";
import { serializeInstanceTagFile } from "../../src/otr/keyfile.js";
import { LibotrPeer, ensureHelperBuilt, helperGenKey, injected, receivedTexts, type HelperEvent } from "../harness/libotr.js";
import { LIB_NAME, OUR_NAME, ourKey, randomInstanceTag } from "./link.js";

before(() => { ensureHelperBuilt(); ourKey(); });

test("two libotr logins of one contact: two sessions, messages both ways with each, ours read by exactly one", { timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "otr-instances-"));
  const keyFile = join(dir, "alice.private_key");
  helperGenKey(keyFile, LIB_NAME, "irc");
  const tags = [0x1111_1111, 0x2222_2222];
  const logins: LibotrPeer[] = [];
  try {
    for (const t of tags) {
      const f = join(dir, `alice-${t}.instance_tags`);
      writeFileSync(f, serializeInstanceTagFile([{ account: LIB_NAME, protocol: "irc", instanceTag: t }]));
      logins.push(await LibotrPeer.start({ account: LIB_NAME, protocol: "irc", keyFile, instagFile: f, policy: "V2|V3" }));
    }
    assert.deepEqual(logins.map((l) => l.instag), tags);
    const account = new OtrAccount({ privateKey: ourKey(), instanceTag: randomInstanceTag(), policy: POLICY.MANUAL });
    const conv = new OtrConversation(account, LIB_NAME);
    const ourEvents: OtrEvent[] = [];
    const libEvents: HelperEvent[][] = [[], []];

    // Our lines reach both logins; a login's lines reach us.
    const pump = async (fromOurs: string[], fromLogin: [number, string][]) => {
      const q: ({ to: "logins"; line: string } | { to: "ours"; line: string })[] = [
        ...fromOurs.map((line) => ({ to: "logins" as const, line })),
        ...fromLogin.map(([, line]) => ({ to: "ours" as const, line })),
      ];
      for (let guard = 0; q.length; guard++) {
        assert.ok(guard < 10_000, "message storm");
        const item = q.shift()!;
        if (item.to === "logins") {
          for (const [i, l] of logins.entries()) {
            const evs = await l.receive(OUR_NAME, item.line);
            libEvents[i]!.push(...evs);
            for (const line of injected(evs)) q.push({ to: "ours", line });
          }
        } else {
          const r = conv.receive(item.line);
          ourEvents.push(...r.events);
          for (const line of r.toSend) q.push({ to: "logins", line });
        }
      }
    };
    const take = () => ({ ours: ourEvents.splice(0), lib: libEvents.map((e) => e.splice(0)) });

    // login 0 asks for OTR; both logins answer our instance-0 DH-commit
    await pump([], injected(await logins[0]!.send(OUR_NAME, "?OTRv3?")).map((l) => [0, l] as [number, string]));
    let evs = take();
    const secure = evs.ours.filter((e): e is Extract<OtrEvent, { type: "gone-secure" }> => e.type === "gone-secure");
    assert.deepEqual(secure.map((e) => e.theirInstance).sort(), [...tags].sort(), `a session with each login: ${JSON.stringify(evs.ours)}`);
    for (const [i, l] of evs.lib.entries()) {
      assert.equal(l.filter((e) => e.ev === "gone_secure").length, 1, `login ${i} went secure`);
    }

    // each login talks to us
    for (const [i, l] of logins.entries()) {
      await pump([], injected(await l.send(OUR_NAME, `from login ${i}`)).map((x) => [i, x] as [number, string]));
      evs = take();
      const got = evs.ours.filter((e): e is Extract<OtrEvent, { type: "received" }> => e.type === "received");
      assert.deepEqual(got.map((e) => [e.text, e.encrypted]), [[`from login ${i}`, true]]);
    }

    // we answer: exactly one login reads it, the other drops it as meant for another instance
    const s = conv.send("to whichever login is best");
    assert.equal(s.outcome, "encrypted");
    await pump(s.toSend, []);
    evs = take();
    const readers = evs.lib.map((l) => receivedTexts(l));
    assert.equal(readers.filter((r) => r.length === 1 && r[0] === "to whichever login is best").length, 1, JSON.stringify(readers));
    const other = readers.findIndex((r) => r.length === 0);
    assert.ok(other >= 0);
    assert.ok(evs.lib[other]!.some((e) => e.ev === "msg_event" && e.event === "RCVDMSG_FOR_OTHER_INSTANCE"),
      "the other login saw a message for another instance");
    // the contract's choice: the instance we heard from most recently (login 1 spoke last)
    assert.deepEqual(readers[1], ["to whichever login is best"], "sent to the most recent instance");
    assert.equal(conv.status().theirInstance, tags[1]);
  } finally {
    for (const l of logins) await l.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
