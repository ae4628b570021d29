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
  const bad: UnsafeLabel[] = [];
  const needles = forbidden.map((f) => f.toLowerCase()).filter(Boolean);
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const v of metric.values as Array<{ labels: Record<string, string | number> }>) {
      for (const [label, raw] of Object.entries(v.labels)) {
        const value = String(raw);
        const lower = value.toLowerCase();
        // le/quantile are histogram/summary bucket bounds, not identifiers.
        if (label === "le" || label === "quantile") continue;
        let why: string | null = null;
        if (IDENTIFIER.test(value) && !/^v?\d+(\.\d+)*([-+].*)?$/.test(value)) why = "looks like a Matrix id or channel";
        const hit = needles.find((n) => lower === n || (n.length >= 4 && lower.includes(n)));
        if (hit) why = `contains ${JSON.stringify(hit)}`;
        if (why) bad.push({ metric: metric.name, label, value, why });
      }
    }
  }
  return bad;
}
