#!/usr/bin/env bash
# run.sh — installs what the headless-Chromium UI test needs and runs it, for CI and
# developers alike: Debian's chromium (when /usr/bin/chromium is missing; needs root) and
# playwright-core pinned by package-lock.json. Expects the server binary to be built
# (target/release/tickwire, or TICKWIRE_BIN). Run from anywhere: bash server/tests/browser/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM:-}" ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  npm ci --prefix "$here" --no-audit --no-fund
fi
cd "$repo"
exec node --test server/tests/browser/
