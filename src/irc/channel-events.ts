// Channel traffic seen by a puppet, translated from irc-framework's events into a small union the bridge consumes.
// Kept apart from puppet.ts so the connection logic there stays about one connection; the puppet binds these to
// each client it creates. Events come out in the order the server sent the lines (irc-framework emits synchronously
// per line), which is what the bridge's per-room queue preserves.
import type { Client } from "irc-framework";
import { buildLine } from "./sanitize.js";

export type ChannelEvent =
  | { type: "message"; channel: string; from: string; kind: "privmsg" | "notice" | "action"; text: string; mask?: string }
  | { type: "join"; channel: string; nick: string; mask?: string }
  | { type: "part"; channel: string; nick: string; reason: string }
  | { type: "kick"; channel: string; nick: string; by: string; reason: string }
  | { type: "quit"; nick: string; reason: string }
  | { type: "nick"; oldNick: string; newNick: string }
  | { type: "topic"; channel: string; topic: string; by: string | null }
  | { type: "names"; channel: string; users: { nick: string; modes: string[]; mask?: string }[] }
  | { type: "mode"; channel: string; nick: string; mode: string; by: string }
  | { type: "ban"; channel: string; mask: string; set: boolean; by: string }
  | { type: "key"; channel: string; key: string | null; by: string }
  | { type: "refused"; channel: string; reason: ChannelRefusal };

/** Why the server refused a JOIN or a moderation command of ours in a channel. */
export type ChannelRefusal = "not-operator" | "banned" | "bad-key" | "full" | "invite-only";

const REFUSALS: Record<string, ChannelRefusal> = {
  chanop_privs_needed: "not-operator",
  banned_from_channel: "banned",
  bad_channel_key: "bad-key",
  channel_is_full: "full",
  invite_only_channel: "invite-only",
};

/** Channel names start with one of these (RFC 2811 §2.1; CHANTYPES on most networks). */
export function isChannelName(s: string): boolean {
  return /^[#&+!][^\s,\x07:]{1,199}$/.test(s);
}

type AnyEvent = Record<string, unknown>;
const s = (v: unknown): string => (typeof v === "string" ? v : "");
/** nick!ident@host when the server told us all three (ban masks are matched against it). */
const maskOf = (e: AnyEvent): { mask?: string } =>
  s(e["nick"]) && s(e["ident"]) && s(e["hostname"]) ? { mask: `${s(e["nick"])}!${s(e["ident"])}@${s(e["hostname"])}` } : {};

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
      ? { type: "message", channel: s(e["target"]), from: s(e["nick"]), kind, text: s(e["message"]), ...maskOf(e) }
      : null;
  on("privmsg", msg("privmsg"));
  on("notice", msg("notice"));
  on("action", msg("action"));
  on("join", (e) => (s(e["channel"]) ? { type: "join", channel: s(e["channel"]), nick: s(e["nick"]), ...maskOf(e) } : null));
  on("part", (e) => ({ type: "part", channel: s(e["channel"]), nick: s(e["nick"]), reason: s(e["message"]) }));
  on("kick", (e) => ({ type: "kick", channel: s(e["channel"]), nick: s(e["kicked"]), by: s(e["nick"]), reason: s(e["message"]) }));
  on("quit", (e) => ({ type: "quit", nick: s(e["nick"]), reason: s(e["message"]) }));
  on("nick", (e) => ({ type: "nick", oldNick: s(e["nick"]), newNick: s(e["new_nick"]) }));
  on("topic", (e) => ({ type: "topic", channel: s(e["channel"]), topic: s(e["topic"]), by: s(e["nick"]) || null }));
  on("userlist", (e) => ({
    type: "names",
    channel: s(e["channel"]),
    users: (Array.isArray(e["users"]) ? (e["users"] as AnyEvent[]) : []).map((u) => ({ nick: s(u["nick"]), modes: Array.isArray(u["modes"]) ? (u["modes"] as string[]) : [], ...maskOf(u) })),
  }));
  on("irc error", (e) => {
    const reason = REFUSALS[s(e["error"])];
    return reason && isChannelName(s(e["channel"])) ? { type: "refused", channel: s(e["channel"]), reason } : null;
  });
  on("mode", (e) => {
    const channel = s(e["target"]);
    if (!isChannelName(channel) || !Array.isArray(e["modes"])) return null;
    const by = s(e["nick"]);
    const out: ChannelEvent[] = [];
    for (const m of e["modes"] as { mode?: unknown; param?: unknown }[]) {
      const mode = s(m.mode);
      const param = s(m.param);
      if (/^[+-][ohv]$/.test(mode) && param) out.push({ type: "mode", channel, nick: param, mode, by });
      else if (/^[+-]b$/.test(mode) && param) out.push({ type: "ban", channel, mask: param, set: mode[0] === "+", by });
      // -k carries the old key or "*" (or nothing): either way the channel has no key now.
      else if (mode === "+k" && param) out.push({ type: "key", channel, key: param, by });
      else if (mode === "-k") out.push({ type: "key", channel, key: null, by });
    }
    return out;
  });
}

/** Protocol lines for channel membership, built (and so checked) by the sanitizer. */
export const channelLines = {
  // A key may begin with ":" (servers allow it); only the trailing form keeps that colon as part of the key.
  join: (channel: string, key?: string) => (key?.startsWith(":") ? buildLine("JOIN", [channel], key) : buildLine("JOIN", key ? [channel, key] : [channel])),
  part: (channel: string, reason?: string) => buildLine("PART", [channel], reason ? reason.replace(/[\r\n\0]/g, " ") : undefined),
  topic: (channel: string, topic: string) => buildLine("TOPIC", [channel], topic.replace(/[\r\n\0]/g, " ")),
  kick: (channel: string, nick: string, reason?: string) => buildLine("KICK", [channel, nick], reason ? reason.replace(/[\r\n\0]/g, " ") : undefined),
  /** One MODE line; the caller keeps to the server's MODES limit (see modeLines). */
  mode: (channel: string, changes: readonly ModeChange[]) => {
    let flags = "";
    let sign = "";
    for (const c of changes) {
      if (!/^[+-][a-zA-Z]$/.test(c.mode)) throw Object.assign(new Error(`not a channel mode change: ${JSON.stringify(c.mode)}`), { code: "bad-mode" });
      if (c.mode[0] !== sign) flags += (sign = c.mode[0]!);
      flags += c.mode[1];
    }
    return buildLine("MODE", [channel, flags, ...changes.flatMap((c) => (c.param !== undefined ? [c.param] : []))]);
  },
};

export interface ModeChange {
  /** "+o", "-v", "+b", ... */
  mode: string;
  param?: string;
}

/** Mode changes as MODE lines of at most `perLine` changes each (ISUPPORT MODES; 3 when the server is silent). */
export function modeLines(channel: string, changes: readonly ModeChange[], perLine = 3): string[] {
  const n = Number.isInteger(perLine) && perLine > 0 ? Math.min(perLine, 20) : 3;
  const lines: string[] = [];
  for (let i = 0; i < changes.length; i += n) lines.push(channelLines.mode(channel, changes.slice(i, i + n)));
  return lines;
}
