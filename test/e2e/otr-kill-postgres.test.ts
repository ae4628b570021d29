// Issue 15 on PostgreSQL: the same kill scenario as otr-kill.test.ts (test/harness/otr-kill.ts), fewer kills in CI.
import { killScenario } from "../harness/otr-kill.js";

killScenario({ engine: "postgres", kills: process.env.OTR_KILL_SOAK ? 50 : 8 });
