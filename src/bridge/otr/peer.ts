// What the bridge keeps per (Matrix user, network, folded peer nick) next to the library's OtrConversation:
// the DM context to talk through, the messages the library holds for the AKE (mirrored, so a returned one can be
// quoted back), and the trust of the key the current session was made with.
import { MIN_FRAGMENT_SIZE, type OtrConversation } from "../../otr/index.js";
import type { OtrPolicyName } from "../../store/types.js";
import type { VerifiedBy } from "../../otr/trust.js";
import type { DmContext } from "../dm-pipeline.js";
import { SplitJoiner } from "./split-join.js";

/** Fragment size when the connection cannot say (not connected yet); 400 fits any usual 512-byte line. */
export const FALLBACK_FRAGMENT_SIZE = 400;

/**
 * Handed down with a message that may be held for the AKE: the presenter marks it used when the library queued the
 * message, and `settle` runs once that held message was sent or given back (the Matrix event is then done).
 */
export interface HoldTicket {
  used: boolean;
  settle(): void;
  settled: Promise<void>;
}

export function newHoldTicket(): HoldTicket {
  let settle = () => undefined as void;
  const settled = new Promise<void>((r) => (settle = r));
  return { used: false, settle, settled };
}

export class Peer {
  conv: OtrConversation | null = null;
  policyName: OtrPolicyName | null = null;
  /** Texts the library holds under REQUIRE_ENCRYPTION, oldest first, in the library's own queue order. */
  held: string[] = [];
  /** Settles each held message's ticket, in step with `held`. */
  private heldSettle: Array<(() => void) | undefined> = [];
  /** Trust of the key of the current encrypted session. */
  verified = false;
  verifiedBy: VerifiedBy | null = null;
  /** Human form of the last key the peer authenticated with. */
  fingerprint: string | null = null;
  /** The peer asked for SMP and waits for our answer. */
  smpAsked = false;
  /** Already told the user that plaintext arrived although the policy requires OTR. */
  warnedPlaintext = false;
  lastStatus: string | null = null;
  /** Last input from either side (env clock), for forgetting idle plaintext peers. */
  lastActive = 0;
  /** Rejoins "?OTR:" messages a bouncer split across PRIVMSGs. */
  readonly joiner = new SplitJoiner();

  constructor(public ctx: DmContext, private readonly configuredFragmentSize: number | undefined) {}

  hold(text: string, ticket?: HoldTicket): void {
    if (ticket) ticket.used = true;
    this.held.push(text);
    this.heldSettle.push(ticket?.settle);
  }

  /** Takes the oldest held text; `settle` is to be called once the user was told what became of it. */
  shiftHeld(): { text: string | undefined; settle: () => void } {
    const settle = this.heldSettle.shift();
    return { text: this.held.shift(), settle: () => settle?.() };
  }

  /** Takes every held text (the library sent them, or they go back to the user); `settle` as for shiftHeld. */
  takeHeld(): { texts: string[]; settle: () => void } {
    const texts = this.held;
    const settles = this.heldSettle;
    this.held = [];
    this.heldSettle = [];
    return { texts, settle: () => settles.forEach((f) => f?.()) };
  }

  get key(): string {
    return `${this.ctx.userId}\u0000${this.ctx.networkId}\u0000${this.ctx.foldedNick}`;
  }

  /**
   * The largest OTR line this peer can get in one PRIVMSG now: the connection's budget for this target (the
   * server prepends `:nick!user@host PRIVMSG target :`), capped by the network's configured size, never below
   * the library's minimum.
   */
  fragmentSize(): number {
    const budget = this.ctx.ircTextBudget();
    const usable = budget > 0 ? budget : FALLBACK_FRAGMENT_SIZE;
    return Math.max(MIN_FRAGMENT_SIZE, Math.min(usable, this.configuredFragmentSize ?? usable));
  }
}
