// Channel traffic seen by a puppet, translated from irc-framework's events into a small union the bridge consumes.
// Kept apart from puppet.ts so the connection logic there stays about one connection; the puppet binds these to
// each client it creates. Events come out in the order the server sent the lines (irc-framework emits synchronously
// per line), which is what the bridge's per-room queue preserves.
import type { Client } from "irc-framework";
import { buildLine } from "./sanitize.js";

export type ChannelEvent =
  | { type: "message"; channel: string; from: string; kind: "privmsg" | "notice" | "action"; text: string }
  | { type: "join"; channel: string; nick: string }
  | { type: "part"; channel: string; nick: string; reason: string }
  | { type: "kick"; channel: string; nick: string; by: string; reason: string }
  | { type: "quit"; nick: string; reason: string }
  | { type: "nick"; oldNick: string; newNick: string }
  | { type: "topic"; channel: string; topic: string; by: string | null }
  | { type: "names"; channel: string; users: { nick: string; modes: string[] }[] }
  | { type: "mode"; channel: string; nick: string; mode: string; by: string };

/** Channel names start with one of these (RFC 2811 §2.1; CHANTYPES on most networks). */
export function isChannelName(s: string): boolean {
  return /^[#&+!][^\s,\x07:]{1,199}$/.test(s);
}

type AnyEvent = Record<string, unknown>;
const s = (v: unknown): string => (typeof v === "string" ? v : "");

export function bindChannelEvents(client: Client, emit: (e: ChannelEvent) => void, active: () => boolean): void {
  const on = (name: string, f: (e: AnyEvent) => ChannelEvent | ChannelEvent[] | null) =>
    client.on(name, (e: AnyEvent) => {
      if (!active()) return;
      const out = f(e);
      if (!out) return;
      for (const ev of Array.isArray(out) ? out : [out]) emit(ev);
    });
  const msg = (kind: "privmsg" | "notice" | "action") => (e: AnyEvent): ChannelEvent | null =>
    isChannelName(s(e["target"])) && s(e["nick"]) && !e["from_server"]
      ? { type: "message", channel: s(e["target"]), from: s(e["nick"]), kind, text: s(e["message"]) }
      : null;
  on("privmsg", msg("privmsg"));
  on("notice", msg("notice"));
  on("action", msg("action"));
  on("join", (e) => (s(e["channel"]) ? { type: "join", channel: s(e["channel"]), nick: s(e["nick"]) } : null));
  on("part", (e) => ({ type: "part", channel: s(e["channel"]), nick: s(e["nick"]), reason: s(e["message"]) }));
  on("kick", (e) => ({ type: "kick", channel: s(e["channel"]), nick: s(e["kicked"]), by: s(e["nick"]), reason: s(e["message"]) }));
  on("quit", (e) => ({ type: "quit", nick: s(e["nick"]), reason: s(e["message"]) }));
  on("nick", (e) => ({ type: "nick", oldNick: s(e["nick"]), newNick: s(e["new_nick"]) }));
  on("topic", (e) => ({ type: "topic", channel: s(e["channel"]), topic: s(e["topic"]), by: s(e["nick"]) || null }));
  on("userlist", (e) => ({
    type: "names",
    channel: s(e["channel"]),
    users: (Array.isArray(e["users"]) ? (e["users"] as AnyEvent[]) : []).map((u) => ({ nick: s(u["nick"]), modes: Array.isArray(u["modes"]) ? (u["modes"] as string[]) : [] })),
  }));
  on("mode", (e) => {
    const channel = s(e["target"]);
    if (!isChannelName(channel) || !Array.isArray(e["modes"])) return null;
    return (e["modes"] as { mode?: unknown; param?: unknown }[])
      .filter((m) => /^[+-][ohv]$/.test(s(m.mode)) && s(m.param))
      .map((m) => ({ type: "mode" as const, channel, nick: s(m.param), mode: s(m.mode), by: s(e["nick"]) }));
  });
}

/** Protocol lines for channel membership, built (and so checked) by the sanitizer. */
export const channelLines = {
  join: (channel: string, key?: string) => buildLine("JOIN", key ? [channel, key] : [channel]),
  part: (channel: string, reason?: string) => buildLine("PART", [channel], reason ? reason.replace(/[\r\n\0]/g, " ") : undefined),
  topic: (channel: string, topic: string) => buildLine("TOPIC", [channel], topic.replace(/[\r\n\0]/g, " ")),
  kick: (channel: string, nick: string, reason?: string) => buildLine("KICK", [channel, nick], reason ? reason.replace(/[\r\n\0]/g, " ") : undefined),
};
