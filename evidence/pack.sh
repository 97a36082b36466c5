#!/bin/sh
# SPDX-License-Identifier: ISC
# Seal a rendered bundle: write its manifest (SHA256SUMS), check that every link in it
# resolves inside it, verify the manifest, then pack OUT.tar.gz with its own checksum
# beside it (OUT.tar.gz.sha256).
#   evidence/pack.sh OUT
set -eu
out=$1
evidence/check-bundle.py "$out" --manifest
(cd "$out" && sha256sum -c --quiet SHA256SUMS) || { echo "pack: the manifest does not verify"; exit 1; }
dir=$(dirname "$out") base=$(basename "$out")
tar -C "$dir" --sort=name -czf "$out.tar.gz" "$base"
(cd "$dir" && sha256sum "$base.tar.gz" > "$base.tar.gz.sha256")
echo "pack: $out.tar.gz ($(du -k "$out.tar.gz" | cut -f1) KiB), $out.tar.gz.sha256"
