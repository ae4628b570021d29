// Issue 15, Matrix → IRC at least once on SQLite: SIGKILLs while 200 messages are in flight (test/harness/m2i-kill.ts).
import { m2iKillScenario } from "../harness/m2i-kill.js";

m2iKillScenario({ engine: "sqlite", kills: 3 });
