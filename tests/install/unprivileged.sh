#!/bin/sh
# SPDX-License-Identifier: ISC
# make check-build-user: building and installing the library needs neither root nor the
# network (README.md, "Install and use"). A copy of the sources is built with `make`
# and installed with `make install` into a temporary prefix, by an unprivileged user
# (nobody, when run as root; the caller otherwise), with a PATH whose apt-get, apt,
# sudo and curl only record that they were called. Any such call, or a failed build or
# install, fails the check.
#
#   tests/install/unprivileged.sh SRCDIR WORKDIR [MAKE-ARGS...]
set -eu

src=$(cd "$1" && pwd)
work=$2
shift 2

rm -rf "$work"
mkdir -p "$work/src" "$work/stub" "$work/prefix"
# Only what a release build and an install read: no build/ output comes along.
(cd "$src" && tar -cf - GNUmakefile securemem.pc.in ci include src man cmake) | tar -xf - -C "$work/src"

for tool in apt-get apt aptitude sudo curl wget; do
    cat > "$work/stub/$tool" <<STUB
#!/bin/sh
echo "$tool \$*" >> "$work/stub/called"
echo "check-build-user: the build called $tool" >&2
exit 1
STUB
    chmod 755 "$work/stub/$tool"
done

run=""
who=$(id -un)
if [ "$(id -u)" = 0 ]; then
    who=nobody
    uid=$(id -u "$who")
    gid=$(id -g "$who")
    chown -R "$uid:$gid" "$work"
    # No supplementary groups, no capabilities: an ordinary user.
    run="setpriv --reuid=$uid --regid=$gid --clear-groups --inh-caps=-all --bounding-set=-all"
fi

status=0
# shellcheck disable=SC2086
$run env -i HOME=/nonexistent PATH="$work/stub:/usr/local/bin:/usr/bin:/bin" \
    make -C "$work/src" --no-print-directory "$@" all install PREFIX="$work/prefix" \
    > "$work/log" 2>&1 || status=$?

if [ "$status" != 0 ]; then
    tail -n 30 "$work/log"
    echo "check-build-user: make all install as $who exited $status"
    exit 1
fi
if [ -s "$work/stub/called" ]; then
    cat "$work/stub/called"
    echo "check-build-user: the build or install tried to install packages (above)"
    exit 1
fi
for f in include/securemem.h include/securemem/secret.h lib/libsecuremem.a \
         lib/libsecuremem.so lib/pkgconfig/securemem.pc; do
    [ -e "$work/prefix/$f" ] || { echo "check-build-user: $f was not installed"; exit 1; }
done
echo "check-build-user: make all install as an unprivileged user, no package tool called"
