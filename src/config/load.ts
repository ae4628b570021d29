// Reads the YAML config, checks it against the schema and reports every problem at once, each pointing at a
// line and column of the file (the yaml package's LineCounter maps node offsets back to positions).

import { readFileSync } from "node:fs";
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from "yaml";
import { configSchema, type Config } from "./definition.js";
import type { CheckContext, Issue, PathSeg } from "./schema.js";

export interface ConfigError {
  /** Key path such as `networks[0].port`; empty for the document itself. */
  path: string;
  line: number;
  col: number;
  message: string;
}

export type ConfigResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

export interface ParseOptions {
  /** Environment to take secrets from; defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Reads `*_file` secrets; defaults to fs.readFileSync(path, "utf8"). Relative paths are relative to the working directory. */
  readFile?: (path: string) => string;
}

/** `networks[0].port`, `permissions["@a:b.org"]`. */
export function formatPath(path: readonly PathSeg[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** One line per error: `path (line:col): message`. */
export function formatConfigError(e: ConfigError): string {
  // Line 0: the problem is with the file as a whole (unreadable), there is no position to show.
  if (e.line === 0) return e.message;
  return `${e.path || "(document)"} (${e.line}:${e.col}): ${e.message}`;
}

interface Positions {
  value: Map<string, [number, number]>;
  key: Map<string, [number, number]>;
}

function collectPositions(doc: Document, lc: LineCounter): Positions {
  const pos: Positions = { value: new Map(), key: new Map() };
  const at = (n: Node | null | undefined): [number, number] | undefined => {
    if (!n?.range) return undefined;
    const p = lc.linePos(n.range[0]);
    return [p.line, p.col];
  };
  const seen = new Set<Node>();
  const walk = (node: unknown, path: PathSeg[]): void => {
    let n = node as Node | null;
    if (isAlias(n)) n = n.resolve(doc) ?? null;
    if (!n || seen.has(n)) return;
    const p = at(n);
    if (p) pos.value.set(formatPath(path), p);
    if (isMap(n)) {
      seen.add(n);
      for (const pair of n.items) {
        if (!isPair(pair)) continue;
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const kp = at(pair.key as Node);
        if (kp) pos.key.set(formatPath([...path, key]), kp);
        if (pair.value) walk(pair.value, [...path, key]);
        else if (kp) pos.value.set(formatPath([...path, key]), kp);
      }
      seen.delete(n);
    } else if (isSeq(n)) {
      seen.add(n);
      n.items.forEach((item, i) => walk(item, [...path, i]));
      seen.delete(n);
    }
  };
  walk(doc.contents, []);
  return pos;
}

function locate(pos: Positions, issue: Issue): [number, number] {
  const own = formatPath(issue.path);
  const direct = (issue.atKey ? pos.key.get(own) : undefined) ?? pos.value.get(own) ?? pos.key.get(own);
  if (direct) return direct;
  // Missing keys have no position of their own: point at the nearest enclosing value that exists.
  for (let i = issue.path.length - 1; i >= 0; i--) {
    const p = pos.value.get(formatPath(issue.path.slice(0, i)));
    if (p) return p;
  }
  return [1, 1];
}

export function parseConfig(text: string, sourceName = "config", opts: ParseOptions = {}): ConfigResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const p = lineCounter.linePos(e.pos[0]);
        return { path: "", line: p.line, col: p.col, message: `${sourceName}: invalid YAML: ${e.message.split("\n")[0]}` };
      }),
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { ok: false, errors: [{ path: "", line: 1, col: 1, message: `${sourceName}: ${(e as Error).message}` }] };
  }
  if (value === null || value === undefined) value = {};
  const ctx: CheckContext = {
    env: opts.env ?? process.env,
    readFile: opts.readFile ?? ((p) => readFileSync(p, "utf8")),
  };
  const issues: Issue[] = [];
  const config = configSchema.check(value, [], issues, ctx);
  if (issues.length || !config) {
    const pos = collectPositions(doc, lineCounter);
    const errors = issues.map((issue) => {
      const [line, col] = locate(pos, issue);
      return { path: formatPath(issue.path), line, col, message: issue.message };
    });
    errors.sort((a, b) => a.line - b.line || a.col - b.col);
    return { ok: false, errors };
  }
  return { ok: true, config };
}

export function loadConfig(path: string, opts: ParseOptions = {}): ConfigResult {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    return { ok: false, errors: [{ path: "", line: 0, col: 0, message: `cannot read config file ${path}: ${code}` }] };
  }
  return parseConfig(text, path, opts);
}
