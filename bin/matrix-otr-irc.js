#!/usr/bin/env -S node --max-semi-space-size=16
// Thin launcher: the compiled CLI lives in dist/ (npm run build).
// --max-semi-space-size=16: Node 24 lets V8's young generation grow to 128 MiB on a machine this size, and the
// bridge's steady allocation (IRC lines, Matrix events, OTR messages) kept it there: at 300 users it was 96 of the
// 165 MiB the bridge grew by. 16 MiB semi-spaces (Node 20's default) cost no measurable CPU (docs/performance.md).
// Anything that starts the bridge should start this file, or give node the same flags (bench/bridge-ours.ts
// reads them from the line above).
import "../dist/cli.js";
