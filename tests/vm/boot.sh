#!/bin/sh
# SPDX-License-Identifier: ISC
# Run one test program of this build on another Linux kernel, under qemu-system's
# software emulation (TCG: this machine kind has no /dev/kvm), and fail as it fails.
#
#   tests/vm/boot.sh KERNEL WORKDIR PROGRAM [ARG ...]
#
# The initramfs holds busybox, PROGRAM with the shared libraries ldd names, and the
# build's spec/ at the absolute path the unit suite was compiled with (SM_SPEC_DIR), so
# the program runs as it does here, as root, with /proc, /sys, /dev and a tmpfs on
# /dev/shm (Criterion keeps its shared arena there). /tmp is the initramfs's own, which
# is writable already: a tmpfs over it would hide spec/ when the tree is under /tmp.
# Its output comes back whole through a second serial port (the console is the
# kernel's); its exit status in the line "VM-RC n". Used by make test-debian-kernel
# (GNUmakefile), with Debian 12's own kernel (ci/install-deps vm). SM_VM_CMDLINE adds
# kernel parameters (secretmem.enable=1: memfd_secret, which Debian's kernel leaves off).
set -eu

[ $# -ge 3 ] || { echo "usage: $0 KERNEL WORKDIR PROGRAM [ARG ...]" >&2; exit 2; }
kernel=$1 work=$2 prog=$3
shift 3
spec=${SM_SPEC_DIR:?SM_SPEC_DIR: the spec/ path the program was built with}
for t in qemu-system-x86_64 busybox cpio; do
    command -v "$t" >/dev/null || { echo "boot.sh: $t missing (ci/install-deps vm)" >&2; exit 1; }
done
[ -r "$kernel" ] || { echo "boot.sh: no kernel at $kernel (ci/install-deps vm)" >&2; exit 1; }

root=$work/root
rm -rf "$root"
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root$spec"
cp "$(command -v busybox)" "$root/bin/busybox"
cp "$prog" "$root/bin/program"
for lib in $(ldd "$prog" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
cp -r "$spec/." "$root$spec"
# The arguments are quoted into the script one by one: they reach the program as given.
args=""
for a in "$@"; do
    args="$args '$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'"
done
cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/shm && mount -t tmpfs shm /dev/shm
cd /tmp
echo "VM-KERNEL \$(uname -r)"
/bin/program $args > /tmp/out 2>&1
rc=\$?
cat /tmp/out > /dev/ttyS1
echo "VM-RC \$rc"
sync
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

# 4 GiB: the suite maps about 100 MB at once and forks; two CPUs, as here.
: > "$work/out.txt"
timeout 2400 qemu-system-x86_64 -cpu max -smp 2 -m 4096 -display none -no-reboot \
    -kernel "$kernel" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 oops=panic ${SM_VM_CMDLINE:-}" \
    -serial "file:$work/console.txt" -serial "file:$work/out.txt" || true
cat "$work/out.txt"
grep -a -o 'VM-KERNEL [^[:cntrl:]]*' "$work/console.txt" || true
rc=$(sed -n 's/^VM-RC \([0-9]*\).*/\1/p' "$work/console.txt" | tail -n 1)
if [ -z "$rc" ]; then
    echo "boot.sh: the program never finished; the kernel's console:" >&2
    tail -n 40 "$work/console.txt" >&2
    exit 1
fi
exit "$rc"
