// `store ...`: maintenance of the bridge's store. The work is the store module's (src/store); this only parses
// the command line, loads the config and reports.

import { CONFIG_OPTION, HELP_OPTION, parseCommandArgs, required } from "./args.js";
import { loadOrReport } from "./check-config.js";
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, UsageError, type CliIo } from "./io.js";

export const STORE_HELP = `Usage: matrix-otr-irc store <subcommand> [options]

Subcommands:
  rotate-master-key -c <config.yaml>   re-seal every stored secret under a new master key

Run 'matrix-otr-irc store <subcommand> --help' for its options.
`;

export const ROTATE_HELP = `Usage: matrix-otr-irc store rotate-master-key -c <config.yaml>

Generates a new master key, re-seals every secret in the store with it in one transaction, then replaces
store.master_key_file. Crash-safe: if interrupted, run it again to finish. Stop the bridge first.
Not available when the key comes from MATRIX_OTR_IRC_MASTER_KEY (rotate by hand and update the variable).

Options:
  -c, --config <file>   configuration file (required)
  -h, --help            show this help

Exit status: 0 when rotated, 2 on a usage or config error, 1 when the rotation failed (nothing changed).
`;

export async function storeCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    (sub === undefined ? io.err : io.out)(STORE_HELP);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (sub !== "rotate-master-key") throw new UsageError(`store: unknown subcommand ${JSON.stringify(sub)}\n\n${STORE_HELP}`);
  const o = parseCommandArgs("store rotate-master-key", rest, { ...CONFIG_OPTION, ...HELP_OPTION });
  if (o.help) {
    io.out(ROTATE_HELP);
    return EXIT_OK;
  }
  const config = loadOrReport(required("store rotate-master-key", o.config, "-c <config.yaml>"), io);
  if (!config) return EXIT_USAGE;
  const { rotateMasterKeyFile } = await import("../store/index.js");
  try {
    const r = await rotateMasterKeyFile(config.store, io.env as NodeJS.ProcessEnv);
    io.out(`master key rotated: ${r.resealed} secret${r.resealed === 1 ? "" : "s"} re-sealed; new key in ${r.keyFile}\n`);
    return EXIT_OK;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    io.err(`store rotate-master-key: ${(e as Error).message}${typeof code === "string" ? ` (${code})` : ""}\n`);
    return code === "invalid-argument" ? EXIT_USAGE : EXIT_RUNTIME;
  }
}
