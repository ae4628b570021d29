// The command dispatcher: `matrix-otr-irc <command> [options]`. Returns the exit status instead of exiting, so
// tests run commands in process.

import { readFileSync } from "node:fs";
import { checkConfigCommand } from "./check-config.js";
import { generateRegistrationCommand } from "./generate-registration.js";
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, UsageError, type CliIo } from "./io.js";
import { keysCommand } from "./keys.js";
import { startCommand } from "./start.js";
import { storeCommand } from "./store.js";

export const MAIN_HELP = `Usage: matrix-otr-irc <command> [options]

A Matrix application service that bridges IRC and speaks OTR to IRC users for each Matrix user.

Commands:
  start                    run the bridge (-c config.yaml -f registration.yaml)
  generate-registration    write the appservice registration for the homeserver (-c config.yaml -f registration.yaml)
  check-config             check a configuration file and print every problem (-c config.yaml)
  store rotate-master-key  re-seal the store's secrets under a new master key (-c config.yaml)
  keys import|export       move a user's OTR key and fingerprints between the store and libotr files

Run 'matrix-otr-irc <command> --help' for a command's options. Configuration reference: docs/configuration.md.
Exit status: 0 ok, 1 runtime failure, 2 usage or configuration error.
`;

const COMMANDS: Record<string, (args: string[], io: CliIo) => Promise<number>> = {
  start: startCommand,
  "generate-registration": generateRegistrationCommand,
  "check-config": checkConfigCommand,
  store: storeCommand,
  keys: keysCommand,
};

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    io.err(MAIN_HELP);
    return EXIT_USAGE;
  }
  if (command === "--help" || command === "-h" || command === "help") {
    io.out(MAIN_HELP);
    return EXIT_OK;
  }
  if (command === "--version" || command === "-V") {
    io.out(`matrix-otr-irc ${version()}\n`);
    return EXIT_OK;
  }
  const run = COMMANDS[command];
  if (!run) {
    io.err(`unknown command ${JSON.stringify(command)}\n\n${MAIN_HELP}`);
    return EXIT_USAGE;
  }
  try {
    return await run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`${e.message}\n`);
      return EXIT_USAGE;
    }
    io.err(`${command} failed: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_RUNTIME;
  }
}
