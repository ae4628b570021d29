// Issue 15 on SQLite: SIGKILLs at random points of a libotr conversation, a planned restart, the old-key search
// (test/harness/otr-kill.ts). OTR_KILL_SOAK=1 runs the heavier soak (50 kills); OTR_KILL_SEED replays a run.
import { killScenario } from "../harness/otr-kill.js";

killScenario({ engine: "sqlite", kills: process.env.OTR_KILL_SOAK ? 50 : 12 });
