// Two in-process conversations talking through the public API: both roles, v3 and v2, fragmentation, session
// end, extra symmetric key, policies, heartbeats, instance tags and SMP.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  establish,
  makePair,
  makeSide,
  pump,
  pumpBoth,
  receivedTexts,
  say,
  snapshot,
  testKey,
  TestEnv,
  type Side,
} from "./fixtures.js";
import {
  HEARTBEAT_INTERVAL_MS,
  MAX_QUEUED_MESSAGES,
  MIN_FRAGMENT_SIZE,
  OtrAccount,
  OtrConversation,
  POLICY,
  QUEUE_TIMEOUT_MS,
  generateInstanceTag,
  mayNeedPrivateKey,
  CODE,
  type OtrEvent,
} from "../../src/otr/index.js";

const V2_ONLY = { ...POLICY.MANUAL, allowV3: false };

function nonAscii(n: number): string {
  // Mixed 1-, 2-, 3- and 4-byte UTF-8 characters, cut to n UTF-8 bytes without splitting a character.
  const alphabet = ["a", "é", "ж", "€", "😀", "中", " ", "ß"];
  let out = "";
  let bytes = 0;
  for (let i = 0; ; i++) {
    const c = alphabet[(i * 7 + 3) % alphabet.length]!;
    const len = Buffer.byteLength(c);
    if (bytes + len > n) break;
    out += c;
    bytes += len;
  }
  while (bytes < n) {
    out += "x";
    bytes++;
  }
  return out;
}

const types = (events: OtrEvent[]) => events.map((e) => e.type);

describe("AKE and data messages", () => {
  for (const version of [3, 2] as const) {
    for (const initiator of ["alice", "bob"] as const) {
      for (const frag of [0, 150, 400]) {
        test(`v${version}, ${initiator} starts, fragment size ${frag || "none"}`, () => {
          const policy = version === 3 ? POLICY.MANUAL : V2_ONLY;
          const [a, b] = makePair({ policy, maxFragmentSize: frag }, { maxFragmentSize: frag });
          const [first, second] = initiator === "alice" ? [a, b] : [b, a];
          establish(first, second);
          for (const s of [a, b]) {
            const st = s.conv.status();
            assert.equal(st.state, "encrypted", `${s.account.fingerprintHuman}: ${JSON.stringify(types(s.events))}`);
            assert.equal(st.version, version);
            assert.equal(st.theirInstance, version === 3 ? (s === a ? b : a).account.instanceTag : null);
          }
          assert.ok(a.events.some((e) => e.type === "gone-secure"));
          assert.deepEqual(a.conv.status().ssid, b.conv.status().ssid);
          for (const size of [1, 400, 3000]) {
            const text = nonAscii(size);
            for (const [from, to] of [[a, b], [b, a], [a, b], [a, b], [b, a]] as const) {
              let lines = 0;
              const r = from.conv.send(text);
              assert.equal(r.outcome, "encrypted");
              for (const l of r.toSend) {
                if (frag) assert.ok(l.length <= frag, `line of ${l.length} > ${frag}`);
                lines++;
              }
              if (frag && size === 3000) assert.ok(lines > 1);
              const before = to.events.length;
              pump(from, to, r.toSend);
              assert.deepEqual(receivedTexts(to.events.slice(before)), [text]);
            }
          }
        });
      }
    }
  }

  test("a v3 account talks v2 to a v2-only peer (peer offers only v2)", () => {
    const [a, b] = makePair({}, { policy: V2_ONLY });
    establish(a, b);
    assert.equal(a.conv.status().version, 2);
    assert.deepEqual(receivedTexts(say(b, a, "old client")), ["old client"]);
  });

  test("a v3 peer answers our v2-only query with v2", () => {
    const [a, b] = makePair({ policy: V2_ONLY }, {});
    establish(b, a); // b asks for v2 or v3, a can only do v2
    assert.equal(b.conv.status().version, 2);
    assert.equal(a.conv.status().state, "encrypted");
  });

  test("crossing queries: both start at once and still agree", () => {
    const [a, b] = makePair();
    pumpBoth(a, b, a.conv.startAke().toSend, b.conv.startAke().toSend);
    assert.equal(a.conv.status().state, "encrypted", JSON.stringify(types(a.events)));
    assert.equal(b.conv.status().state, "encrypted", JSON.stringify(types(b.events)));
    assert.deepEqual(a.conv.status().ssid, b.conv.status().ssid);
    assert.deepEqual(receivedTexts(say(a, b, "x")), ["x"]);
    assert.deepEqual(receivedTexts(say(b, a, "y")), ["y"]);
  });

  test("crossing DH-commits in v2: the higher hashed gx wins", () => {
    const [a, b] = makePair({ policy: V2_ONLY }, { policy: V2_ONLY });
    // Each side receives the other's query and answers with a commit; deliver the commits crossing.
    const qa = a.conv.startAke().toSend;
    const qb = b.conv.startAke().toSend;
    const ca = a.conv.receive(qb[0]!).toSend;
    const cb = b.conv.receive(qa[0]!).toSend;
    pumpBoth(a, b, ca, cb);
    assert.equal(a.conv.status().state, "encrypted");
    assert.equal(b.conv.status().state, "encrypted");
    assert.deepEqual(receivedTexts(say(a, b, "crossed")), ["crossed"]);
  });

  test("lost AKE messages are retransmitted as the spec's tables say", () => {
    const [a, b] = makePair();
    const query = a.conv.startAke().toSend;
    const commit = b.conv.receive(query[0]!).toSend; // b -> commit
    const key1 = a.conv.receive(commit[0]!).toSend; // a -> DH key
    // The commit arrives again (b resent it): a resends the very same D-H Key message.
    const key2 = a.conv.receive(commit[0]!).toSend;
    assert.deepEqual(key2, key1);
    const reveal1 = b.conv.receive(key1[0]!).toSend;
    // The D-H Key arrives again: b resends the same Reveal Signature message.
    const reveal2 = b.conv.receive(key2[0]!).toSend;
    assert.deepEqual(reveal2, reveal1);
    const sig = a.conv.receive(reveal1[0]!).toSend;
    assert.equal(a.conv.status().state, "encrypted");
    // The duplicate reveal-sig is ignored now that a is in AUTHSTATE_NONE.
    assert.deepEqual(a.conv.receive(reveal2[0]!).toSend, []);
    b.conv.receive(sig[0]!);
    assert.equal(b.conv.status().state, "encrypted");
  });

  test("re-running the AKE while encrypted reports still-secure", () => {
    const [a, b] = makePair();
    establish(a, b);
    a.events.length = 0;
    establish(a, b);
    assert.ok(a.events.some((e) => e.type === "still-secure"), JSON.stringify(types(a.events)));
    assert.deepEqual(receivedTexts(say(b, a, "after")), ["after"]);
  });
});

describe("ending a session", () => {
  for (const ender of ["alice", "bob"] as const) {
    test(`${ender} ends; the other side is finished and refuses to send`, () => {
      const [a, b] = makePair();
      establish(a, b);
      const [e, o] = ender === "alice" ? [a, b] : [b, a];
      const r = e.conv.end();
      assert.ok(r.events.some((x) => x.type === "gone-insecure" && x.reason === "we-ended"));
      assert.equal(e.conv.status().state, "plaintext");
      pump(e, o, r.toSend);
      assert.ok(o.events.some((x) => x.type === "gone-insecure" && x.reason === "peer-ended"));
      assert.equal(o.conv.status().state, "finished");
      const refused = o.conv.send("secret?");
      assert.equal(refused.outcome, "refused");
      assert.deepEqual(refused.toSend, []);
      assert.ok(refused.events.some((x) => x.type === "refused" && x.code === "finished"));
      // The finished side ends too and is back to plaintext.
      o.conv.end();
      assert.equal(o.conv.status().state, "plaintext");
      assert.equal(o.conv.send("plain now").outcome, "plaintext");
    });
  }

  test("refresh ends and runs a new AKE", () => {
    const [a, b] = makePair();
    establish(a, b);
    const ssid1 = a.conv.status().ssid;
    const r = a.conv.refresh();
    pump(a, b, r.toSend);
    assert.equal(a.conv.status().state, "encrypted");
    assert.equal(b.conv.status().state, "encrypted");
    assert.notDeepEqual(a.conv.status().ssid, ssid1);
    assert.deepEqual(receivedTexts(say(b, a, "fresh")), ["fresh"]);
  });
});

describe("extra symmetric key", () => {
  test("both sides derive the same key; the TLV carries use and use data", () => {
    const [a, b] = makePair();
    establish(a, b);
    say(a, b, "rotate once");
    say(b, a, "and back");
    const r = a.conv.extraSymmetricKey(0x01020304, new Uint8Array([9, 8, 7]));
    assert.equal(r.key.length, 32);
    const before = b.events.length;
    pump(a, b, r.toSend);
    const ev = b.events.slice(before).find((e) => e.type === "extra-symmetric-key");
    assert.ok(ev && ev.type === "extra-symmetric-key");
    assert.equal(ev.use, 0x01020304);
    assert.deepEqual([...ev.useData], [9, 8, 7]);
    assert.deepEqual(ev.key, r.key);
    assert.ok(!b.events.slice(before).some((e) => e.type === "received"));
  });

  test("refused without an encrypted v3 session", () => {
    const [a] = makePair();
    const r = a.conv.extraSymmetricKey(1, new Uint8Array());
    assert.equal(r.key.length, 0);
    assert.ok(r.events.some((e) => e.type === "refused"));
  });
});

describe("policies", () => {
  test("require-encryption: plaintext is queued behind a query and sent encrypted after the AKE", () => {
    const [a, b] = makePair({ policy: POLICY.ALWAYS }, {});
    const r1 = a.conv.send("first");
    assert.equal(r1.outcome, "queued");
    assert.equal(r1.toSend.length, 1);
    assert.ok(r1.toSend[0]!.startsWith("?OTRv23?"));
    assert.ok(!r1.toSend[0]!.includes("first"));
    const r2 = a.conv.send("second");
    assert.equal(r2.outcome, "queued");
    assert.deepEqual(r2.toSend, []);
    assert.ok(r2.events.some((e) => e.type === "queued" && e.count === 2));
    pump(a, b, r1.toSend);
    assert.equal(a.conv.status().state, "encrypted");
    assert.deepEqual(receivedTexts(b.events), ["first", "second"]);
    assert.ok(b.events.filter((e) => e.type === "received").every((e) => e.type === "received" && e.encrypted));
  });

  test("require-encryption: the queue is bounded and refuses the oldest", () => {
    const [a] = makePair({ policy: POLICY.ALWAYS }, {});
    let refused = 0;
    for (let i = 0; i < MAX_QUEUED_MESSAGES + 3; i++) {
      const r = a.conv.send(`m${i}`);
      assert.equal(r.outcome, "queued");
      for (const l of r.toSend) assert.ok(!l.includes(`m${i}`));
      refused += r.events.filter((e) => e.type === "refused").length;
    }
    assert.equal(refused, 3);
  });

  test("require-encryption: never plaintext when the peer has ended", () => {
    const [a, b] = makePair({ policy: POLICY.ALWAYS }, {});
    establish(a, b);
    pump(b, a, b.conv.end().toSend);
    const r = a.conv.send("after end");
    assert.equal(r.outcome, "refused");
    assert.deepEqual(r.toSend, []);
  });

  test("opportunistic: whitespace tag offered once, stripped on receipt, and starts the AKE", () => {
    const [a, b] = makePair({ policy: POLICY.OPPORTUNISTIC }, { policy: POLICY.OPPORTUNISTIC });
    const r = a.conv.send("hello there");
    assert.equal(r.outcome, "plaintext");
    assert.notEqual(r.toSend[0], "hello there");
    assert.ok(r.toSend[0]!.startsWith("hello there"));
    pump(a, b, r.toSend);
    assert.deepEqual(receivedTexts(b.events), ["hello there"]);
    assert.equal(a.conv.status().state, "encrypted");
    assert.equal(b.conv.status().state, "encrypted");
  });

  test("opportunistic: the tag is not repeated", () => {
    const [a] = makePair({ policy: POLICY.OPPORTUNISTIC }, {});
    assert.notEqual(a.conv.send("one").toSend[0], "one");
    assert.equal(a.conv.send("two").toSend[0], "two");
  });

  test("manual: a whitespace tag does not start the AKE", () => {
    const [a, b] = makePair({ policy: POLICY.OPPORTUNISTIC }, { policy: POLICY.MANUAL });
    const r = a.conv.send("tagged");
    const got = b.conv.receive(r.toSend[0]!);
    assert.deepEqual(got.toSend, []);
    assert.deepEqual(receivedTexts(got.events), ["tagged"]);
  });

  test("never: no OTR processing at all", () => {
    const [a] = makePair({ policy: POLICY.NEVER }, {});
    const r = a.conv.receive("?OTRv23?");
    assert.deepEqual(r.toSend, []);
    assert.deepEqual(a.conv.send("x").toSend, ["x"]);
  });

  test("error messages are reported; error-start-AKE answers with a query, nothing is resent", () => {
    const [a] = makePair({ policy: POLICY.OPPORTUNISTIC }, {});
    const r = a.conv.receive("?OTR Error: You sent something odd");
    assert.deepEqual(r.events, [{ type: "error-received", text: "You sent something odd" }]);
    assert.equal(r.toSend.length, 1);
    assert.ok(r.toSend[0]!.startsWith("?OTRv23?"));
    const [m] = makePair({ policy: POLICY.MANUAL }, {});
    assert.deepEqual(m.conv.receive("?OTR Error: x").toSend, []);
  });

  test("unencrypted message while encrypted is flagged", () => {
    const [a, b] = makePair();
    establish(a, b);
    const r = a.conv.receive("psst, in clear");
    assert.deepEqual(types(r.events), ["received", "unencrypted-received"]);
  });
});

describe("heartbeat", () => {
  test("after a quiet minute, receiving triggers an empty IGNORE_UNREADABLE message", () => {
    const [a, b] = makePair();
    establish(a, b);
    say(a, b, "one");
    b.env.clock += HEARTBEAT_INTERVAL_MS + 1;
    const r = a.conv.send("two");
    const got = b.conv.receive(r.toSend[0]!);
    assert.deepEqual(receivedTexts(got.events), ["two"]);
    assert.equal(got.toSend.length, 1, "heartbeat expected");
    const hb = a.conv.receive(got.toSend[0]!);
    assert.deepEqual(hb.events, []);
    // No second heartbeat right away.
    const r2 = a.conv.send("three");
    assert.equal(b.conv.receive(r2.toSend[0]!).toSend.length, 0);
  });
});

describe("instance tags", () => {
  test("one account talking to two instances of the same peer", () => {
    const a = makeSide({ name: "alice", key: 0, tag: 0x11111111 });
    const b1 = makeSide({ name: "bob1", key: 1, tag: 0x22222222 });
    const b2 = makeSide({ name: "bob2", key: 1, tag: 0x33333333 });
    // The network relays everything a sends to both of b's logins.
    const deliver = (lines: string[], from: Side): void => {
      let queue = lines.map((line) => ({ line, from }));
      for (let round = 0; queue.length > 0 && round < 100; round++) {
        const next: typeof queue = [];
        for (const { line, from: f } of queue) {
          const targets = f === a ? [b1, b2] : [a];
          for (const t of targets) {
            const r = t.conv.receive(line);
            t.events.push(...r.events);
            for (const l of r.toSend) next.push({ line: l, from: t });
          }
        }
        queue = next;
      }
    };
    deliver(a.conv.startAke().toSend, a);
    assert.equal(b1.conv.status().state, "encrypted", JSON.stringify(types(b1.events)));
    assert.equal(b2.conv.status().state, "encrypted", JSON.stringify(types(b2.events)));
    assert.ok(b1.events.some((e) => e.type === "for-other-instance"));
    assert.equal(a.events.filter((e) => e.type === "gone-secure").length, 2);
    // b2 spoke last during the AKE, or b1; whichever a heard from last is where a's messages go.
    b1.events.length = 0;
    b2.events.length = 0;
    deliver(b1.conv.send("from b1").toSend, b1);
    assert.equal(a.conv.status().theirInstance, 0x22222222);
    deliver(a.conv.send("to the recent one").toSend, a);
    assert.deepEqual(receivedTexts(b1.events), ["to the recent one"]);
    assert.deepEqual(receivedTexts(b2.events), []);
    assert.ok(b2.events.some((e) => e.type === "for-other-instance"));
    b1.events.length = 0;
    b2.events.length = 0;
    deliver(b2.conv.send("from b2").toSend, b2);
    assert.equal(a.conv.status().theirInstance, 0x33333333);
    deliver(a.conv.send("now to b2").toSend, a);
    assert.deepEqual(receivedTexts(b2.events), ["now to b2"]);
    assert.deepEqual(receivedTexts(b1.events), []);
  });

  test("messages carrying our own instance tag as sender are reported as reflected", () => {
    const [a, b] = makePair();
    const q = a.conv.startAke().toSend;
    const commit = b.conv.receive(q[0]!).toSend[0]!;
    // b's commit reflected back to b.
    const r = b.conv.receive(commit);
    assert.deepEqual(types(r.events), ["reflected"]);
    assert.deepEqual(r.toSend, []);
  });
});

describe("SMP through the engine", () => {
  for (const [same, question] of [
    [true, null],
    [true, "Where did we meet?"],
    [false, null],
  ] as const) {
    test(`secrets ${same ? "equal" : "different"}${question ? ", with a question" : ""}`, () => {
      const [a, b] = makePair({ maxFragmentSize: 150 }, { maxFragmentSize: 150 });
      establish(a, b);
      const enc = new TextEncoder();
      const start = a.conv.smpStart(enc.encode("shared secret"), question ?? undefined);
      pump(a, b, start.toSend);
      const ask = b.events.find((e) => e.type === "smp-ask");
      assert.ok(ask && ask.type === "smp-ask", JSON.stringify(types(b.events)));
      assert.equal(ask.question, question);
      const resp = b.conv.smpRespond(enc.encode(same ? "shared secret" : "other secret"));
      pump(b, a, resp.toSend);
      const want = same ? "smp-success" : "smp-failure";
      assert.ok(a.events.some((e) => e.type === want), JSON.stringify(types(a.events)));
      assert.ok(b.events.some((e) => e.type === want), JSON.stringify(types(b.events)));
      assert.deepEqual(receivedTexts(say(a, b, "still talking")), ["still talking"]);
    });
  }

  test("abort mid-way", () => {
    const [a, b] = makePair();
    establish(a, b);
    pump(a, b, a.conv.smpStart(new TextEncoder().encode("s")).toSend);
    const r = a.conv.smpAbort();
    assert.ok(r.events.some((e) => e.type === "smp-abort" && e.by === "us"));
    pump(a, b, r.toSend);
    assert.ok(b.events.some((e) => e.type === "smp-abort" && e.by === "peer"));
  });

  test("SMP before encryption is refused", () => {
    const [a] = makePair();
    assert.ok(a.conv.smpStart(new Uint8Array([1])).events.some((e) => e.type === "refused"));
  });
});

describe("line limits and odd policies", () => {
  test("with a small maxFragmentSize every line we produce fits, the query included", () => {
    const [a, b] = makePair({ maxFragmentSize: 60, policy: POLICY.ALWAYS }, { maxFragmentSize: 60 });
    const lines: string[] = [];
    const r = a.conv.send("queued until secure");
    lines.push(...r.toSend);
    pump(a, b, r.toSend, (line) => {
      lines.push(line);
      return line;
    });
    assert.equal(a.conv.status().state, "encrypted");
    assert.deepEqual(receivedTexts(b.events), ["queued until secure"]);
    for (const l of lines) assert.ok(l.length <= 60, `${l.length}: ${l.slice(0, 30)}`);
  });

  test("require-encryption without any version refuses instead of sending plaintext", () => {
    const [a] = makePair({ policy: { ...POLICY.NEVER, requireEncryption: true } }, {});
    const r = a.conv.send("nope");
    assert.equal(r.outcome, "refused");
    assert.deepEqual(r.toSend, []);
  });
});

describe("account options", () => {
  test("caller misuse throws: bad instance tag, unusable fragment size", () => {
    const base = makeSide({ name: "x" }).account;
    const o = { privateKey: base.privateKey, policy: POLICY.MANUAL };
    assert.throws(() => new OtrAccount({ ...o, instanceTag: 0xff }), RangeError);
    assert.throws(() => new OtrAccount({ ...o, instanceTag: 0x100, maxFragmentSize: 20 }), RangeError);
    assert.throws(() => new OtrAccount({ ...o, instanceTag: 0x100, maxFragmentSize: -1 }), RangeError);
    assert.equal(new OtrAccount({ ...o, instanceTag: 0x100, maxFragmentSize: MIN_FRAGMENT_SIZE }).maxFragmentSize, MIN_FRAGMENT_SIZE);
    const t = generateInstanceTag(base.env);
    assert.ok(t >= 0x100 && t <= 0xffffffff);
  });
});

describe("an account whose key comes later", () => {
  function keyless(policy = POLICY.OPPORTUNISTIC): Side {
    const env = new TestEnv("keyless");
    const account = new OtrAccount({ instanceTag: 0x33333333, policy, env, maxFragmentSize: 0 });
    return { env, account, conv: new OtrConversation(account, "peer"), events: [] };
  }

  test("plaintext and the whitespace offer need no key; an AKE message without it is an event and changes nothing; with it set the AKE completes", () => {
    const a = keyless();
    const b = makeSide({ name: "bob", key: 1, tag: 0x22222222, policy: POLICY.MANUAL });
    assert.equal(a.account.hasPrivateKey, false);
    const first = a.conv.send("hello");
    assert.equal(first.outcome, "plaintext");
    assert.ok(first.toSend[0]!.startsWith("hello \t  \t\t\t\t"));
    assert.deepEqual(receivedTexts(b.conv.receive(first.toSend[0]!).events), ["hello"]);
    assert.equal(mayNeedPrivateKey("hello"), false);
    assert.equal(mayNeedPrivateKey(first.toSend[0]!), true);

    const ask = b.conv.startAke().toSend;
    assert.equal(mayNeedPrivateKey(ask[0]!), true);
    // Answering a query with a D-H Commit signs nothing yet; the D-H Key that comes back needs the signature.
    const commit = a.conv.receive(ask[0]!).toSend;
    assert.equal(commit.length, 1);
    const dhKey = b.conv.receive(commit[0]!).toSend;
    const mid = snapshot(a.conv);
    const r = a.conv.receive(dhKey[0]!);
    assert.deepEqual(r.events, [{ type: "ake-failed", code: CODE.NO_PRIVATE_KEY }]);
    assert.deepEqual(r.toSend, []);
    assert.equal(snapshot(a.conv), mid, "a keyless account's AKE stays where it was");
    assert.throws(() => a.account.fingerprintHuman, /no private key/);
    assert.deepEqual(a.conv.smpStart(new Uint8Array([1])).events, [{ type: "refused", code: CODE.SMP_NOT_READY }]);

    a.account.setPrivateKey(testKey(0));
    a.account.setPrivateKey(testKey(0)); // the same key again is harmless
    assert.throws(() => a.account.setPrivateKey(testKey(2)), RangeError);
    // The same D-H Key, once the key is there, carries the AKE on.
    const reveal = a.conv.receive(dhKey[0]!);
    assert.equal(reveal.toSend.length, 1);
    pump(a, b, reveal.toSend);
    assert.equal(a.conv.status().state, "encrypted");
    assert.equal(b.conv.status().theirFingerprint, a.account.fingerprintHuman);
    assert.deepEqual(receivedTexts(say(a, b, "private now")), ["private now"]);
  });

  test("a session resumed on a keyless account talks, but SMP waits for the key", () => {
    const [a, b] = makePair();
    establish(a, b);
    const saved = a.conv.exportState()!;
    const c = keyless(POLICY.MANUAL);
    const resumed = new OtrAccount({ instanceTag: 0x11111111, policy: POLICY.MANUAL, env: c.env, maxFragmentSize: 0 });
    const conv = new OtrConversation(resumed, "peer");
    assert.equal(conv.importState(saved).ok, true);
    const side: Side = { env: c.env, account: resumed, conv, events: [] };
    assert.deepEqual(receivedTexts(say(b, side, "still here")), ["still here"]);
    assert.deepEqual(conv.smpStart(new Uint8Array([1])).events, [{ type: "refused", code: CODE.NO_PRIVATE_KEY }]);
    resumed.setPrivateKey(testKey(0));
    assert.equal(conv.smpStart(new Uint8Array([1])).toSend.length, 1);
  });
});

describe("many peer instances", () => {
  test("a peer that comes back under ever new instance tags can always talk", () => {
    const a = makeSide({ name: "alice", key: 0, tag: 0x11111111 });
    for (let i = 0; i < 12; i++) {
      const b = makeSide({ name: `bob${i}`, key: 1, tag: 0x40000000 + i });
      establish(b, a);
      assert.equal(a.conv.status().theirInstance, 0x40000000 + i);
      assert.deepEqual(receivedTexts(say(a, b, `hi ${i}`)), [`hi ${i}`]);
    }
  });
});

describe("lost sessions", () => {
  test("after we lose our state (restart), the peer's error-start-AKE policy brings the session back", () => {
    const [a, b] = makePair({}, { policy: POLICY.OPPORTUNISTIC });
    establish(a, b);
    // a restarts: same account and instance tag, no conversation state.
    const a2 = { ...a, conv: new OtrConversation(a.account, "peer"), events: [] as OtrEvent[] };
    const r = b.conv.send("are you there?");
    assert.equal(r.outcome, "encrypted");
    const got = a2.conv.receive(r.toSend[0]!);
    assert.ok(got.events.some((e) => e.type === "unreadable" && e.code === "not-encrypted"));
    assert.equal(got.toSend.length, 1);
    assert.ok(got.toSend[0]!.startsWith("?OTR Error:"));
    pump(a2, b, got.toSend);
    assert.equal(a2.conv.status().state, "encrypted");
    assert.deepEqual(receivedTexts(say(b, a2, "welcome back")), ["welcome back"]);
  });
});

describe("queue expiry", () => {
  test("queued plaintext that waited too long is refused, never sent late", () => {
    const [a, b] = makePair({ policy: POLICY.ALWAYS }, {});
    const q = a.conv.send("stale").toSend;
    a.env.clock += QUEUE_TIMEOUT_MS + 1;
    const p = a.conv.poll();
    assert.deepEqual(p.events, [{ type: "refused", code: "queue-expired" }]);
    a.conv.send("fresh");
    pump(a, b, q);
    assert.deepEqual(receivedTexts(b.events), ["fresh"]);
  });
});
