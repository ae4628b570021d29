// Who may use the bridge. Keys of `permissions` are "*", a server name or a full user id; the most specific
// key that matches decides, so an operator can open the bridge to a server and still demote or promote one user.

import type { Config, Permission } from "./definition.js";

/** The user's level, or null when no key matches (the default: nobody may use the bridge). */
export function permissionFor(config: Pick<Config, "permissions">, userId: string): Permission | null {
  // Own keys only: a user id like "constructor" must not find Object.prototype's.
  const lookup = (k: string): Permission | null => (Object.hasOwn(config.permissions, k) ? config.permissions[k]! : null);
  const own = lookup(userId);
  if (own) return own;
  // A user id's server name is everything after the first colon (it may carry a port).
  const colon = userId.indexOf(":");
  if (userId.startsWith("@") && colon > 1) {
    const server = lookup(userId.slice(colon + 1));
    if (server) return server;
  }
  return lookup("*");
}
