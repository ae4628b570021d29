// Ghost user ids for IRC nicks. Matrix localparts allow only [a-z0-9._=/-] (spec "User Identifiers"), IRC nicks
// allow much more, so nicks are escaped: every byte of the UTF-8 form outside [a-z0-9._/-] becomes `=xx` (lowercase
// hex), and `=` itself is escaped, so the mapping is reversible. The nick must already be case-folded by the
// caller with the network's CASEMAPPING: one IRC user is one ghost whatever the capitalisation used.

const SAFE = /^[a-z0-9._\/-]$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function escapeLocalpart(s: string): string {
  let out = "";
  for (const ch of s) {
    if (SAFE.test(ch)) out += ch;
    else for (const b of encoder.encode(ch)) out += "=" + b.toString(16).padStart(2, "0");
  }
  return out;
}

/** Inverse of escapeLocalpart; null when the input is not something escapeLocalpart produces. */
export function unescapeLocalpart(s: string): string | null {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === "=") {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (SAFE.test(ch)) {
      bytes.push(ch.charCodeAt(0));
    } else {
      return null;
    }
  }
  try {
    const out = decoder.decode(new Uint8Array(bytes));
    return escapeLocalpart(out) === s ? out : null;
  } catch {
    return null;
  }
}

export class GhostNaming {
  constructor(
    private readonly template: string,
    private readonly domain: string,
  ) {
    if (!template.includes("{network}") || !template.includes("{nick}")) {
      throw Object.assign(new Error("ghost localpart template needs {network} and {nick}"), { code: "bad-template" });
    }
  }

  localpart(networkId: string, foldedNick: string): string {
    return this.template.replace("{network}", escapeLocalpart(networkId)).replace("{nick}", escapeLocalpart(foldedNick));
  }

  userId(networkId: string, foldedNick: string): string {
    return `@${this.localpart(networkId, foldedNick)}:${this.domain}`;
  }

  /** Which (network, folded nick) a ghost user id stands for, among the configured networks. */
  parse(userId: string, networkIds: readonly string[]): { networkId: string; foldedNick: string } | null {
    const m = /^@([^:]+):(.+)$/.exec(userId);
    if (!m || m[2] !== this.domain) return null;
    const local = m[1]!;
    for (const networkId of networkIds) {
      const [before, after] = this.template.replace("{network}", escapeLocalpart(networkId)).split("{nick}") as [string, string];
      if (local.length <= before.length + after.length || !local.startsWith(before) || !local.endsWith(after)) continue;
      const nick = unescapeLocalpart(local.slice(before.length, local.length - after.length));
      if (nick) return { networkId, foldedNick: nick };
    }
    return null;
  }

  /** The regex for the registration's exclusive user namespace. */
  namespaceRegex(): string {
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&");
    const parts = this.template.split(/\{network\}|\{nick\}/).map(esc);
    return `@${parts.join(".+")}:${esc(this.domain)}`;
  }
}
