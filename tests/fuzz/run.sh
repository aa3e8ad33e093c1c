#!/usr/bin/env bash
# Runs each libFuzzer target for FUZZ_SECONDS (default 60) on its checked-in
# corpus, tests/fuzz/corpus/<target>/: every file there (the seeds and each
# crasher found so far, kept as a regression input) runs first, then the
# fuzzer explores from them. New inputs go to a scratch directory, not the
# checked-in corpus. A crash, a leak, a hang past -timeout or an allocation
# past -malloc_limit_mb fails the run; the input is saved under
# BUILD_DIR/artifacts/ to reproduce (`BUILD_DIR/<target> FILE`) and, once
# fixed, to keep in the corpus.
#
#   run.sh BUILD_DIR [TARGET...]     (default: every target)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: run.sh BUILD_DIR [TARGET...]}
shift
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(run_request_fuzzer config_fuzzer scheduler_fuzzer log_fuzzer
    wire_fuzzer)
fi
seconds=${FUZZ_SECONDS:-60}
mkdir -p "$build/artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

for target in "${targets[@]}"; do
  name=${target%_fuzzer}
  corpus=tests/fuzz/corpus/$name
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
        -malloc_limit_mb=256 -print_final_stats=1
        -artifact_prefix="$build/artifacts/$name-")
  case $name in
    # Room for small images and data, well under every task's limit.
    run_request) args+=(-max_len=65536) ;;
    config) args+=(-dict=tests/fuzz/config.dict) ;;
    # Inputs go behind 64 KiB of padding (see wire_fuzzer.cc).
    wire) args+=(-max_len=4096) ;;
  esac
  mkdir -p "$scratch/$name"
  echo "=== fuzz: $target for ${seconds}s on $corpus"
  # The wall-clock bound is a backstop for a fuzzer that cannot stop.
  if ! timeout $((seconds + 120)) "$build/$target" "${args[@]}" \
    "$scratch/$name" "$corpus" 2>"$scratch/$name.log"; then
    tail -n 60 "$scratch/$name.log"
    echo "=== fuzz: $target FAILED; the input is in $build/artifacts/" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' \
    "$scratch/$name.log" | sed "s/^/  $target: /"
  grep -E '^#[0-9]+.*DONE' "$scratch/$name.log" | tail -1 | sed "s/^/  $target: /"
done
