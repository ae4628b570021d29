// The node flags the shipped launcher gives the bridge, read from its first line, for whatever starts the built CLI
// as production does (the bench) and for the test that keeps them there.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const REPO = resolve(new URL("../..", import.meta.url).pathname);
const LAUNCHER = join(REPO, "bin/matrix-otr-irc.js");

/** The node flags on the launcher's `#!/usr/bin/env -S node ...` line: what the bridge runs with in production. */
export function launcherNodeFlags(): string[] {
  const first = readFileSync(LAUNCHER, "utf8").split("\n", 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node((?: --[\w-]+(?:=\S+)?)*)$/.exec(first);
  if (!m) throw new Error(`bin/matrix-otr-irc.js: unexpected first line ${JSON.stringify(first)}`);
  return m[1]!.split(" ").filter(Boolean);
}
