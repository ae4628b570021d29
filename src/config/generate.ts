// `npm run gen:config`: writes the sample config and the reference page from the schema.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderReference, renderSample } from "./render.js";
import { renderRegistrationExample } from "./registration.js";
import { parseConfig } from "./load.js";
import { renderMetricsReference } from "../metrics/reference.js";

export const SAMPLE_PATH = fileURLToPath(new URL("../../config/config.sample.yaml", import.meta.url));
export const REFERENCE_PATH = fileURLToPath(new URL("../../docs/configuration.md", import.meta.url));
export const REGISTRATION_EXAMPLE_PATH = fileURLToPath(new URL("../../registration.example.yaml", import.meta.url));

/** docs/configuration.md: the config reference, then the metrics the bridge serves. */
export function referenceText(): string {
  return `${renderReference()}\n${renderMetricsReference()}`;
}

/** The example registration, from the sample config (which must itself be valid). */
export function registrationExampleText(): string {
  const r = parseConfig(renderSample(), "config.sample.yaml", { env: {}, readFile: () => { throw Object.assign(new Error("no secrets in the sample"), { code: "ENOENT" }); } });
  if (!r.ok) throw new Error(`the sample config is invalid: ${r.errors.map((e) => e.message).join("; ")}`);
  return renderRegistrationExample(r.config);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SAMPLE_PATH, renderSample());
  writeFileSync(REFERENCE_PATH, referenceText());
  writeFileSync(REGISTRATION_EXAMPLE_PATH, registrationExampleText());
  console.log(`wrote ${SAMPLE_PATH}, ${REFERENCE_PATH} and ${REGISTRATION_EXAMPLE_PATH}`);
}
