// Networks that cap connections per IP are served from several local addresses. A user keeps the same address
// across reconnects and restarts (a hash of their Matrix id, not a rotating choice), so their host on IRC is stable
// and a ban of one address affects the same users every time.
import { createHash } from "node:crypto";

export function sourceAddressFor(userId: string, addresses: readonly string[]): string | undefined {
  if (addresses.length === 0) return undefined;
  const h = createHash("sha256").update(userId, "utf8").digest();
  return addresses[h.readUInt32BE(0) % addresses.length];
}
