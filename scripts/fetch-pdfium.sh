#!/usr/bin/env bash
# Puts the PDFium library at ${AGENTD_DATA_DIR:-./data}/lib/libpdfium.so,
# where the server finds it (AGENTD_PDFIUM_PATH overrides the location).
# The library ships inside the PyPI wheel `pypdfium2` (PDFium build 8149);
# pip downloads the wheel, its SHA-256 is checked against a pinned value, and
# `pypdfium2_raw/libpdfium.so` is taken out of it (a wheel is a zip) and moved
# into place atomically. No Python is needed at run time. Does nothing when
# the library is already there.
set -euo pipefail

PACKAGE="pypdfium2==5.15.2"
MEMBER="pypdfium2_raw/libpdfium.so"
FILE="libpdfium.so"

# Wheels are per platform; each one's hash is pinned.
case "$(uname -s)-$(uname -m)" in
    Linux-x86_64)
        PLATFORM="manylinux_2_17_x86_64"
        WHEEL_SHA256="dc31aea5b0fb9fefc9b537a65f4113980b2c40798445736a7e6565bc85161e37"
        ;;
    *)
        echo "fetch-pdfium: no pinned pypdfium2 wheel for $(uname -s)-$(uname -m);" >&2
        echo "fetch-pdfium: put a libpdfium.so (PDFium build 8149 or close) at AGENTD_PDFIUM_PATH" >&2
        exit 1
        ;;
esac

lib_dir="${AGENTD_DATA_DIR:-./data}/lib"
target="$lib_dir/$FILE"

if [ -s "$target" ]; then
    exit 0
fi

mkdir -p "$lib_dir"
# The temporary folder sits next to the target so the final rename stays on
# one file system (and therefore atomic).
work="$(mktemp -d "$lib_dir/.fetch-pdfium.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "fetch-pdfium: downloading $PACKAGE ($PLATFORM) from PyPI"
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    --only-binary=:all: --platform "$PLATFORM" "$PACKAGE" -d "$work"
wheel="$(find "$work" -maxdepth 1 -name '*.whl' | head -n 1)"
if [ -z "$wheel" ]; then
    echo "fetch-pdfium: pip did not produce a wheel for $PACKAGE" >&2
    exit 1
fi

actual="$(sha256sum "$wheel" | cut -d' ' -f1)"
if [ "$actual" != "$WHEEL_SHA256" ]; then
    echo "fetch-pdfium: SHA-256 MISMATCH for $(basename "$wheel")" >&2
    echo "fetch-pdfium:   expected $WHEEL_SHA256" >&2
    echo "fetch-pdfium:   got      $actual" >&2
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

chmod 0644 "$work/$FILE"
mv -f "$work/$FILE" "$target"
echo "fetch-pdfium: wrote $target"
