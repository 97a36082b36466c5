#!/bin/sh
# SPDX-License-Identifier: ISC
# Render a bundle's index.html in headless Chromium and keep a screenshot of it
# (OUT/screenshot.png): the page an auditor reads first must open in a browser, offline.
# The flags are those that let Chromium run as root in a container without touching the
# network or a profile of its own (a fresh --user-data-dir, removed afterwards).
#   evidence/browser.sh OUT
set -eu
out=$(cd "$1" && pwd)
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
rm -f "$out/screenshot.png"
timeout 120 chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size=1280,2400 --hide-scrollbars \
    --screenshot="$out/screenshot.png" "file://$out/index.html" > "$profile/log" 2>&1 || {
    cat "$profile/log"; echo "browser: chromium failed"; exit 1; }
# A PNG of the window's size: its signature, then the IHDR width and height.
python3 - "$out/screenshot.png" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit("browser: the screenshot is not a PNG")
w, h = struct.unpack(">II", data[16:24])
if (w, h) != (1280, 2400) or len(data) < 20000:
    sys.exit("browser: the screenshot is %dx%d, %d bytes: the page did not render" % (w, h, len(data)))
print("browser: index.html rendered by Chromium, screenshot.png %dx%d, %d bytes" % (w, h, len(data)))
PY
