#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for SECONDS seconds each,
# one after another, growing fuzz/corpus/<target>/. See docs/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 60 s, every target
#
# Installs cargo-fuzz when it is missing. cargo-fuzz needs nightly flags; on
# the stable toolchain RUSTC_BOOTSTRAP=1 allows them. SANITIZER (default
# "none": the crates are safe Rust, and ASan halves the executions) may be
# "address". Logs go to ${FUZZ_LOG_DIR:-/tmp}/fuzz-<target>.log; a crash
# stops that target and is saved under fuzz/artifacts/<target>/.
#
# New inputs collect in ${FUZZ_WORK_DIR:-/tmp/portcullis-fuzz}/<target>/;
# afterwards only those that add coverage are merged into fuzz/corpus/<target>/
# (libFuzzer -merge=1), so the committed corpus stays small. Review and commit
# what was added.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true
sanitizer="${SANITIZER:-none}"
log_dir="${FUZZ_LOG_DIR:-/tmp}"
work_dir="${FUZZ_WORK_DIR:-/tmp/portcullis-fuzz}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --sanitizer "$sanitizer"
status=0
for target in "${targets[@]}"; do
  scratch="$work_dir/$target"
  mkdir -p "corpus/$target" "$scratch"
  log="$log_dir/fuzz-$target.log"
  echo "== $target: ${seconds}s, log $log"
  # New inputs go to the scratch directory; the committed corpus and the
  # regressions are read as seeds.
  dirs=("$scratch" "corpus/$target")
  [ -d "regressions/$target" ] && dirs+=("regressions/$target")
  if cargo fuzz run --sanitizer "$sanitizer" "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec' "$log" || true
    cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" "$scratch" -- \
      -merge=1 >"$log_dir/fuzz-$target-merge.log" 2>&1 ||
      echo "!! merging into corpus/$target failed; see $log_dir/fuzz-$target-merge.log"
  else
    status=1
    echo "!! $target failed; see $log and fuzz/artifacts/$target/"
    tail -n 30 "$log"
  fi
done
exit $status
