// Key derivation. AKE: spec v3 "Authenticated Key Exchange" (s -> ssid, c, c', m1, m2, m1', m2' via
// h2(b) = SHA-256(b || MPI(s))). Data messages: spec "Computing AES keys and MAC keys" (h1 = SHA-1, sendbyte /
// recvbyte by comparing public keys) and "Extra symmetric key" (h2(0xFF)). The secret is hashed in its MPI form,
// so a shared secret with leading zero bytes must stay minimal (the bug python-potr and otr.js had).
import { encodeMpi } from "./bigint.js";
import { sha1, sha256 } from "./primitives.js";

/** SHA-256(b || MPI(s)). */
export function h2(b: number, s: bigint): Uint8Array {
  return sha256(new Uint8Array([b]), encodeMpi(s));
}

/** SHA-1(b || MPI(s)). */
export function h1(b: number, s: bigint): Uint8Array {
  return sha1(new Uint8Array([b]), encodeMpi(s));
}

export interface AkeKeys {
  ssid: Uint8Array; // 8 bytes
  c: Uint8Array; // 16 bytes, AES key for Bob's reveal-signature encryption
  cPrime: Uint8Array; // 16 bytes, Alice's signature message
  m1: Uint8Array; // 32 bytes
  m2: Uint8Array;
  m1Prime: Uint8Array;
  m2Prime: Uint8Array;
}

export function deriveAkeKeys(s: bigint): AkeKeys {
  const secbytes = encodeMpi(s);
  const h = (b: number) => sha256(new Uint8Array([b]), secbytes);
  const h01 = h(0x01);
  return {
    ssid: h(0x00).slice(0, 8),
    c: h01.slice(0, 16),
    cPrime: h01.slice(16, 32),
    m1: h(0x02),
    m2: h(0x03),
    m1Prime: h(0x04),
    m2Prime: h(0x05),
  };
}

export interface DataKeys {
  sendAes: Uint8Array; // 16 bytes
  sendMac: Uint8Array; // 20 bytes = SHA-1(sendAes)
  recvAes: Uint8Array;
  recvMac: Uint8Array;
  /** h2(0xFF): the extra symmetric key (TLV 8) of this key pair. */
  extraSymmetricKey: Uint8Array; // 32 bytes
}

/**
 * Keys for one (our key, their key) pair. s = their^our mod p; ourPublic/theirPublic decide the send/receive
 * bytes: if ours is numerically greater we send with 0x01 and receive with 0x02, otherwise the reverse.
 */
export function deriveDataKeys(ourPublic: bigint, theirPublic: bigint, s: bigint): DataKeys {
  const secbytes = encodeMpi(s);
  const [sendbyte, recvbyte] = ourPublic > theirPublic ? [0x01, 0x02] : [0x02, 0x01];
  const sendAes = sha1(new Uint8Array([sendbyte]), secbytes).slice(0, 16);
  const recvAes = sha1(new Uint8Array([recvbyte]), secbytes).slice(0, 16);
  return {
    sendAes,
    sendMac: sha1(sendAes),
    recvAes,
    recvMac: sha1(recvAes),
    extraSymmetricKey: sha256(new Uint8Array([0xff]), secbytes),
  };
}

/** The extra symmetric key alone (SHA-256(0xFF || MPI(s))). */
export function extraSymmetricKey(s: bigint): Uint8Array {
  return h2(0xff, s);
}
