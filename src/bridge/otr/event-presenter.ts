// What the Matrix user sees of the OTR library's events (team contract in WAVE2.md): each event of a result, in
// order, becomes a notice with its code, a message with the `org.matrix_otr_irc.otr` flag, a trust decision
// persisted through the TrustBook, or a returned/refused message quoted back; the room's status event follows.
// Logs carry event types and codes only, never text.
import type { OtrEvent } from "../../otr/index.js";
import type { MessageKind } from "../ports.js";
import type { OtrPipeline } from "./manager.js";
import type { HoldTicket, Peer } from "./peer.js";
import { renderPeerText } from "./html.js";
import { MESSAGE_FLAG_KEY, quote } from "./notices.js";

export async function deliver(m: OtrPipeline, peer: Peer, kind: MessageKind, text: string, encrypted: boolean): Promise<void> {
  let k = kind;
  let t = text;
  if (encrypted && kind === "text" && t.startsWith("/me ")) {
    k = "emote";
    t = t.slice(4);
  }
  const r = renderPeerText(t);
  const extra: Record<string, unknown> = { [MESSAGE_FLAG_KEY]: { encrypted, verified: encrypted && peer.verified } };
  if (r.formattedBody !== undefined) {
    extra["format"] = "org.matrix.custom.html";
    extra["formatted_body"] = r.formattedBody;
  }
  await peer.ctx.toMatrix(k, r.body, extra);
}

export async function presentEvents(m: OtrPipeline, peer: Peer, events: OtrEvent[], sending?: string, ticket?: HoldTicket): Promise<void> {
  if (events.length > 0) {
    m.o.otrEvents?.(events);
    m.o.logger.debug("OTR events", { networkId: peer.ctx.networkId, events: events.map((e) => ("code" in e && e.code ? `${e.type}:${e.code}` : e.type)).join(",") });
  }
  const { ctx } = peer;
  const nick = ctx.peerNick;
  let flushed = false;
  for (const e of events) {
    switch (e.type) {
      case "received":
        if (e.text.length > 0) await deliver(m, peer, "text", e.text, e.encrypted);
        break;
      case "unencrypted-received":
        if (peer.conv?.status().state === "encrypted") {
          await m.notice(ctx, "plaintext-in-private", `The message above from ${nick} was NOT encrypted, although your conversation is private.`);
        } else if (!peer.warnedPlaintext) {
          peer.warnedPlaintext = true;
          await m.notice(ctx, "policy", `${nick} wrote without encryption. Your OTR policy with ${nick} requires a private conversation: type \`!otr start\`.`);
        }
        break;
      case "gone-secure":
        await goneSecure(m, peer, e.fingerprint, e.version);
        flushed = true;
        break;
      case "still-secure": {
        peer.smpAsked = false;
        // A refresh may come with another key (another login of the peer): trust is the new key's.
        const s = peer.conv?.status();
        if (s?.theirFingerprint && s.theirFingerprint !== peer.fingerprint) await goneSecure(m, peer, s.theirFingerprint, s.version ?? 3);
        else await m.notice(ctx, "still-secure", `The private conversation with ${nick} was refreshed.`);
        flushed = true;
        break;
      }
      case "gone-insecure":
        peer.smpAsked = false;
        if (e.reason === "peer-ended") {
          await m.notice(ctx, "ended-by-peer", `${nick} ended the private conversation. Nothing you write is sent until you type \`!otr end\` (continue without encryption) or \`!otr start\`.`);
        } else {
          await m.notice(ctx, "ended-by-us", `The private conversation with ${nick} has ended; messages are no longer encrypted.`);
        }
        break;
      case "smp-ask":
        peer.smpAsked = true;
        await m.notice(ctx, "smp-question", e.question
          ? `${nick} wants to verify your identity and asks: “${e.question}”\nAnswer with \`!otr smp <answer>\` (the answer is removed from the room once read), or \`!otr smp-abort\`.`
          : `${nick} wants to verify your identity with a secret you both know. Answer with \`!otr smp <secret>\` (removed from the room once read), or \`!otr smp-abort\`.`);
        break;
      case "smp-in-progress":
        await m.notice(ctx, "smp-in-progress", `Verification with ${nick} in progress…`);
        break;
      case "smp-success":
        peer.smpAsked = false;
        await smpSucceeded(m, peer);
        break;
      case "smp-failure":
        peer.smpAsked = false;
        await m.notice(ctx, "smp-failure", `Verification with ${nick} FAILED: the secrets did not match. ${nick}'s key stays unverified.`);
        break;
      case "smp-abort":
        peer.smpAsked = false;
        await m.notice(ctx, "smp-abort", e.by === "us" ? `Verification with ${nick} aborted.` : `Verification with ${nick} was aborted (${e.by === "peer" ? "by them" : "protocol error"}).`);
        break;
      case "smp-cheated":
        peer.smpAsked = false;
        await m.notice(ctx, "smp-cheated", `Verification with ${nick} was aborted: their answer did not follow the protocol.`);
        break;
      case "unreadable":
        await m.notice(ctx, "unreadable", `An encrypted message from ${nick} could not be read${e.code ? ` (${e.code})` : ""}. They were told; if it keeps happening, try \`!otr refresh\`.`);
        break;
      case "error-received":
        // Never resend on an OTR error (the text may have been read by no one, or by the wrong one).
        await m.notice(ctx, "error-received", `${nick}'s OTR software reported an error: ${e.text.replace(/^\?OTR Error:\s*/, "")}\nNothing was resent.`);
        // Whatever was held for the AKE would otherwise wait out the queue timeout for a session that is not coming.
        if (peer.conv?.status().state !== "encrypted") await returnHeld(m, peer, "error-received", `${nick}'s OTR software reported an error`);
        break;
      case "queued":
        if (sending !== undefined) {
          peer.hold(sending, ticket);
          await m.notice(ctx, "held", `Your message is held until the private conversation with ${nick} is set up; it will not be sent unencrypted.`);
        }
        break;
      case "refused":
        await refused(m, peer, e.code, sending);
        break;
      case "ake-failed":
        await returnHeld(m, peer, "ake-failed", `the private conversation could not be set up (${e.code})`);
        break;
      case "malformed":
      case "fragment-dropped":
      case "for-other-instance":
      case "reflected":
      case "extra-symmetric-key":
        break; // counted and logged (by code) above; nothing the user can act on
    }
  }
  if (flushed && peer.held.length > 0 && peer.conv?.status().state === "encrypted") {
    // The library sent what it held, encrypted, right after the AKE.
    const sent = peer.takeHeld();
    for (let i = 0; i < sent.texts.length; i++) m.o.metrics?.messageBridged("matrix_to_irc", ctx.networkId, true);
    // Their lines are queued on the puppet: the bridge waits for them to leave before calling the events done.
    sent.settle();
  }
  await m.updateStatus(peer);
}

/**
 * Gives every message held for the AKE back to the user at once, each quoted in a `returned` notice, and takes it
 * out of the library's queue so it can never go out later. `why` completes "Not sent to <nick> (...)".
 */
export async function returnHeld(m: OtrPipeline, peer: Peer, code: string, why: string): Promise<number> {
  const taken = peer.conv?.takeQueued() ?? [];
  // The mirror has the texts as the user typed them (an emote without the "/me " the library got).
  const mirror = peer.takeHeld();
  const texts = mirror.texts.length > 0 ? mirror.texts : taken;
  for (const text of texts) {
    m.o.metrics?.messageFailed("matrix_to_irc", code);
    await m.notice(peer.ctx, "returned", `Not sent to ${peer.ctx.peerNick} (${why}); it was never sent unencrypted:\n${quote(text)}`);
  }
  // Only once the user holds the text again: a crash before that hands the event on again after the restart.
  mirror.settle();
  return texts.length;
}

async function refused(m: OtrPipeline, peer: Peer, code: string, sending?: string): Promise<void> {
  const nick = peer.ctx.peerNick;
  if (code === "queue-expired" || code === "queue-full") {
    const { text, settle } = peer.shiftHeld();
    m.o.metrics?.messageFailed("matrix_to_irc", code);
    const why = code === "queue-expired" ? "the private conversation could not be set up in time" : "too many messages were waiting";
    await m.notice(peer.ctx, "returned", `Not sent to ${nick} (${why}); it was never sent unencrypted:${text === undefined ? "" : `\n${quote(text)}`}`);
    settle();
    return;
  }
  m.o.metrics?.messageFailed("matrix_to_irc", code);
  const why = code === "finished"
    ? `${nick} has ended the private conversation. Type \`!otr end\` to continue without encryption, or \`!otr start\` to start a new private conversation`
    : code === "policy-never" ? `your OTR policy with ${nick} forbids sending` : `the OTR layer refused it (${code})`;
  await m.notice(peer.ctx, "refused", `Not sent: ${why}.${sending === undefined ? "" : `\n${quote(sending)}`}`);
}

async function goneSecure(m: OtrPipeline, peer: Peer, fingerprint: string, version: 2 | 3): Promise<void> {
  const { ctx } = peer;
  const nick = ctx.peerNick;
  peer.smpAsked = false;
  peer.warnedPlaintext = false;
  peer.fingerprint = fingerprint;
  const a = await m.trust.sighted(ctx.userId, ctx.networkId, ctx.foldedNick, fingerprint);
  peer.verified = a.state === "verified";
  peer.verifiedBy = a.put[0]?.verifiedBy ?? null;
  let extra = "";
  for (const t of a.events) {
    if (t.type === "key-changed") {
      await m.notice(ctx, "key-changed",
        `WARNING: ${nick}'s OTR key has CHANGED. The key you verified for ${nick} before is not the one used now, so this may be someone else.\n` +
        `New fingerprint: ${fingerprint} (unverified). Check it with \`!otr smp <secret>\` or by comparing fingerprints before trusting this conversation.`);
    } else if (t.type === "nick-changed-same-key") {
      extra += `\nThis key was used before under another nick (${t.previousNicks.join(", ")}).`;
    } else if (t.type === "first-seen" && t.trustedOnFirstUse) {
      extra += "\nFirst key seen for this contact: trusted on first use.";
    }
  }
  const trustText = peer.verified
    ? `verified${peer.verifiedBy ? ` (${peer.verifiedBy})` : ""}`
    : "unverified: compare it with your contact another way, or use `!otr smp <secret>`";
  await m.notice(ctx, "gone-secure", `Private conversation with ${nick} started (OTR v${version}).\n${nick}'s fingerprint: ${fingerprint} — ${trustText}.${extra}`);
}

async function smpSucceeded(m: OtrPipeline, peer: Peer): Promise<void> {
  const { ctx } = peer;
  const fp = peer.conv?.status().theirFingerprint ?? peer.fingerprint;
  if (fp) {
    await m.trust.verify(ctx.userId, ctx.networkId, ctx.foldedNick, fp, "smp");
    peer.verified = true;
    peer.verifiedBy = "smp";
  }
  await m.notice(ctx, "smp-success", `Verification with ${ctx.peerNick} succeeded: their key ${fp ?? ""} is now verified.`);
}
