// The appservice listener with the transaction hook encryption needs. matrix-appservice answers a transaction
// before anyone has handled it and drops every field but `events` and ephemeral events; with encryption the
// to-device events, device lists and key counts must reach the devices before the room events, and the answer
// must wait until they did (and their state is stored), or a crash would lose Olm messages the homeserver will
// never send again.
import { AppService } from "matrix-appservice";
import type { RawEvent } from "./rooms.js";

/* The slice of express's request and response used here. */
interface Request { headers: { authorization?: string }; query: Record<string, unknown>; params: Record<string, string | undefined>; body: unknown }
interface Response { status(code: number): Response; send(body: unknown): unknown }

export type TransactionHook = (body: Record<string, unknown>) => Promise<RawEvent[]>;

/** Transaction ids remembered to answer the homeserver's retries without handling them twice. */
const REMEMBERED_TXNS = 1_000;

export class HookedAppService extends AppService {
  private readonly doneTxns = new Set<string>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly hsToken: string, private readonly hook: TransactionHook) {
    super({ homeserverToken: hsToken });
  }

  /** Transactions one at a time, in the order they came: events of one room must not overtake each other. */
  handleTransaction(req: Request, res: Response): void {
    const auth = req.headers.authorization;
    const token = auth?.startsWith("Bearer ") ? auth.slice(7) : (req.query["access_token"] as string | undefined);
    if (token !== this.hsToken) {
      res.status(403).send({ errcode: "M_FORBIDDEN", error: "Bad token supplied" });
      return;
    }
    const txnId = String(req.params["txnId"] ?? "");
    const body = req.body as Record<string, unknown> | undefined;
    if (!txnId || !body || typeof body !== "object") {
      res.status(400).send({ errcode: "M_BAD_JSON", error: "missing transaction id or body" });
      return;
    }
    const run = async () => {
      if (this.doneTxns.has(txnId)) return res.send({});
      let events: RawEvent[];
      try {
        events = await this.hook(body);
      } catch (err) {
        // The homeserver retries the same transaction later; nothing of it has been handed on yet.
        return res.status(500).send({ errcode: "M_UNKNOWN", error: `transaction not processed: ${(err as { code?: string })?.code ?? "error"}` });
      }
      for (const ev of events) {
        this.emit("event", ev);
        if (ev.type) this.emit("type:" + ev.type, ev);
      }
      for (const ev of [...asArray(body["ephemeral"]), ...asArray(body["de.sorunome.msc2409.ephemeral"])]) {
        this.emit("ephemeral", ev);
      }
      this.doneTxns.add(txnId);
      if (this.doneTxns.size > REMEMBERED_TXNS) this.doneTxns.delete(this.doneTxns.values().next().value!);
      return res.send({});
    };
    this.chain = this.chain.then(run, run);
  }
}

// matrix-appservice binds its own (private) onTransaction to the route in its constructor; defining it on our
// prototype is what makes that binding land on handleTransaction.
Object.defineProperty(HookedAppService.prototype, "onTransaction", {
  value(this: HookedAppService, req: Request, res: Response) {
    this.handleTransaction(req, res);
  },
});

function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
