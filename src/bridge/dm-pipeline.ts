// The single path of every direct message between an IRC contact and a Matrix user. Today it passes text through;
// the OTR session manager (issue 6) implements the same interface and sits exactly here, between the IRC puppet
// and the Matrix DM room, so no other code path can move a DM in either direction.
import type { MessageKind } from "./ports.js";

export interface DmContext {
  userId: string;
  networkId: string;
  /** The contact's nick as last seen (for sending), and its case-folded key. */
  peerNick: string;
  foldedNick: string;
  /** The Matrix DM room. */
  roomId: string;
  /** Bytes of text one IRC line to the contact can carry (what an OTR fragment may use). */
  ircTextBudget(): number;
  /** Post into the user's DM room as the contact's ghost. */
  toMatrix(kind: MessageKind, body: string, extraContent?: Record<string, unknown>): Promise<void>;
  /** Send to the contact on IRC through the user's puppet; returns the number of IRC lines written. */
  toIrc(kind: MessageKind, text: string): number;
}

/** The Matrix event a message came from, for pipelines that act on the event itself (redacting a typed secret). */
export interface MatrixOrigin {
  eventId?: string;
}

export interface DmSendResult {
  sent: boolean;
  encrypted: boolean;
  /** The pipeline already told the user what became of the text (held, refused, a command's answer). */
  handled?: boolean;
  /** Held (OTR policy `always`, waiting for the AKE): resolves once the text was sent or given back to the user. */
  settled?: Promise<void>;
}

export interface DmPipeline {
  /** A message from the IRC contact to the puppet. */
  fromIrc(ctx: DmContext, kind: MessageKind, text: string): Promise<void>;
  /** A message the Matrix user wrote in the DM room: whether anything went to IRC, and whether encrypted. */
  fromMatrix(ctx: DmContext, kind: MessageKind, text: string, origin?: MatrixOrigin): Promise<DmSendResult>;
  /** Text the pipeline takes as its own command: it never reaches IRC and is answered even while disconnected. */
  isCommand?(text: string): boolean;
  /** A command about this DM typed in the management room (`otr <network> <nick> ...`); returns the answer. */
  command?(ctx: DmContext, args: string, origin: { roomId: string; eventId?: string }): Promise<string>;
  /** Bridge shutdown: last words to peers, handed to the puppets before they quit. */
  shutdown?(): Promise<void>;
  /**
   * The contact changed nick and the DM moved (same room) from `oldFoldedNick` to `ctx.foldedNick`: per-peer state
   * keyed by the folded nick (e.g. a live OTR conversation) should move along. Runs inside both keys' queues.
   */
  renamed?(oldFoldedNick: string, ctx: DmContext): Promise<void>;
}

export class PlaintextPipeline implements DmPipeline {
  async fromIrc(ctx: DmContext, kind: MessageKind, text: string): Promise<void> {
    await ctx.toMatrix(kind, text);
  }

  async fromMatrix(ctx: DmContext, kind: MessageKind, text: string): Promise<DmSendResult> {
    return { sent: ctx.toIrc(kind, text) > 0, encrypted: false };
  }
}
