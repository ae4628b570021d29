// Management-room commands (no prefix in the management room). Parsing is separate from execution so every input,
// including garbage, maps to exactly one reply.

export type Command =
  | { name: "help" }
  | { name: "connect"; network: string }
  | { name: "disconnect"; network: string }
  | { name: "nick"; network: string; nick: string }
  | { name: "msg"; network: string; nick: string; text: string | null }
  | { name: "networks" }
  | { name: "otr"; network: string; nick: string; args: string }
  | { name: "join"; network: string; channel: string; key?: string }
  | { name: "part"; network: string; channel: string }
  | { name: "link"; network: string; channel: string; roomId: string }
  | { name: "unlink"; network: string; channel: string }
  | { name: "login"; network: string; password: string }
  | { name: "invalid"; reply: string };

export const HELP_TEXT = [
  "Commands (type them here, without a prefix):",
  "  help                          this list",
  "  networks                      the IRC networks this bridge knows",
  "  connect <network>             connect to an IRC network",
  "  disconnect <network>          disconnect from it",
  "  nick <network> <nick>         change your IRC nick there",
  "  msg <network> <nick> [text]   open (or reuse) a direct chat with an IRC user, optionally sending text",
  "  join <network> <#channel> [key]   join an IRC channel: you are invited to its room",
  "  part <network> <#channel>     leave it (your IRC connection parts, you leave the room)",
  "  link <network> <#channel> <!room:server>   (admins) bridge an existing room to a channel; unlink <network> <#channel> undoes it",
  "  login <network> <password>   store your services (NickServ/SASL) password, sealed; this message is redacted",
  "  otr <network> <nick> <command>   OTR in your direct chat with that user, as `!otr <command>` there",
  "                                  (start, end, refresh, status, fingerprint, trust, distrust, smp, ask,",
  "                                  smp-abort, policy, help)",
].join("\n");

const USAGE: Record<string, string> = {
  connect: "Usage: connect <network>",
  disconnect: "Usage: disconnect <network>",
  nick: "Usage: nick <network> <nick>",
  msg: "Usage: msg <network> <nick> [text]",
  join: "Usage: join <network> <#channel> [key]",
  part: "Usage: part <network> <#channel>",
  link: "Usage: link <network> <#channel> <!room:server> (admins)",
  unlink: "Usage: unlink <network> <#channel> (admins)",
  login: "Usage: login <network> <password>",
  otr: "Usage: otr <network> <nick> <start|end|refresh|status|fingerprint|trust|distrust|smp|ask|smp-abort|policy|help>",
};

export function parseCommand(body: string): Command {
  const trimmed = body.trim();
  const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(trimmed);
  if (!m) return { name: "invalid", reply: "Type `help` for the list of commands." };
  const word = m[1]!.toLowerCase();
  const rest = (m[2] ?? "").trim();
  const args = rest ? rest.split(/\s+/) : [];
  switch (word) {
    case "help":
      return { name: "help" };
    case "networks":
      return { name: "networks" };
    case "connect":
    case "disconnect":
      return args.length === 1 ? { name: word, network: args[0]! } : { name: "invalid", reply: USAGE[word]! };
    case "nick":
      return args.length === 2 ? { name: "nick", network: args[0]!, nick: args[1]! } : { name: "invalid", reply: USAGE["nick"]! };
    case "msg": {
      const mm = /^(\S+)\s+(\S+)(?:\s([\s\S]*))?$/.exec(rest);
      if (!mm) return { name: "invalid", reply: USAGE["msg"]! };
      const text = mm[3] && mm[3].trim() !== "" ? mm[3] : null;
      return { name: "msg", network: mm[1]!, nick: mm[2]!, text };
    }
    case "join":
      if (args.length === 3 && !isChannelKey(args[2]!)) return { name: "invalid", reply: `${USAGE["join"]!} (a channel key has no commas or control characters and is at most 100 bytes)` };
      if ((args.length === 2 || args.length === 3) && isChannel(args[1]!)) {
        return args[2] ? { name: "join", network: args[0]!, channel: args[1]!, key: args[2] } : { name: "join", network: args[0]!, channel: args[1]! };
      }
      return { name: "invalid", reply: USAGE["join"]! };
    case "part":
      return args.length === 2 && isChannel(args[1]!) ? { name: "part", network: args[0]!, channel: args[1]! } : { name: "invalid", reply: USAGE["part"]! };
    case "link":
      return args.length === 3 && isChannel(args[1]!) && /^![^:\s]+:\S+$/.test(args[2]!)
        ? { name: "link", network: args[0]!, channel: args[1]!, roomId: args[2]! } : { name: "invalid", reply: USAGE["link"]! };
    case "unlink":
      return args.length === 2 && isChannel(args[1]!) ? { name: "unlink", network: args[0]!, channel: args[1]! } : { name: "invalid", reply: USAGE["unlink"]! };
    case "login": {
      // The password is everything after the network, spaces included (NickServ passwords may have them).
      const mm = /^(\S+)\s+(\S[\s\S]*)$/.exec(rest);
      return mm ? { name: "login", network: mm[1]!, password: mm[2]!.trim() } : { name: "invalid", reply: USAGE["login"]! };
    }
    case "otr": {
      const mm = /^(\S+)\s+(\S+)\s+(\S[\s\S]*)$/.exec(rest);
      return mm ? { name: "otr", network: mm[1]!, nick: mm[2]!, args: mm[3]! } : { name: "invalid", reply: USAGE["otr"]! };
    }
    default:
      return { name: "invalid", reply: `Unknown command \`${m[1]}\`. Type \`help\` for the list of commands.` };
  }
}

/** A channel name (RFC 2811 §2.1): a type prefix, then no space, comma, BEL or colon. */
export function isChannel(s: string): boolean {
  return /^[#&+!][^\s,\x07:]{1,199}$/.test(s);
}

/** What a channel key (+k) may be: one IRC parameter that cannot split or end the JOIN line. */
export function isChannelKey(s: string): boolean {
  return /^[^\s,\x00-\x1f\x7f-\x9f]+$/.test(s) && Buffer.byteLength(s) <= 100;
}

/** RFC 2812 §2.3.1 nickname characters; servers enforce their own length limit and answer 432 when exceeded. */
export function isValidNick(nick: string): boolean {
  return /^[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,29}$/.test(nick);
}

/** Derives a valid IRC nick from the template and a Matrix user id (`{localpart}`, `{domain}`). */
export function nickFromTemplate(template: string, userId: string): string {
  const m = /^@([^:]+):(.*)$/.exec(userId);
  const local = m?.[1] ?? userId;
  const raw = template.replace("{localpart}", local).replace("{domain}", m?.[2] ?? "");
  let nick = raw.replace(/[^A-Za-z0-9\[\]\\`_^{|}-]/g, "_");
  if (!/^[A-Za-z\[\]\\`_^{|}]/.test(nick)) nick = "M" + nick;
  return nick.slice(0, 30);
}
