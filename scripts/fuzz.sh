#!/usr/bin/env bash
# Fuzzes agentd's parsers of untrusted input (run bodies, templates, data:
# URLs, input checking) with cargo-fuzz / libFuzzer, each target for a
# bounded time:
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 30 s, all)
#
# Every target starts from its seeds in fuzz/corpus/<target>/ and from what
# earlier runs found (fuzz/target/corpus/<target>/, not in git). A crash or a
# failed property stops that target; the script goes on with the others,
# then exits 1 naming each reproducer. Works on the stable toolchain:
# RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz passes.
#
# AGENTD_FUZZ_SANITIZER: address (default) or none (faster to build).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-30}"
shift || true
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
all_targets=(run_body template data_url input_check)
targets=("${all_targets[@]}")
if (($#)); then
    targets=("$@")
fi
sanitizer="${AGENTD_FUZZ_SANITIZER:-address}"

cargo_fuzz_version=0.13.1
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
    echo "== installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi
export RUSTC_BOOTSTRAP=1
# Debug assertions on: an integer overflow is a finding too.
fuzz_flags=(--sanitizer "$sanitizer" --debug-assertions)

echo "== building fuzz targets (sanitizer: $sanitizer)"
for target in "${targets[@]}"; do
    cargo fuzz build "${fuzz_flags[@]}" "$target"
done

failed=()
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds}s"
    found="target/corpus/$target"
    log="target/fuzz-$target.log"
    mkdir -p "$found"
    # -timeout: one input taking longer than 10 s is a finding (a hang).
    if cargo fuzz run "${fuzz_flags[@]}" "$target" "$found" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$log" | tail -1 || true
    else
        tail -n 40 "$log"
        reproducer="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | cut -d' ' -f5)"
        echo "!! $target failed; full log: fuzz/$log"
        if [[ -n "$reproducer" ]]; then
            reproducer="$(realpath --relative-to=. "$reproducer")"
            echo "!! reproducer: fuzz/$reproducer"
            echo "!! replay it:  cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run ${fuzz_flags[*]} $target $reproducer"
        fi
        failed+=("$target${reproducer:+ (fuzz/$reproducer)}")
    fi
done

if ((${#failed[@]})); then
    echo "== fuzzing found failures in: ${failed[*]}"
    exit 1
fi
echo "== fuzzing: no failure in ${targets[*]} (${seconds}s each)"
