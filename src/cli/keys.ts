// `keys import|export`: moves a user's OTR identity between the bridge's store and libotr clients. The work
// is src/bridge/keys-cli.ts's; this parses the command line, opens the configured store and reports.

import { readFile, writeFile } from "node:fs/promises";
import type { Config } from "../config/index.js";
import { CONFIG_OPTION, HELP_OPTION, parseCommandArgs, required } from "./args.js";
import { loadOrReport } from "./check-config.js";
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, UsageError, type CliIo } from "./io.js";

export const KEYS_HELP = `Usage: matrix-otr-irc keys <import|export> [options]

Moves a Matrix user's OTR identity (private key and known fingerprints) between the bridge and libotr
clients (pidgin, irssi, bitlbee), in libotr's own file formats.

Subcommands:
  import   read a libotr private-key file (and fingerprints file) into the store
  export   write the stored key (and fingerprints) as libotr files

Run 'matrix-otr-irc keys <subcommand> --help' for its options.
`;

const COMMON_OPTIONS = `  -c, --config <file>        configuration file (required)
  -u, --user <@user:server>  Matrix user whose identity it is (required)
  -n, --network <id>         network id from the config (required)
  -k, --private-key <file>   libotr private-key file (required)
      --fingerprints <file>  libotr fingerprints file`;

export const KEYS_IMPORT_HELP = `Usage: matrix-otr-irc keys import -c <config.yaml> -u <@user:server> -n <network> -k <otr.private_key> [--fingerprints <otr.fingerprints>] [--account <name>]

Stores the key for the user on that network and records the peers' fingerprints (any non-empty libotr trust
counts as verified). A user's key is never replaced: importing a different key than the stored one fails.

Options:
${COMMON_OPTIONS}
      --account <name>       which account of the key file, when it holds several
  -h, --help                 show this help

Exit status: 0 when imported, 2 on a usage, config or input-file error, 1 when the store refuses (another key).
`;

export const KEYS_EXPORT_HELP = `Usage: matrix-otr-irc keys export -c <config.yaml> -u <@user:server> -n <network> -k <otr.private_key> [--fingerprints <otr.fingerprints>] [--account <name>] [--protocol <name>]

Writes the user's key on that network (and, with --fingerprints, the peers' fingerprints) as libotr files,
mode 0600. Existing files are never overwritten.

Options:
${COMMON_OPTIONS}
      --account <name>       account name to write (what the target client calls the account)
      --protocol <name>      protocol name to write (pidgin: prpl-irc, irssi: IRC)
  -h, --help                 show this help

Exit status: 0 when written, 2 on a usage or config error or an existing file, 1 when there is no key.
`;

// Problems with what the operator passed (fix the invocation) rather than with the store's state.
const USAGE_CODES = new Set(["unreadable-file", "bad-key-file", "no-such-account", "ambiguous-account", "file-exists"]);

const OPTIONS = {
  ...CONFIG_OPTION,
  ...HELP_OPTION,
  user: { type: "string", short: "u" },
  network: { type: "string", short: "n" },
  "private-key": { type: "string", short: "k" },
  fingerprints: { type: "string" },
  account: { type: "string" },
} as const;

export async function keysCommand(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    (sub === undefined ? io.err : io.out)(KEYS_HELP);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (sub !== "import" && sub !== "export") throw new UsageError(`keys: unknown subcommand ${JSON.stringify(sub)}\n\n${KEYS_HELP}`);
  const name = `keys ${sub}`;
  const o = sub === "export"
    ? parseCommandArgs(name, rest, { ...OPTIONS, protocol: { type: "string" } })
    : parseCommandArgs(name, rest, OPTIONS);
  if (o.help) {
    io.out(sub === "import" ? KEYS_IMPORT_HELP : KEYS_EXPORT_HELP);
    return EXIT_OK;
  }
  const configPath = required(name, o.config, "-c <config.yaml>");
  const userId = required(name, o.user, "-u <@user:server>");
  const networkId = required(name, o.network, "-n <network>");
  const privateKeyFile = required(name, o["private-key"], "-k <private key file>");
  if (!/^@[^:]+:.+$/.test(userId)) throw new UsageError(`${name}: ${JSON.stringify(userId)} is not a Matrix user id (@user:server)`);
  const config = loadOrReport(configPath, io);
  if (!config) return EXIT_USAGE;
  if (!config.networks.some((n) => n.id === networkId)) {
    io.err(`${name}: no network ${JSON.stringify(networkId)} in ${configPath}; configured: ${config.networks.map((n) => n.id).join(", ")}\n`);
    return EXIT_USAGE;
  }
  const fingerprintsFile = o.fingerprints;
  const account = o.account;
  const protocol = "protocol" in o ? (o.protocol as string | undefined) : undefined;

  const keys = await import("../bridge/keys-cli.js");
  const store = await openStore(config, io);
  try {
    if (sub === "import") {
      const r = await keys.importIdentity(
        { userId, networkId, privateKeyFile, ...(fingerprintsFile !== undefined ? { fingerprintsFile } : {}), ...(account !== undefined ? { account } : {}) },
        { store, readFile: (p, enc) => readFile(p, enc) },
      );
      io.out(
        `${r.key === "imported" ? "imported" : "already present:"} OTR key of ${userId} on ${networkId} ` +
          `(account ${JSON.stringify(r.account)}, protocol ${JSON.stringify(r.protocol)}), fingerprint ${r.fingerprint}\n`,
      );
      if (fingerprintsFile !== undefined) {
        const f = r.fingerprints;
        io.out(
          `fingerprints: ${f.recorded} recorded, ${f.verified} verified, ${f.otherAccounts} of other accounts skipped` +
            (f.malformedLines.length ? `, malformed lines skipped: ${f.malformedLines.join(", ")}` : "") + "\n",
        );
      }
    } else {
      const r = await keys.exportIdentity(
        {
          userId, networkId, privateKeyFile,
          ...(fingerprintsFile !== undefined ? { fingerprintsFile } : {}),
          ...(account !== undefined ? { account } : {}),
          ...(protocol !== undefined ? { protocol } : {}),
        },
        { store, writeFile: (p, data, opts) => writeFile(p, data, opts) },
      );
      io.out(`wrote the OTR key of ${userId} on ${networkId} to ${privateKeyFile} (account ${JSON.stringify(r.account)}, protocol ${JSON.stringify(r.protocol)}), fingerprint ${r.fingerprint}\n`);
      if (fingerprintsFile !== undefined) io.out(`wrote ${r.fingerprints} fingerprint${r.fingerprints === 1 ? "" : "s"} to ${fingerprintsFile}\n`);
    }
    return EXIT_OK;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    io.err(`${name}: ${(e as Error).message}${typeof code === "string" ? ` (${code})` : ""}\n`);
    return typeof code === "string" && USAGE_CODES.has(code) ? EXIT_USAGE : EXIT_RUNTIME;
  } finally {
    await store.close();
  }
}

async function openStore(config: Config, io: CliIo) {
  const { openConfiguredStore } = await import("../store/index.js");
  return (await openConfiguredStore(config.store, io.env as NodeJS.ProcessEnv)).store;
}
