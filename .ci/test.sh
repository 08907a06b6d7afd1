#!/usr/bin/env bash
# The project's one test command (see README.md): installs what the tests need, then runs
# formatting and lint checks and every test of the workspace, in release mode so that the
# end-to-end tests run the server as it is deployed.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain"
cargo --version

echo "== system packages for the cluster tests (nats-server, haproxy)"
# The cluster tests (server/tests/cluster/) start a real nats-server and haproxy on
# loopback ports; they fail, never skip, when these are missing.
missing=()
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"
# The real client library runs under Node in the HAProxy failover test; Node has no
# global WebSocket, so the test-only package there brings `ws`.
npm ci --silent --no-audit --no-fund --prefix server/tests/cluster/js

echo "== format"
cargo fmt --all -- --check

echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
# Many sockets per test (200 clients, slow-consumer drills).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo test --workspace --release

echo "== JavaScript client library (node --test)"
node --test server/web/test/

echo "== a third-party WebSocket client (Python websockets) against the server"
python3 -m pip install --quiet --disable-pip-version-check "websockets>=13,<18" "pytest>=8,<10" "msgpack>=1,<2"
cargo build --release -p tickwire-server
python3 -m pytest -q server/tests/py

echo "== trading UI in headless Chromium"
cargo build --release -p tickwire-server
bash server/tests/browser/run.sh

echo "== fuzzing: every cargo-fuzz target for 30 s (docs/security.md#parsers-and-fuzzing)"
bash server/fuzz/run.sh 30
