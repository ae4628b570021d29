// Argument parsing shared by the commands: node's util.parseArgs, strict, with usage errors (exit 2) that say
// what was wrong and how to get help.

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./io.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

export const HELP_OPTION = { help: { type: "boolean", short: "h" } } as const satisfies Options;
export const CONFIG_OPTION = { config: { type: "string", short: "c" } } as const satisfies Options;
export const REGISTRATION_OPTION = { registration: { type: "string", short: "f" } } as const satisfies Options;

export function parseCommandArgs<O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message.split("\n")[0]}\nRun 'matrix-otr-irc ${command} --help' for usage.`);
  }
}

export function required(command: string, value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw new UsageError(`${command}: missing ${flag}\nRun 'matrix-otr-irc ${command} --help' for usage.`);
  return value;
}
