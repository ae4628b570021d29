// `generate-registration`: writes the appservice registration for the homeserver, from the config, with fresh
// random tokens. Refuses to replace an existing file unless --force: replacing it changes the tokens, and the
// homeserver keeps using the old ones until it is restarted with the new file.

import { writeFileSync } from "node:fs";
import { buildRegistration, renderRegistration } from "../config/index.js";
import { CONFIG_OPTION, HELP_OPTION, parseCommandArgs, REGISTRATION_OPTION, required } from "./args.js";
import { loadOrReport } from "./check-config.js";
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, type CliIo } from "./io.js";

export const GENERATE_REGISTRATION_HELP = `Usage: matrix-otr-irc generate-registration -c <config.yaml> -f <registration.yaml> [--force]

Writes the appservice registration file for the homeserver: id, url (appservice.url), sender_localpart
(appservice.bot_localpart), an exclusive user namespace derived from appservice.ghost_localpart_template,
and new random as_token and hs_token. List the file in Synapse's app_service_config_files and restart Synapse;
start the bridge with the same file.

Options:
  -c, --config <file>         configuration file (required)
  -f, --registration <file>   registration file to write (required)
      --force                 replace an existing registration file (new tokens: restart the homeserver too)
  -h, --help                  show this help

Exit status: 0 when written, 2 on a usage or config error (or an existing file without --force), 1 when the
file cannot be written.
`;

export async function generateRegistrationCommand(args: string[], io: CliIo): Promise<number> {
  const o = parseCommandArgs("generate-registration", args, {
    ...CONFIG_OPTION,
    ...REGISTRATION_OPTION,
    force: { type: "boolean" },
    ...HELP_OPTION,
  });
  if (o.help) {
    io.out(GENERATE_REGISTRATION_HELP);
    return EXIT_OK;
  }
  const configPath = required("generate-registration", o.config, "-c <config.yaml>");
  const regPath = required("generate-registration", o.registration, "-f <registration.yaml>");
  const config = loadOrReport(configPath, io);
  if (!config) return EXIT_USAGE;
  const text = renderRegistration(buildRegistration(config), [
    `Appservice registration for matrix-otr-irc, generated from ${configPath}.`,
    "It holds secrets (as_token, hs_token): keep it readable by the homeserver and the bridge only.",
  ]);
  try {
    // wx: never truncate a file someone else just created between a check and the write.
    writeFileSync(regPath, text, { mode: 0o600, flag: o.force ? "w" : "wx" });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      io.err(`${regPath} already exists; pass --force to replace it (the homeserver must then be restarted with the new file)\n`);
      return EXIT_USAGE;
    }
    io.err(`cannot write ${regPath}: ${code ?? (e as Error).message}\n`);
    return EXIT_RUNTIME;
  }
  io.out(`wrote ${regPath}\nAdd it to the homeserver's app_service_config_files, restart the homeserver, then start the bridge with -f ${regPath}\n`);
  return EXIT_OK;
}
