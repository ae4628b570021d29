// `npm run gen:config`: writes the sample config and the reference page from the schema.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderReference, renderSample } from "./render.js";

export const SAMPLE_PATH = fileURLToPath(new URL("../../config/config.sample.yaml", import.meta.url));
export const REFERENCE_PATH = fileURLToPath(new URL("../../docs/configuration.md", import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SAMPLE_PATH, renderSample());
  writeFileSync(REFERENCE_PATH, renderReference());
  console.log(`wrote ${SAMPLE_PATH} and ${REFERENCE_PATH}`);
}
