#!/usr/bin/env bash
# Builds the agentd binary exactly as the Dockerfile does and copies it to
# OUT (default dist/agentd). The test suite runs this same script with
# `--profile dev` (a debug build it needs anyway), so a Dockerfile step that
# no longer builds fails the suite without a 10-minute release build in CI.
#   scripts/build-release.sh [--profile release|dev] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
if [ "${1:-}" = "--profile" ]; then
    profile="$2"
    shift 2
fi
out="${1:-dist/agentd}"

# --locked: the image builds from Cargo.lock as committed, never a newer crate.
cargo build --locked --profile "$profile" -p agentd --bin agentd
case "$profile" in
    dev) dir=debug ;;
    *) dir="$profile" ;;
esac
mkdir -p "$(dirname "$out")"
cp "target/$dir/agentd" "$out"
echo "build-release: $out ($profile)"
