#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30) from freshly generated
# seed corpora. Exits non-zero on the first crash, leaving the crashing input under
# target/fuzz/artifacts/TARGET/. Longer runs: see docs/security.md ("Fuzzing").
#
#   server/fuzz/run.sh 30                 # every target, 30 s each (what CI runs)
#   server/fuzz/run.sh 600 ws_inbound     # one target, 10 minutes
#
# Works on a stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags
# (sanitizer coverage, AddressSanitizer).
set -euo pipefail
SECONDS_PER_TARGET=${1:-30}
shift || true
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
feeds="$root/../shared/real-feeds"
work="$root/target/fuzz"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cd "$here" && cargo fuzz list --fuzz-dir "$here")
fi

echo "== fuzz: seeds into $work/corpus"
rm -rf "$work/corpus"
(cd "$root" && cargo run --quiet --release -p tickwire-feeds --example fuzz_seeds -- "$work/corpus" "$feeds")

echo "== fuzz: building ${targets[*]}"
for t in "${targets[@]}"; do
  (cd "$here" && cargo fuzz build --fuzz-dir "$here" -O "$t")
done

failed=0
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  echo "== fuzz: $t for ${SECONDS_PER_TARGET}s ($(ls "$work/corpus/$t" | wc -l) seeds)"
  if ! (cd "$here" && cargo fuzz run --fuzz-dir "$here" -O "$t" "$work/corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 2>"$work/$t.log"); then
    echo "fuzz target $t FAILED; input and log:"
    ls -l "$work/artifacts/$t/"
    tail -40 "$work/$t.log"
    failed=1
    break
  fi
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)" "$work/$t.log" || true
done
if [[ $failed -ne 0 ]]; then
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets ran ${SECONDS_PER_TARGET}s each with no crash"
