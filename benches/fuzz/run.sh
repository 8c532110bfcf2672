#!/usr/bin/env bash
# Fuzzes strata's parsers of untrusted input: builds the libFuzzer targets in fuzz/ and runs
# each for SECONDS (default 60), or only the TARGETs named. New inputs go to a scratch corpus
# (the committed seeds in fuzz/corpus/<target> stay as they are); a crash, panic, leak or
# timeout is saved under fuzz/artifacts/<target>/ and makes the script exit 1.
#
#   benches/fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (cargo install cargo-fuzz --locked) and a nightly toolchain for the
# sanitizer flags; without one, the stable toolchain is used with RUSTC_BOOTSTRAP=1.
# STRATA_FUZZ_QUICK=1 builds in a fraction of the time, as CI does: the dev profile (debug
# assertions, no optimization) and no AddressSanitizer, which safe Rust needs little of.
set -euo pipefail
cd "$(dirname "$0")/../../fuzz"
seconds=${1:-60}
shift || true

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz not found: cargo install cargo-fuzz --locked" >&2; exit 2; }
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

# The scratch corpora and what the targets write (layouts, unpacked tars) go here.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TMPDIR=$work

targets=("$@")
((${#targets[@]})) || mapfile -t targets < <("${fuzz[@]}" list)
host=$(rustc -vV | sed -n 's/^host: //p')
if [[ ${STRATA_FUZZ_QUICK:-} == 1 ]]; then
  "${fuzz[@]}" build --dev --sanitizer none
  bin=target/$host/debug
else
  "${fuzz[@]}" build
  bin=target/$host/release
fi

failed=()
for target in "${targets[@]}"; do
  scratch=$(mktemp -d)
  echo "== $target: ${seconds}s"
  mkdir -p "artifacts/$target"
  if ! "$bin/$target" "$scratch" "corpus/$target" -artifact_prefix="artifacts/$target/" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$scratch.log" 2>&1; then
    failed+=("$target")
    tail -n 40 "$scratch.log" >&2
  else
    grep -E '^stat::number_of_executed_units|^Done' "$scratch.log" || true
  fi
  rm -rf "$scratch" "$scratch.log"
done

if ((${#failed[@]})); then
  echo "fuzzing found crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
