#!/bin/bash -eu
# SPDX-License-Identifier: ISC
# ClusterFuzzLite: the same build as OSS-Fuzz (one script to keep right).
exec "$SRC/securemem/fuzz/oss-fuzz/build.sh"
