#!/usr/bin/env bash
# Smoke-fuzzes every Larix fuzz target for a short while.
#
#   fuzz/run-smoke.sh [SECONDS_PER_TARGET]     (default 30)
#
# 1. `cargo test` of the fuzz crate: the committed seeds still decode and
#    every input under regressions/ replays without a panic (stable, fast).
# 2. Each target under libFuzzer (ASan, debug assertions) for SECONDS,
#    starting from corpus/<target> (grown, git-ignored), seeds/<target> and
#    regressions/<target> (committed, read-only to libFuzzer).
#
# Exits non-zero if a test fails or a target crashes, leaks, times out or
# runs out of memory; the crashing input is in fuzz/artifacts/<target>/.
# Works on the stable toolchain through RUSTC_BOOTSTRAP=1 and installs
# cargo-fuzz if it is missing. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-30}"
targets=(decode filters model)
# Extra libFuzzer flags per target. A model input runs at most 160
# operations of 4 bytes after its configuration byte; ASan's quarantine
# (256 MiB) keeps the model's RSS near 500 MiB, so it gets 1 GiB.
declare -A extra=([model]="-max_len=641 -rss_limit_mb=1024")
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

cargo test --quiet

failed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  dirs=("corpus/$target" "seeds/$target")
  if compgen -G "regressions/$target/*" >/dev/null; then
    dirs+=("regressions/$target")
  fi
  echo "== fuzzing $target for ${seconds}s"
  # shellcheck disable=SC2086 # the extra flags are split on purpose
  if ! cargo fuzz run --debug-assertions "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=512 -malloc_limit_mb=256 \
    -timeout=10 -print_final_stats=1 ${extra[$target]:-}; then
    failed+=("$target")
  fi
done

if ((${#failed[@]})); then
  echo "fuzz targets failed: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz smoke: ${#targets[@]} targets, ${seconds}s each, no crash"
