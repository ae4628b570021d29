#!/usr/bin/env bash
# Runs every test suite (unit, store, interop, e2e) after installing what they need. As root, fresh Debian 12.
# Usage: bash scripts/test.sh [unit|store|interop|e2e ...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH="/usr/local/bin:$PATH"   # where install-deps puts Node 24 (ahead of an older system node)
npm run -s build
exec node test/run.mjs "$@"
