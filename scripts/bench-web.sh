#!/usr/bin/env bash
# Web pages per second against a loopback site, built in release mode:
# static (guarded HTTP fetch + main-content extraction) and rendered in
# headless Chromium (without and with a full-page screenshot) at pool sizes
# 1, 2 and 4, and the browser's peak memory (summed RSS of the Chromium
# processes) at each pool size. Prints figures; run it on an idle machine.
# Needs Chromium (Debian's `chromium`, or AGENTD_CHROMIUM_PATH).
# Argument: pages per figure (default 40).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p agentd-web --example web-bench
exec target/release/examples/web-bench "$@"
