#!/usr/bin/env bash
# Main-content quality and speed: body-text F1 (word 4-shingles, as
# scrapinghub/article-extraction-benchmark scores it) and pages/s,
# single-threaded, for agentd's extractor and the candidate crates it was
# chosen from. Prints figures; asserts nothing.
#
#   scripts/bench-web-content.sh            # the 61 pages saved in crates/agentd-web/tests/pages
#   scripts/bench-web-content.sh DIR        # another copy with the same layout, e.g. all 181 pages
#                                           # of a checkout of article-extraction-benchmark
# BENCH_ONLY=agentd limits the rows; BENCH_WORST=1 lists each extractor's worst pages.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --manifest-path crates/agentd-web-bench/Cargo.toml --target-dir target
exec target/release/agentd-web-bench "$@"
