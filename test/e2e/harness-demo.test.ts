// The README's first command must stay true: scripts/demo.sh starts Synapse, ngIRCd and the built bridge, and a
// DM goes through it both ways (DEMO_SMOKE=1 drives one with scripts/demo-smoke.ts). Free ports and a temp
// state dir keep it apart from a real demo; a second run reuses the state (same user, same registration).
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { freePort } from "../harness/ports.js";
import { tempDir } from "../harness/proc.js";

const ROOT = resolve(new URL("../..", import.meta.url).pathname);

function runDemo(env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const child = spawn("bash", [join(ROOT, "scripts/demo.sh")], {
      cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => { out += String(d); });
    child.stderr.on("data", (d) => { out += String(d); });
    child.on("exit", (code) => res({ code, out }));
  });
}

function listening(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => { s.destroy(); res(true); });
    s.once("error", () => res(false));
  });
}

/** Which process listens on a port, for the failure message. */
function holder(port: number): string {
  const r = spawnSync("ss", ["-Hltnp", `sport = :${port}`], { encoding: "utf8" });
  if (r.error) return `(ss not available: ${r.error.message})`;
  return (r.stdout || r.stderr || "").trim() || "(no listener found by ss)";
}

describe("scripts/demo.sh", { timeout: 600_000 }, () => {
  const dir = tempDir("demo");
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("starts everything, carries a DM both ways, stops everything; a second run reuses its state", async () => {
    const ports = { DEMO_HS_PORT: await freePort(), DEMO_IRC_PORT: await freePort(), DEMO_AS_PORT: await freePort(),
      DEMO_METRICS_PORT: await freePort() };
    const env = { DEMO_DIR: dir, DEMO_SKIP_DEPS: "1", DEMO_SMOKE: "1",
      ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])) };

    const first = await runDemo(env);
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /demo smoke: OK/);
    assert.match(first.out, /user\s+@demo:localhost/);
    for (const p of Object.values(ports)) {
      if (await listening(p)) assert.fail(`port ${p} still open after the demo: ${holder(p)}\n${first.out.slice(-2000)}`);
    }
    const registration = readFileSync(join(dir, "bridge/registration.yaml"), "utf8");
    const password = readFileSync(join(dir, "bridge/demo-user-password"), "utf8");

    const second = await runDemo(env);
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /demo smoke: OK/);
    assert.equal(readFileSync(join(dir, "bridge/registration.yaml"), "utf8"), registration);
    assert.equal(readFileSync(join(dir, "bridge/demo-user-password"), "utf8"), password);
    assert.ok(existsSync(join(dir, "synapse/homeserver.db")), "Synapse's database lives in the demo dir");
  });
});
