#!/usr/bin/env bash
# Builds every fuzz target and runs each for a bounded time over a copy of its seeds
# (fuzz/seeds/<target>/ stays clean; what the run adds is thrown away). CI calls this.
#
#   bash fuzz/smoke.sh                 # all targets, 15 s each
#   FUZZ_SECONDS=60 bash fuzz/smoke.sh vault_parse store_request
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). `--sanitizer none` works on
# stable Rust; set FUZZ_SANITIZER=address with a nightly toolchain for ASan.
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the script; replay it
# with `cargo fuzz run <target> fuzz/artifacts/<target>/crash-…`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-15}
sanitizer=${FUZZ_SANITIZER:-none}
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --sanitizer "$sanitizer"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
  corpus="$work/$target"
  mkdir -p "$corpus"
  if [ -d "fuzz/seeds/$target" ]; then
    cp fuzz/seeds/"$target"/* "$corpus"/
  fi
  printf '\n==== %s: %s s ====\n' "$target" "$seconds"
  # -timeout: one input taking longer than 10 s is a finding (a hostile file must not
  # make the helper spin); -rss_limit_mb: nor may it allocate gigabytes.
  if cargo fuzz run --sanitizer "$sanitizer" "$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    2>"$work/$target.log"; then
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/$target.log" || true
  else
    failed+=("$target")
    tail -n 40 "$work/$target.log"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  printf '\nFAILED: %s\n' "${failed[*]}" >&2
  exit 1
fi
printf '\nall %d targets ran %s s each without a crash\n' "${#targets[@]}" "$seconds"
