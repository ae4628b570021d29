// `check-config`: every problem in the file at once, one per line, exit 2 when there is any.

import { formatConfigError, loadConfig, type Config } from "../config/index.js";
import { CONFIG_OPTION, HELP_OPTION, parseCommandArgs, required } from "./args.js";
import { EXIT_OK, EXIT_USAGE, type CliIo } from "./io.js";

export const CHECK_CONFIG_HELP = `Usage: matrix-otr-irc check-config -c <config.yaml>

Checks the configuration file and prints every problem at once, one per line, as
"path (line:col): expected X, got Y". Secret files named by *_file keys are read to check them.

Options:
  -c, --config <file>   configuration file (required)
  -h, --help            show this help

Exit status: 0 when the config is valid ("config OK"), 2 when it is not.
`;

/** Loads the config or prints its errors; shared by every command that takes -c. */
export function loadOrReport(path: string, io: CliIo): Config | null {
  const r = loadConfig(path, { env: io.env });
  if (r.ok) return r.config;
  io.err(`${path}: ${r.errors.length} error${r.errors.length === 1 ? "" : "s"}\n`);
  for (const e of r.errors) io.err(`  ${formatConfigError(e)}\n`);
  return null;
}

export async function checkConfigCommand(args: string[], io: CliIo): Promise<number> {
  const o = parseCommandArgs("check-config", args, { ...CONFIG_OPTION, ...HELP_OPTION });
  if (o.help) {
    io.out(CHECK_CONFIG_HELP);
    return EXIT_OK;
  }
  const path = required("check-config", o.config, "-c <config.yaml>");
  if (!loadOrReport(path, io)) return EXIT_USAGE;
  io.out("config OK\n");
  return EXIT_OK;
}
