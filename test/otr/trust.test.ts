// Trust model table tests: first use with and without trust on first use, nick changes keeping trust with
// the key, key changes of a verified contact, verify and distrust, and isolation between users/networks.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  assessFingerprint, distrustFingerprint, normalizeFingerprint, verifyFingerprint, TOFU_VERIFIED_BY,
  TrustUsageError, type TrustEvent, type TrustRecord, type TrustState,
} from "../../src/otr/trust.js";
import type { FingerprintRecord } from "../../src/store/types.js";

const U = "@alice:example.org";
const N = "libera";
const FP1 = "0123456789abcdef0123456789abcdef01234567";
const FP2 = "fedcba9876543210fedcba9876543210fedcba98";
const FP3 = "00000000111111112222222233333333aaaaaaaa";
const T0 = 1_000, NOW = 5_000;

function rec(peerNick: string, fingerprint: string, verifiedBy: "smp" | "manual" | null, more: Partial<TrustRecord> = {}): TrustRecord {
  return {
    userId: U, networkId: N, peerNick, fingerprint, trust: verifiedBy ? "verified" : "unverified", verifiedBy,
    firstSeen: T0, lastSeen: T0, ...more,
  };
}

interface Row {
  name: string;
  records: TrustRecord[];
  nick: string;
  fp: string;
  tofu: boolean;
  state: TrustState;
  put: Pick<TrustRecord, "peerNick" | "fingerprint" | "trust" | "verifiedBy" | "firstSeen" | "lastSeen">[];
  events: TrustEvent[];
}

const rows: Row[] = [
  {
    name: "first use without TOFU: unknown, recorded unverified",
    records: [], nick: "bob", fp: FP1, tofu: false, state: "unknown",
    put: [{ peerNick: "bob", fingerprint: FP1, trust: "unverified", verifiedBy: null, firstSeen: NOW, lastSeen: NOW }],
    events: [{ type: "first-seen", peerNick: "bob", fingerprint: FP1, trustedOnFirstUse: false }],
  },
  {
    name: "first use with TOFU: verified on first use",
    records: [], nick: "bob", fp: FP1, tofu: true, state: "verified",
    put: [{ peerNick: "bob", fingerprint: FP1, trust: "verified", verifiedBy: TOFU_VERIFIED_BY, firstSeen: NOW, lastSeen: NOW }],
    events: [{ type: "first-seen", peerNick: "bob", fingerprint: FP1, trustedOnFirstUse: true }],
  },
  {
    name: "TOFU does not apply to a contact that already has a key on record",
    records: [rec("bob", FP1, null)], nick: "bob", fp: FP2, tofu: true, state: "unknown",
    put: [{ peerNick: "bob", fingerprint: FP2, trust: "unverified", verifiedBy: null, firstSeen: NOW, lastSeen: NOW }],
    events: [{ type: "first-seen", peerNick: "bob", fingerprint: FP2, trustedOnFirstUse: false }],
  },
  {
    name: "seen again, unverified: unverified, lastSeen moves, firstSeen stays",
    records: [rec("bob", FP1, null)], nick: "bob", fp: FP1, tofu: false, state: "unverified",
    put: [{ peerNick: "bob", fingerprint: FP1, trust: "unverified", verifiedBy: null, firstSeen: T0, lastSeen: NOW }],
    events: [],
  },
  {
    name: "seen again, verified by SMP: verified, quiet",
    records: [rec("bob", FP1, "smp")], nick: "bob", fp: FP1, tofu: false, state: "verified",
    put: [{ peerNick: "bob", fingerprint: FP1, trust: "verified", verifiedBy: "smp", firstSeen: T0, lastSeen: NOW }],
    events: [],
  },
  {
    name: "nick change keeps trust with the key",
    records: [rec("bob", FP1, "smp")], nick: "robert", fp: FP1, tofu: false, state: "verified",
    put: [{ peerNick: "robert", fingerprint: FP1, trust: "verified", verifiedBy: "smp", firstSeen: NOW, lastSeen: NOW }],
    events: [{ type: "nick-changed-same-key", peerNick: "robert", fingerprint: FP1, previousNicks: ["bob"], state: "verified" }],
  },
  {
    name: "nick change of an unverified key stays unverified (and is not a first sighting)",
    records: [rec("bob", FP1, null)], nick: "robert", fp: FP1, tofu: true, state: "unverified",
    put: [{ peerNick: "robert", fingerprint: FP1, trust: "unverified", verifiedBy: null, firstSeen: NOW, lastSeen: NOW }],
    events: [{ type: "nick-changed-same-key", peerNick: "robert", fingerprint: FP1, previousNicks: ["bob"], state: "unverified" }],
  },
  {
    name: "key change of a verified contact: loud, the new key is not trusted",
    records: [rec("bob", FP1, "manual")], nick: "bob", fp: FP2, tofu: false, state: "unknown",
    put: [{ peerNick: "bob", fingerprint: FP2, trust: "unverified", verifiedBy: null, firstSeen: NOW, lastSeen: NOW }],
    events: [
      { type: "key-changed", peerNick: "bob", fingerprint: FP2, verifiedFingerprints: [FP1] },
      { type: "first-seen", peerNick: "bob", fingerprint: FP2, trustedOnFirstUse: false },
    ],
  },
  {
    name: "key change after TOFU: loud, and TOFU does not trust the replacement",
    records: [rec("bob", FP1, TOFU_VERIFIED_BY)], nick: "bob", fp: FP2, tofu: true, state: "unknown",
    put: [{ peerNick: "bob", fingerprint: FP2, trust: "unverified", verifiedBy: null, firstSeen: NOW, lastSeen: NOW }],
    events: [
      { type: "key-changed", peerNick: "bob", fingerprint: FP2, verifiedFingerprints: [FP1] },
      { type: "first-seen", peerNick: "bob", fingerprint: FP2, trustedOnFirstUse: false },
    ],
  },
  {
    name: "key change to a key seen before but never verified: still loud, every time",
    records: [rec("bob", FP1, "smp"), rec("bob", FP2, null)], nick: "bob", fp: FP2, tofu: false, state: "unverified",
    put: [{ peerNick: "bob", fingerprint: FP2, trust: "unverified", verifiedBy: null, firstSeen: T0, lastSeen: NOW }],
    events: [{ type: "key-changed", peerNick: "bob", fingerprint: FP2, verifiedFingerprints: [FP1] }],
  },
  {
    name: "a contact with two verified keys may use either, quietly",
    records: [rec("bob", FP1, "smp"), rec("bob", FP2, "manual")], nick: "bob", fp: FP2, tofu: false, state: "verified",
    put: [{ peerNick: "bob", fingerprint: FP2, trust: "verified", verifiedBy: "manual", firstSeen: T0, lastSeen: NOW }],
    events: [],
  },
  {
    name: "a nick taking over a key verified under another nick: verified, the nick's old key is not 'changed'",
    records: [rec("bob", FP1, "smp"), rec("carol", FP2, "smp")], nick: "bob", fp: FP2, tofu: false, state: "verified",
    put: [{ peerNick: "bob", fingerprint: FP2, trust: "verified", verifiedBy: "smp", firstSeen: NOW, lastSeen: NOW }],
    events: [{ type: "nick-changed-same-key", peerNick: "bob", fingerprint: FP2, previousNicks: ["carol"], state: "verified" }],
  },
  {
    name: "an unverified contact switching keys is only a new key",
    records: [rec("bob", FP1, null)], nick: "bob", fp: FP2, tofu: false, state: "unknown",
    put: [{ peerNick: "bob", fingerprint: FP2, trust: "unverified", verifiedBy: null, firstSeen: NOW, lastSeen: NOW }],
    events: [{ type: "first-seen", peerNick: "bob", fingerprint: FP2, trustedOnFirstUse: false }],
  },
  {
    name: "records of other users and networks do not count",
    records: [rec("bob", FP1, "smp", { networkId: "oftc" }), rec("bob", FP1, "smp", { userId: "@eve:example.org" })],
    nick: "bob", fp: FP1, tofu: false, state: "unknown",
    put: [{ peerNick: "bob", fingerprint: FP1, trust: "unverified", verifiedBy: null, firstSeen: NOW, lastSeen: NOW }],
    events: [{ type: "first-seen", peerNick: "bob", fingerprint: FP1, trustedOnFirstUse: false }],
  },
];

describe("assessFingerprint", () => {
  for (const row of rows) {
    test(row.name, () => {
      const out = assessFingerprint(row.records, { userId: U, networkId: N, peerNick: row.nick, fingerprint: row.fp, now: NOW }, { trustOnFirstUse: row.tofu });
      assert.equal(out.state, row.state);
      assert.deepEqual(out.events, row.events);
      assert.deepEqual(out.put, row.put.map((p) => ({ userId: U, networkId: N, ...p })));
    });
  }

  test("the fingerprint may be given in libotr's human form", () => {
    const human = "01234567 89ABCDEF 01234567 89ABCDEF 01234567";
    const out = assessFingerprint([rec("bob", FP1, "smp")], { userId: U, networkId: N, peerNick: "bob", fingerprint: human, now: NOW }, { trustOnFirstUse: false });
    assert.equal(out.state, "verified");
    assert.equal(out.put[0]!.fingerprint, FP1);
  });

  test("records are the store's FingerprintRecord shape", () => {
    const out = assessFingerprint([], { userId: U, networkId: N, peerNick: "bob", fingerprint: FP1, now: NOW }, { trustOnFirstUse: true });
    const asStored: FingerprintRecord[] = out.put;
    assert.equal(asStored.length, 1);
  });
});

describe("verify and distrust", () => {
  test("verify by SMP marks the key verified under every nick and adds the current nick", () => {
    const records = [rec("bob", FP1, null), rec("robert", FP1, null), rec("bob", FP2, null)];
    const put = verifyFingerprint(records, { userId: U, networkId: N, peerNick: "bobby", fingerprint: FP1, now: NOW }, "smp");
    assert.deepEqual(put, [
      rec("bob", FP1, "smp"),
      rec("robert", FP1, "smp"),
      rec("bobby", FP1, "smp", { firstSeen: NOW, lastSeen: NOW }),
    ]);
  });

  test("manual verification of a known nick changes only that key's records", () => {
    const put = verifyFingerprint([rec("bob", FP1, null), rec("bob", FP2, null)], { userId: U, networkId: N, peerNick: "bob", fingerprint: FP2.toUpperCase(), now: NOW }, "manual");
    assert.deepEqual(put, [rec("bob", FP2, "manual")]);
  });

  test("verified then distrusted: the key is unverified everywhere, and a later key change is no longer 'changed'", () => {
    let records = [rec("bob", FP1, "smp"), rec("robert", FP1, "smp"), rec("bob", FP3, "manual")];
    const put = distrustFingerprint(records, { userId: U, networkId: N, fingerprint: FP1 });
    assert.deepEqual(put, [rec("bob", FP1, null), rec("robert", FP1, null)]);
    records = [...put, rec("bob", FP3, "manual")];
    const again = assessFingerprint(records, { userId: U, networkId: N, peerNick: "robert", fingerprint: FP1, now: NOW }, { trustOnFirstUse: true });
    assert.equal(again.state, "unverified");
    assert.deepEqual(again.events, []);
    // bob still has FP3 verified, so FP1 from bob is a change; robert has no verified key any more.
    const fromBob = assessFingerprint(records, { userId: U, networkId: N, peerNick: "bob", fingerprint: FP1, now: NOW }, { trustOnFirstUse: false });
    assert.deepEqual(fromBob.events, [{ type: "key-changed", peerNick: "bob", fingerprint: FP1, verifiedFingerprints: [FP3] }]);
  });

  test("distrusting an unknown or already unverified key changes nothing", () => {
    assert.deepEqual(distrustFingerprint([rec("bob", FP1, null)], { userId: U, networkId: N, fingerprint: FP1 }), []);
    assert.deepEqual(distrustFingerprint([], { userId: U, networkId: N, fingerprint: FP2 }), []);
  });
});

describe("input checks", () => {
  test("normalizeFingerprint accepts libotr's and hex forms, refuses anything else", () => {
    assert.equal(normalizeFingerprint("01234567 89ABCDEF 01234567 89ABCDEF 01234567"), FP1);
    assert.equal(normalizeFingerprint(FP1.toUpperCase()), FP1);
    for (const bad of ["", FP1.slice(1), FP1 + "0", FP1.replace("a", "g")]) {
      assert.throws(() => normalizeFingerprint(bad), (e: unknown) => e instanceof TrustUsageError && e.code === "bad-fingerprint");
    }
  });

  test("an empty nick is caller misuse", () => {
    assert.throws(() => assessFingerprint([], { userId: U, networkId: N, peerNick: "", fingerprint: FP1, now: NOW }, { trustOnFirstUse: false }), TrustUsageError);
  });
});
