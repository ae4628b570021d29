// Issue 15, Matrix → IRC at least once on PostgreSQL: the same scenario as m2i-kill.test.ts.
import { m2iKillScenario } from "../harness/m2i-kill.js";

m2iKillScenario({ engine: "postgres", kills: 3 });
