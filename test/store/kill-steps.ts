// The burst of writes of the SIGKILL test, shared by the child (which writes it) and the parent (which checks
// that what survived is exactly a prefix of it). Step i of generation g is deterministic.
import { createHash } from "node:crypto";
import type { FingerprintRecord, Store } from "../../src/store/types.js";

export const NET = "killnet";

export function userOf(g: number): string {
  return `@gen${g}:example.org`;
}

export function keyUserOf(g: number, i: number): string {
  return `@gen${g}-k${i}:example.org`;
}

export function keyBytes(g: number, i: number): Uint8Array {
  const h = createHash("sha512").update(`private-key-${g}-${i}`).digest();
  return new Uint8Array(Buffer.concat([h, h, h]).subarray(0, 150));
}

export function fingerprintOf(g: number, i: number): FingerprintRecord {
  return {
    userId: userOf(g), networkId: NET, peerNick: `peer${i}`,
    fingerprint: createHash("sha1").update(`fp-${g}-${i}`).digest("hex"),
    trust: i % 2 ? "verified" : "unverified", verifiedBy: i % 2 ? "smp" : null,
    firstSeen: 1_000_000 + i, lastSeen: 2_000_000 + i,
  };
}

export function deviceOf(i: number): string {
  return `DEVICE${i}`;
}

/** ~20 KB, deterministic per step: a crypto state spans many pages, so a kill can land inside its write. */
export function cryptoStateOf(g: number, i: number): Uint8Array {
  return new Uint8Array(Buffer.concat(Array.from({ length: 320 }, (_, j) => createHash("sha512").update(`crypto-state-${g}-${i}-${j}`).digest())));
}

export function roomOf(g: number, i: number): string {
  return `!room-${g}-${i}:example.org`;
}

export async function writeStep(store: Store, g: number, i: number): Promise<void> {
  switch (i % 4) {
    case 0:
      await store.putOtrPrivateKeyIfAbsent(keyUserOf(g, i), NET, keyBytes(g, i));
      return;
    case 1:
      await store.putFingerprint(fingerprintOf(g, i));
      return;
    case 3:
      await store.putCryptoState(userOf(g), deviceOf(i), cryptoStateOf(g, i));
      return;
    default:
      await store.putDmRoom(userOf(g), NET, `nick${i}`, roomOf(g, i));
  }
}

/** Whether step i is present, after checking that whatever is there is exactly what step i wrote. */
export async function stepPresent(store: Store, g: number, i: number): Promise<boolean> {
  switch (i % 4) {
    case 0: {
      const k = await store.getOtrPrivateKey(keyUserOf(g, i), NET);
      if (k && !Buffer.from(k).equals(Buffer.from(keyBytes(g, i)))) throw new Error(`step ${i}: wrong key bytes`);
      return k !== null;
    }
    case 1: {
      const all = await store.listFingerprints(userOf(g), NET);
      const r = all.find((x) => x.peerNick === `peer${i}`);
      if (r && JSON.stringify(r) !== JSON.stringify(fingerprintOf(g, i))) throw new Error(`step ${i}: wrong fingerprint record`);
      return r !== undefined;
    }
    case 3: {
      const state = await store.getCryptoState(userOf(g), deviceOf(i));
      if (state && !Buffer.from(state).equals(Buffer.from(cryptoStateOf(g, i)))) throw new Error(`step ${i}: wrong crypto state bytes`);
      return state !== null;
    }
    default: {
      const room = await store.getDmRoom(userOf(g), NET, `nick${i}`);
      if (room === null) return false;
      if (room !== roomOf(g, i)) throw new Error(`step ${i}: wrong room`);
      const back = await store.findDmByRoom(room);
      if (!back || back.foldedNick !== `nick${i}`) throw new Error(`step ${i}: reverse lookup broken`);
      return true;
    }
  }
}

/** Highest step index found in the listable tables (fingerprints, DM rooms, crypto devices), -1 if none. */
export async function highestListed(store: Store, g: number): Promise<number> {
  let max = -1;
  for (const r of await store.listFingerprints(userOf(g), NET)) max = Math.max(max, Number(r.peerNick.slice(4)));
  for (const r of await store.listDmRooms(userOf(g), NET)) max = Math.max(max, Number(r.foldedNick.slice(4)));
  for (const d of await store.listCryptoDevices()) if (d.ownerUserId === userOf(g)) max = Math.max(max, Number(d.deviceId.slice(6)));
  return max;
}
