// The matrix-otr-irc executable (bin/matrix-otr-irc.js loads the compiled dist/cli.js). Everything testable lives
// in src/cli/; this file only binds the process: arguments, streams, signals and the exit status.

import { runCli } from "./cli/run.js";
import { processIo } from "./cli/io.js";

runCli(process.argv.slice(2), processIo()).then(
  (code) => {
    // Let pending writes to stdout/stderr drain; a forced exit here could cut the last lines.
    process.exitCode = code;
    // A clean `start` shutdown leaves nothing behind, but a library timer must not keep a stopped bridge alive.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (e: unknown) => {
    process.stderr.write(`fatal: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
