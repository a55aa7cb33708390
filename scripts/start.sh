#!/usr/bin/env bash
# Set up (idempotent) and start the frontend with one local worker on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec scripts/deno task start
