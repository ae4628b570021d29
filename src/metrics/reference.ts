// The metrics reference (a section of docs/configuration.md), rendered from a fresh registry so the documented
// names, types and labels are the ones the bridge serves.

import { createMetrics, PREFIX } from "./metrics.js";

export function renderMetricsReference(): string {
  const { registry } = createMetrics();
  const rows = registry
    .getMetricsAsArray()
    .map((m) => m as unknown as { name: string; help: string; type: string; labelNames: string[] })
    .filter((m) => m.name.startsWith(PREFIX))
    .map((m) => `| \`${m.name}\` | ${m.type} | ${m.labelNames.map((l) => `\`${l}\``).join(", ")} | ${m.help.replace(/\|/g, "\\|")} |`);
  return [
    "## Metrics served",
    "",
    "On the metrics listener: `/metrics` (Prometheus text format), `/health` (200 while the process serves) and",
    "`/ready` (200 when the homeserver answers, the store is open and the appservice listens; 503 otherwise, with",
    "the failing checks in the JSON body). Besides the bridge's own metrics below, the endpoint carries the",
    "process and Node.js default metrics (once) and matrix-appservice-bridge's own (`bridge_*`).",
    "Label values never identify a conversation: no Matrix ids, nicks, channels or room ids; network ids,",
    "directions, states, protocol versions and stable reason codes only.",
    "",
    "Example scrape config:",
    "",
    "```yaml",
    "scrape_configs:",
    "  - job_name: matrix-otr-irc",
    "    static_configs:",
    "      - targets: [\"127.0.0.1:9102\"]",
    "```",
    "",
    "| Metric | Type | Labels | Meaning |",
    "|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}
