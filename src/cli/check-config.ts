// `check-config`: every problem in the file at once, one per line, exit 2 when there is any.

import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { formatConfigError, loadConfig, registrationProblems, type Config } from "../config/index.js";
import { CONFIG_OPTION, HELP_OPTION, parseCommandArgs, REGISTRATION_OPTION, required } from "./args.js";
import { EXIT_OK, EXIT_USAGE, type CliIo } from "./io.js";

export const CHECK_CONFIG_HELP = `Usage: matrix-otr-irc check-config -c <config.yaml> [-f <registration.yaml>]

Checks the configuration file and prints every problem at once, one per line, as
"path (line:col): expected X, got Y". Secret files named by *_file keys are read to check them.
With -f, also checks that the registration file fits the config (url, bot, ghost namespace, tokens).

Options:
  -c, --config <file>         configuration file (required)
  -f, --registration <file>   appservice registration file to check against the config
  -h, --help                  show this help

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

/** Reads the registration and prints what does not fit the config; true when it fits. */
export function checkRegistration(path: string, config: Config, io: CliIo): boolean {
  let reg: unknown;
  try {
    reg = parse(readFileSync(path, "utf8"));
  } catch (e) {
    io.err(`${path}: cannot read the registration: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message.split("\n")[0]}\n`);
    return false;
  }
  const problems = registrationProblems(config, reg);
  if (problems.length === 0) return true;
  io.err(`${path}: ${problems.length} problem${problems.length === 1 ? "" : "s"} with this config\n`);
  for (const p of problems) io.err(`  ${p}\n`);
  return false;
}

export async function checkConfigCommand(args: string[], io: CliIo): Promise<number> {
  const o = parseCommandArgs("check-config", args, { ...CONFIG_OPTION, ...REGISTRATION_OPTION, ...HELP_OPTION });
  if (o.help) {
    io.out(CHECK_CONFIG_HELP);
    return EXIT_OK;
  }
  const path = required("check-config", o.config, "-c <config.yaml>");
  const config = loadOrReport(path, io);
  if (!config) return EXIT_USAGE;
  if (o.registration !== undefined && !checkRegistration(o.registration, config, io)) return EXIT_USAGE;
  io.out(o.registration !== undefined ? "config OK, registration OK\n" : "config OK\n");
  return EXIT_OK;
}
