#!/bin/sh
# SPDX-License-Identifier: ISC
# make check-build-user, second part: ci/install-deps on a machine with a foreign
# architecture added (dpkg --add-architecture), where dpkg-query -W prints one status per
# architecture, must see that every package is installed and call no apt-get. The
# dpkg-query here stands in for the real one: each package is installed for the native
# architecture and not for the foreign one, and the format is honoured as dpkg-query
# honours it (no newline unless the format has one). apt-get is a trap.
#
#   tests/install/foreign-arch.sh SRCDIR WORKDIR
set -eu

src=$(cd "$1" && pwd)
work=$2
rm -rf "$work"
mkdir -p "$work/stub"

cat > "$work/stub/dpkg-query" <<'STUB'
#!/bin/sh
fmt=
for a in "$@"; do
    case "$a" in -f=*) fmt=${a#-f=} ;; esac
done
for st in "install ok installed" "unknown ok not-installed"; do
    # shellcheck disable=SC2059
    printf "$(printf '%s' "$fmt" | sed "s/\${Status}/$st/")"
done
STUB
for tool in apt-get apt; do
    printf '#!/bin/sh\necho "%s $*" >> "%s/called"\nexit 1\n' "$tool" "$work" > "$work/stub/$tool"
done
chmod 755 "$work/stub/"*

status=0
PATH="$work/stub:$PATH" "$src/ci/install-deps" build test > "$work/log" 2>&1 || status=$?
if [ "$status" != 0 ] || [ -e "$work/called" ]; then
    cat "$work/log"
    [ ! -e "$work/called" ] || cat "$work/called"
    echo "check-build-user: with a foreign architecture, install-deps exited $status or called apt"
    exit 1
fi
echo "check-build-user: with a foreign architecture, install-deps finds everything installed"
