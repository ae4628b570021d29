// Carries out `!otr` commands for one peer (the caller holds the peer's queue). Every command answers with one
// reply; state changes it causes are shown by the manager's usual notices and status event. A command carrying a
// secret (smp, ask) has its Matrix event redacted before anything else happens with it.
import { normalizeFingerprint, TrustUsageError } from "../../otr/trust.js";
import { OTR_HELP, carriesSecret, parseOtrCommand } from "./command.js";
import { presetFor } from "./policy.js";
import type { OtrPipeline } from "./manager.js";
import { codeOf } from "./manager.js";
import type { Peer } from "./peer.js";

const utf8 = new TextEncoder();

export interface CommandOrigin {
  /** Where the command was typed, and as whom to redact it there (null = the bot). */
  roomId: string;
  as: string | null;
  eventId: string | undefined;
}

export async function runOtrCommand(m: OtrPipeline, peer: Peer, args: string, origin: CommandOrigin): Promise<string> {
  let redactNote = "";
  if (carriesSecret(args) && origin.eventId) {
    try {
      await m.o.matrix.redact(origin.roomId, origin.as, origin.eventId, "OTR secret");
    } catch (err) {
      m.o.logger.warn("could not redact an SMP command event", { code: codeOf(err) });
      redactNote = "\nI could not remove your message containing the secret: please delete it yourself.";
    }
  }
  try {
    return (await execute(m, peer, args)) + redactNote;
  } catch (err) {
    // Every command answers, failures included (a key that does not load, the store down).
    m.o.logger.warn("an OTR command failed", { code: codeOf(err) });
    return `That did not work (${codeOf(err)}).${redactNote}`;
  }
}

async function execute(m: OtrPipeline, peer: Peer, args: string): Promise<string> {
  const cmd = parseOtrCommand(args);
  const nick = peer.ctx.peerNick;
  const notConnected = `You are not connected to ${peer.ctx.networkId}; nothing was sent.`;
  switch (cmd.name) {
    case "help":
      return OTR_HELP;
    case "invalid":
      return cmd.reply;
    case "start": {
      const conv = await m.conversation(peer);
      if (!conv) return `Your OTR policy with ${nick} is \`never\`. Choose another first, e.g. \`!otr policy manual\`.`;
      if (conv.status().state === "encrypted") return `The conversation with ${nick} is already private. \`!otr refresh\` starts a new session.`;
      // Asked for OTR: the key is made now, while the query travels, not when the AKE needs its signature.
      await m.keyedAccount(peer);
      const lines = await m.apply(peer, conv.startAke());
      return lines > 0 ? `Asked ${nick} to start a private conversation…` : notConnected;
    }
    case "end": {
      const conv = peer.conv;
      if (!conv || conv.status().state === "plaintext") return `There is no private conversation with ${nick} to end.`;
      const wasFinished = conv.status().state === "finished";
      await m.apply(peer, conv.end());
      return wasFinished ? `Left the ended private conversation with ${nick}; messages now go unencrypted (if your policy allows).` : `Ended the private conversation with ${nick}.`;
    }
    case "refresh": {
      const conv = await m.conversation(peer);
      if (!conv) return `Your OTR policy with ${nick} is \`never\`.`;
      await m.keyedAccount(peer);
      const lines = await m.apply(peer, conv.refresh());
      return lines > 0 ? `Starting a new private session with ${nick}…` : notConnected;
    }
    case "status":
      return status(m, peer);
    case "fingerprint": {
      const policy = await m.policyOf(peer);
      const ours = policy === "never" && !peer.conv ? null : (await m.keyedAccount(peer)).fingerprintHuman;
      const theirs = peer.conv?.status().theirFingerprint ?? peer.fingerprint;
      return [
        `Your fingerprint on ${peer.ctx.networkId}: ${ours ?? "(no key yet: your OTR policy with this contact is never)"}`,
        `${nick}'s: ${theirs ? `${theirs} (${peer.verified ? "verified" : "unverified"})` : "not known yet (no private conversation so far)"}`,
      ].join("\n");
    }
    case "trust": {
      const current = peer.conv?.status().theirFingerprint ?? peer.fingerprint;
      if (!current) return `No key of ${nick} seen yet: start a private conversation first.`;
      if (cmd.fingerprint !== null) {
        let given: string;
        try {
          given = normalizeFingerprint(cmd.fingerprint);
        } catch (err) {
          if (err instanceof TrustUsageError) return "That is not a fingerprint (40 hex digits, spaces allowed). Nothing changed.";
          throw err;
        }
        if (given !== normalizeFingerprint(current)) return `That is not ${nick}'s current fingerprint (${current}). Nothing changed.`;
      }
      await m.trust.verify(peer.ctx.userId, peer.ctx.networkId, peer.ctx.foldedNick, current, "manual");
      peer.verified = true;
      peer.verifiedBy = "manual";
      await m.updateStatus(peer);
      return `${nick}'s key ${current} is now verified.`;
    }
    case "distrust": {
      const current = peer.conv?.status().theirFingerprint ?? peer.fingerprint;
      if (!current) return `No key of ${nick} seen yet.`;
      await m.trust.distrust(peer.ctx.userId, peer.ctx.networkId, current);
      peer.verified = false;
      peer.verifiedBy = null;
      await m.updateStatus(peer);
      return `${nick}'s key ${current} is now unverified.`;
    }
    case "smp":
    case "ask": {
      const conv = peer.conv;
      if (!conv || conv.status().state !== "encrypted") return `Verification needs a private conversation with ${nick} first: \`!otr start\`.`;
      await m.keyedAccount(peer); // a session resumed after a restart has not needed it so far
      const secret = utf8.encode(cmd.secret);
      const answering = cmd.name === "smp" && peer.smpAsked;
      const r = answering ? conv.smpRespond(secret) : conv.smpStart(secret, cmd.name === "ask" ? cmd.question : undefined);
      if (r.events.some((e) => e.type === "refused")) return `Verification with ${nick} could not start right now; try again in a moment.`;
      if (answering) peer.smpAsked = false;
      const lines = await m.apply(peer, r);
      if (lines === 0) return notConnected;
      return answering ? `Answer sent to ${nick}; waiting for the result…` : `Asked ${nick} to verify${cmd.name === "ask" ? " with your question" : ""}; waiting for their answer…`;
    }
    case "smp-abort": {
      if (!peer.conv) return "No verification in progress.";
      const r = peer.conv.smpAbort();
      peer.smpAsked = false;
      if (r.toSend.length === 0) return "No verification in progress.";
      await m.apply(peer, r);
      return `Verification with ${nick} aborted.`;
    }
    case "policy": {
      const { store } = m.o;
      const { userId, networkId, foldedNick } = peer.ctx;
      if (cmd.policy === null) return `Your OTR policy with ${nick} is \`${await m.policyOf(peer)}\`.`;
      await store.putPeerPolicy(userId, networkId, foldedNick, cmd.policy);
      peer.policyName = cmd.policy;
      const conv = peer.conv;
      if (conv) {
        // `never` must not leave a private conversation running (and would otherwise send plaintext into it).
        if (cmd.policy === "never" && conv.status().state !== "plaintext") await m.apply(peer, conv.end());
        conv.setPolicy(presetFor(cmd.policy));
      }
      return `Your OTR policy with ${nick} is now \`${cmd.policy}\`.`;
    }
  }
}

async function status(m: OtrPipeline, peer: Peer): Promise<string> {
  const nick = peer.ctx.peerNick;
  const policy = await m.policyOf(peer);
  const s = peer.conv?.status();
  const lines: string[] = [];
  if (!s || s.state === "plaintext") lines.push(`Conversation with ${nick}: not private (plaintext).`);
  else if (s.state === "finished") lines.push(`Conversation with ${nick}: ${nick} ended the private conversation; nothing is sent until you \`!otr end\` or \`!otr start\`.`);
  else {
    lines.push(`Conversation with ${nick}: private (OTR v${s.version}).`);
    lines.push(`${nick}'s fingerprint: ${s.theirFingerprint} — ${peer.verified ? `verified${peer.verifiedBy ? ` (${peer.verifiedBy})` : ""}` : "unverified"}.`);
  }
  if (peer.held.length > 0) lines.push(`${peer.held.length} message(s) held until the private conversation is set up.`);
  lines.push(`Policy: ${policy}.`);
  return lines.join("\n");
}
