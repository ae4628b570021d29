// Renders the schema as the commented sample config and as the Markdown reference. Both are committed and a
// unit test regenerates them, so the files cannot drift from the schema.

import { stringify } from "yaml";
import { configSchema } from "./definition.js";
import {
  ArraySchema,
  DefaultSchema,
  ObjectSchema,
  OptionalSchema,
  RecordSchema,
  SecretSchema,
  type Schema,
} from "./schema.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- rendering walks any object shape
type AnyObjectSchema = ObjectSchema<any>;

interface Unwrapped {
  inner: Schema<unknown>;
  optional: boolean;
  hasDefault: boolean;
  defaultValue: unknown;
}

function unwrap(s: Schema<unknown>): Unwrapped {
  if (s instanceof OptionalSchema) return { ...unwrap(s.inner), optional: true };
  if (s instanceof DefaultSchema) return { ...unwrap(s.inner), hasDefault: true, defaultValue: s.defaultValue };
  return { inner: s, optional: false, hasDefault: false, defaultValue: undefined };
}

function docOf(s: Schema<unknown>): string {
  return s.doc || unwrap(s).inner.doc;
}

function exampleOf(s: Schema<unknown>): unknown {
  return s.exampleValue ?? unwrap(s).inner.exampleValue;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

function scalar(v: unknown): string {
  return stringify(v).trimEnd();
}

const SAMPLE_HEADER = `# matrix-otr-irc configuration (sample).
# Generated from src/config/definition.ts by \`npm run gen:config\`; do not edit by hand.
# Reference: docs/configuration.md. Check a config with: matrix-otr-irc check-config -c config.yaml
# Relative paths are relative to the working directory of the bridge.
`;

/** The commented sample: required keys with example values, defaults spelled out, optional keys commented out. */
export function renderSample(): string {
  const lines: string[] = [];
  renderFields(configSchema, "", lines);
  return `${SAMPLE_HEADER}\n${lines.join("\n").replace(/\n{3,}/g, "\n\n")}\n`;
}

// Inside a commented-out optional section, its optional keys that have an example are shown as if set, so
// uncommenting the section gives a working block.
function renderFields(schema: AnyObjectSchema, indent: string, out: string[], inOptional = false): void {
  let first = true;
  for (const [key, field] of Object.entries(schema.shape as Record<string, Schema<unknown>>)) {
    if (field instanceof SecretSchema) continue;
    // Blank lines between top-level sections only; nested keys stay compact.
    if (!indent && !first) out.push("");
    first = false;
    renderField(key, field, indent, out, inOptional);
  }
}

function renderField(key: string, field: Schema<unknown>, indent: string, out: string[], inOptional: boolean): void {
  const u = unwrap(field);
  const commented = u.optional && !(inOptional && exampleOf(field) !== undefined);
  const doc = docOf(field);
  const notes: string[] = [];
  if (u.hasDefault && !(u.inner instanceof ObjectSchema)) notes.push(`Default: ${scalar(u.defaultValue).replace(/\n/g, " ")}.`);
  else if (u.optional) notes.push("Optional.");
  else if (!u.hasDefault) notes.push("Required.");
  for (const l of wrap(`${doc} ${notes.join(" ")}`.trim(), 100 - indent.length - 2)) out.push(`${indent}# ${l}`);
  const body: string[] = [];
  const k = scalar(key);
  const example = exampleOf(field);
  if (u.inner instanceof ObjectSchema) {
    body.push(`${indent}${k}:`);
    renderFields(u.inner, indent + "  ", body, inOptional || u.optional);
  } else if (u.inner instanceof ArraySchema && u.inner.item instanceof ObjectSchema) {
    body.push(`${indent}${k}:`);
    const item: string[] = [];
    renderFields(u.inner.item, indent + "    ", item, inOptional || u.optional);
    // The first key line of the item carries the list dash; comments above it stay aligned with the keys.
    const firstKey = item.findIndex((l) => !l.trimStart().startsWith("#"));
    item.forEach((l, i) => body.push(i === firstKey ? `${indent}  - ${l.slice(indent.length + 4)}` : l));
  } else if (u.inner instanceof RecordSchema || u.inner instanceof ArraySchema) {
    const v = example ?? u.defaultValue ?? (u.inner instanceof ArraySchema ? [] : {});
    const isEmpty = Array.isArray(v) ? v.length === 0 : Object.keys(v as object).length === 0;
    if (isEmpty) body.push(`${indent}${k}: ${Array.isArray(v) ? "[]" : "{}"}`);
    else {
      body.push(`${indent}${k}:`);
      for (const l of stringify(v).trimEnd().split("\n")) body.push(`${indent}  ${l}`);
    }
  } else {
    const v = example ?? u.defaultValue;
    body.push(v === undefined ? `${indent}${k}:` : `${indent}${k}: ${scalar(v)}`);
  }
  // Optional keys are shown, commented out, so the sample stays valid and still teaches every key.
  if (commented) for (const l of body) out.push(`${indent}# ${l.slice(indent.length)}`);
  else out.push(...body);
}

interface Row {
  key: string;
  type: string;
  dflt: string;
  doc: string;
}

function collectRows(schema: AnyObjectSchema, prefix: string, rows: Row[]): void {
  for (const [key, field] of Object.entries(schema.shape as Record<string, Schema<unknown>>)) {
    if (field instanceof SecretSchema) continue;
    const u = unwrap(field);
    const path = prefix ? `${prefix}.${key}` : key;
    const dflt = u.hasDefault && !(u.inner instanceof ObjectSchema) ? `\`${scalar(u.defaultValue).replace(/\n/g, " ")}\`` : u.optional ? "optional" : u.hasDefault ? "" : "**required**";
    if (u.inner instanceof ObjectSchema) {
      rows.push({ key: path, type: "map", dflt: u.optional ? "optional" : u.hasDefault ? "" : "**required**", doc: docOf(field) });
      collectRows(u.inner, path, rows);
    } else if (u.inner instanceof ArraySchema && u.inner.item instanceof ObjectSchema) {
      rows.push({ key: path, type: `list of maps (at least ${u.inner.minItems})`, dflt, doc: docOf(field) });
      collectRows(u.inner.item, `${path}[]`, rows);
    } else {
      rows.push({ key: path, type: u.inner.typeName, dflt, doc: docOf(field) });
    }
  }
}

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** The Markdown reference, one table per top-level section. */
export function renderReference(): string {
  const out: string[] = [
    "# Configuration reference",
    "",
    "<!-- Generated from src/config/definition.ts by `npm run gen:config`; do not edit by hand. -->",
    "",
    "The bridge reads one YAML file (`-c config.yaml`). Keys are snake_case. A commented sample is in",
    "[`config/config.sample.yaml`](../config/config.sample.yaml). `matrix-otr-irc check-config -c config.yaml`",
    "prints every problem at once, one per line, as `path (line:col): expected X, got Y`, and exits with status 2",
    "when there is any. Unknown keys are errors (with a hint when a key was misspelt or renamed). Relative paths",
    "are relative to the bridge's working directory.",
    "",
    "## Secrets",
    "",
    "Secrets are never written inline: keys ending in `_file` name a file whose content (without a trailing",
    "newline) is read when the config is loaded; an unreadable or empty file is a config error. Some secrets may",
    "come from the environment instead:",
    "",
    "| Variable | Replaces |",
    "|---|---|",
    "| `MATRIX_OTR_IRC_MASTER_KEY` | `store.master_key_file` (32 bytes as 64 hex digits or base64) |",
    "| `MATRIX_OTR_IRC_POSTGRES_URL` | `store.postgres_url_file` |",
    "",
    "When neither `MATRIX_OTR_IRC_MASTER_KEY` nor the master key file exists, the bridge creates the file (mode 0600)",
    "on first start. Keep it: the store's sealed secrets cannot be read without it.",
    "",
    "## Checking, registering, reloading",
    "",
    "- `matrix-otr-irc check-config -c config.yaml [-f registration.yaml]` checks the file (and that the",
    "  registration fits it: url, bot localpart, ghost namespace, real tokens). Exit status 0 or 2.",
    "- `matrix-otr-irc generate-registration -c config.yaml -f registration.yaml` writes the registration for the",
    "  homeserver (random tokens; exclusive user namespace derived from `appservice.ghost_localpart_template`,",
    "  e.g. `^@irc_.+_.+:example\\.org$`). It never replaces a file without `--force`.",
    "- `start` refuses a registration that does not fit the config. On SIGHUP the bridge re-reads the file and",
    "  applies `permissions` and `logging` at once; it logs which other sections changed and need a restart.",
    "  A file that no longer checks is ignored (the running config stays).",
    "",
    "## Permissions",
    "",
    "`permissions` maps `\"*\"`, a server name or a Matrix user id to `user` or `admin`. For a user, the most",
    "specific key that matches decides: their user id, else their server name, else `\"*\"`; with none, the user",
    "may not use the bridge (one polite refusal). The default is empty: nobody.",
    "",
  ];
  for (const [section, field] of Object.entries(configSchema.shape)) {
    const rows: Row[] = [];
    collectRows({ shape: { [section]: field } } as unknown as AnyObjectSchema, "", rows);
    // The section's own row repeats the paragraph above the table.
    if (rows[0]) rows[0].doc = "";
    out.push(`## \`${section}\``, "", docOf(field) || "", "", "| Key | Type | Default | Description |", "|---|---|---|---|");
    for (const r of rows) out.push(`| \`${r.key}\` | ${cell(r.type)} | ${cell(r.dflt)} | ${cell(r.doc)} |`);
    out.push("");
  }
  return out.join("\n").replace(/\n{3,}/g, "\n\n");
}
