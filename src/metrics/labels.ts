// Label hygiene. Metrics must not identify a conversation: no Matrix user or room ids, nicks or channel names in
// label values (issue 9). Label values come from fixed sets or stable reason codes; safeLabel() maps anything
// else to "other" so one careless call cannot mint a time series per user, and findUnsafeLabels() lets tests
// scan a whole registry for identifiers used during a run.

import type { Registry } from "prom-client";

const LABEL_SHAPE = /^[A-Za-z0-9_.\-]{1,48}$/;

/** A label value from a code-like string: kept when it looks like a code, "other" otherwise, "unknown" when absent. */
export function safeLabel(v: string | number | undefined | null): string {
  if (v === undefined || v === null || v === "") return "unknown";
  const s = String(v);
  return LABEL_SHAPE.test(s) ? s : "other";
}

// Matrix user/room/alias ids and IRC channel names, by their sigils.
const IDENTIFIER = /^[@!#+$&].*|.+:.+/;

export interface UnsafeLabel {
  metric: string;
  label: string;
  value: string;
  why: string;
}

/**
 * Every label value in the registry that looks like an identifier, or equals (case-insensitively) one of
 * `forbidden` (the nicks, user ids and room ids a test used), or contains one of them when it is 4+ characters.
 */
export async function findUnsafeLabels(registry: Registry, forbidden: readonly string[] = []): Promise<UnsafeLabel[]> {
  const triples: Array<[string, string, string]> = [];
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const v of metric.values as Array<{ labels: Record<string, string | number> }>) {
      for (const [label, raw] of Object.entries(v.labels)) triples.push([metric.name, label, String(raw)]);
    }
  }
  return check(triples, forbidden);
}

/** The same check on a scrape (Prometheus text format), for tests that read /metrics of a running bridge. */
export function findUnsafeLabelsInText(text: string, forbidden: readonly string[] = []): UnsafeLabel[] {
  const triples: Array<[string, string, string]> = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} \S+/.exec(line);
    if (!m) continue;
    for (const l of m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      triples.push([m[1]!, l[1]!, l[2]!.replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1")]);
    }
  }
  return check(triples, forbidden);
}

function check(triples: Array<[string, string, string]>, forbidden: readonly string[]): UnsafeLabel[] {
  const bad: UnsafeLabel[] = [];
  const needles = forbidden.map((f) => f.toLowerCase()).filter(Boolean);
  for (const [metric, label, value] of triples) {
    // le/quantile are histogram/summary bucket bounds, not identifiers.
    if (label === "le" || label === "quantile") continue;
    const lower = value.toLowerCase();
    let why: string | null = null;
    if (IDENTIFIER.test(value) && !/^v?\d+(\.\d+)*([-+].*)?$/.test(value)) why = "looks like a Matrix id or channel";
    const hit = needles.find((n) => lower === n || (n.length >= 4 && lower.includes(n)));
    if (hit) why = `contains ${JSON.stringify(hit)}`;
    if (why) bad.push({ metric, label, value, why });
  }
  return bad;
}
