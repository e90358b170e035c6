#!/usr/bin/env bash
# Builds the "host" test guest: a Debian bookworm root filesystem with systemd as PID 1, udev,
# lvm2, thin-provisioning-tools, libvirt-daemon-system + qemu-system-x86 (TCG inside the guest),
# Debian's cloud kernel with its own initramfs (initramfs-tools), and Node.js 20: the host's
# NodeSource nodejs repacked with dpkg-repack into a local apt repository (the stand-in for
# NodeSource's repository, which the guest cannot reach; docs/installation.md). Everything else
# comes from deb.debian.org with debootstrap + apt. The project's .deb is NOT in the image: the
# test installs it inside the booted guest with apt, as an operator does (so postinst runs under a
# real PID 1); every dependency it has is preinstalled here so that apt needs no network there.
#
#   bash test/vm/build-host-guest.sh     prints the guest directory on its last stdout line
#
# Output, cached in ${LVP_VM_CACHE:-/var/cache/lvp-vm}/host-<key>/: vmlinuz, initrd.img,
# rootfs.img (raw ext4, sparse; each run boots a qcow2 overlay of it) and manifest.txt. The key
# hashes this script, guest-run.sh (the unit that runs the test command), the host's nodejs
# version and the day of the month's ISO week (so that Debian's security updates are picked up
# weekly; a rebuild is ~5-7 min). Run as root (debootstrap, chroot); a cache hit needs no root.
set -euo pipefail
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
runner=$here/host-guest-run.sh
cache=${LVP_VM_CACHE:-/var/cache/lvp-vm}
mirror=${LVP_VM_MIRROR:-http://deb.debian.org/debian}
log() { echo "build-host-guest: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# The guest's packages (apt, --no-install-recommends). Why each is there:
packages=(
  systemd-sysv udev dbus         # PID 1, device events (lvm2's udev rules), systemctl's bus
  linux-image-cloud-amd64 initramfs-tools # the kernel and an initramfs that mounts /dev/vda
  lvm2 thin-provisioning-tools   # the LVM backends (thin_check activates thin pools)
  qemu-utils xz-utils zstd bzip2 util-linux # the .deb's other Depends, so apt needs no network
  libvirt-daemon-system libvirt-clients qemu-system-x86 # libvirtd, virsh, a TCG domain
  e2fsprogs kmod procps iproute2 # resize2fs/mkfs, modprobe (virtiofs), ps/pgrep
  nodejs                         # from the local repository: the host's NodeSource 20.x, repacked
)
node_version=$(dpkg-query -W -f='${Version}' nodejs 2>/dev/null) ||
  die "nodejs is not installed as a Debian package on this host: nothing to repack"

manifest=$(
  echo "lvp host guest, layout 1"
  echo "mirror $mirror bookworm, week $(date -u +%G-%V)"
  echo "packages ${packages[*]}"
  echo "nodejs $node_version (repacked)"
  echo "build-host-guest.sh $(sha256sum <"${BASH_SOURCE[0]}" | cut -c1-64)"
  echo "host-guest-run.sh $(sha256sum <"$runner" | cut -c1-64)"
)
key=$(printf '%s\n' "$manifest" | sha256sum | cut -c1-16)
out=$cache/host-$key
if [ -f "$out/complete" ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root to build the guest (debootstrap, chroot)"
for tool in debootstrap dpkg-repack dpkg-scanpackages mkfs.ext4; do
  command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/install-system-packages.sh)"
done
mkdir -p "$cache"
exec 9>"$cache/.lock-host"
flock 9
if [ -f "$out/complete" ]; then
  log "cached (built by a concurrent run): $out"
  echo "$out"
  exit 0
fi
started=$EPOCHREALTIME
rm -rf "$cache"/.build-host.*
work=$(mktemp -d "$cache/.build-host.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
trap 'exit 130' INT TERM HUP
log "building host-$key in $work"
R=$work/root

# --- the base system -------------------------------------------------------------------------------
mkdir -p "$cache/debs-host"
log "debootstrap bookworm (minbase)"
debootstrap --variant=minbase --cache-dir="$cache/debs-host" bookworm "$R" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  {
    tail -20 "$work/debootstrap.log" >&2
    die "debootstrap failed"
  }
log "debootstrap done after $(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"

# The nodejs stand-in repository, inside the tree (removed again below).
mkdir -p "$R/srv/nodejs-repo"
(cd "$R/srv/nodejs-repo" && dpkg-repack nodejs >&2 && dpkg-scanpackages . /dev/null >Packages 2>/dev/null)
echo 'deb [trusted=yes] file:/srv/nodejs-repo ./' >"$R/etc/apt/sources.list.d/nodejs-local.list"
cp /etc/resolv.conf "$R/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d" # nothing starts in the chroot
chmod 755 "$R/usr/sbin/policy-rc.d"
mkdir -p "$R/var/cache/apt/archives"

# apt in the chroot; /proc, /sys and /dev in a private mount namespace (gone with the command).
in_root() {
  unshare --mount --propagation private /bin/sh -ec '
    r=$1; c=$2; shift 2
    mount -t proc proc "$r/proc"; mount -t sysfs sysfs "$r/sys"; mount --bind /dev "$r/dev"
    mount --bind "$c" "$r/var/cache/apt/archives"
    exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive "$@"' - "$R" "$cache/debs-host" "$@"
}
log "apt-get install ${#packages[@]} packages"
in_root apt-get update -q >"$work/apt.log" 2>&1 || {
  tail -20 "$work/apt.log" >&2
  die "apt-get update failed"
}
in_root apt-get install -y -q --no-install-recommends "${packages[@]}" >>"$work/apt.log" 2>&1 || {
  tail -30 "$work/apt.log" >&2
  die "apt-get install failed"
}
in_root apt-get clean >/dev/null
rm -rf "$R/srv/nodejs-repo" "$R/etc/apt/sources.list.d/nodejs-local.list" "$R/usr/sbin/policy-rc.d"
rm -rf "$R"/var/lib/apt/lists/*nodejs-repo*
log "packages installed after $(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s"

# --- configuration -----------------------------------------------------------------------------------
echo lvp-host-guest >"$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 lvp-host-guest\n' >"$R/etc/hosts"
echo '/dev/vda / ext4 rw,noatime,errors=remount-ro 0 1' >"$R/etc/fstab"
: >"$R/etc/resolv.conf"
passwd -R "$R" -d root >/dev/null
# Boot time under TCG: nothing the tests do not need. No logins (the console carries the results),
# no timers, no libvirt-guests (it would try to suspend domains at shutdown).
for unit in getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer e2scrub_reap.service fstrim.timer dpkg-db-backup.timer \
  libvirt-guests.service systemd-timesyncd.service; do
  ln -sf /dev/null "$R/etc/systemd/system/$unit"
done
rm -f "$R/etc/libvirt/qemu/networks/autostart/default.xml"
# The test runner (see host-guest-run.sh): started when the system is up, prints the results on
# the console, powers off.
install -m 755 "$runner" "$R/usr/local/sbin/lvp-guest-run"
cat >"$R/etc/systemd/system/lvp-guest-run.service" <<'EOF'
[Unit]
Description=lvp test bed: run the test command given on the kernel command line
After=multi-user.target
ConditionKernelCommandLine=lvp.cmd

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lvp-guest-run
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/lvp-guest-run.service "$R/etc/systemd/system/multi-user.target.wants/"
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nForwardToConsole=no\n' >"$R/etc/systemd/journald.conf.d/lvp.conf"

# --- output --------------------------------------------------------------------------------------------
mkdir -p "$work/out"
kernel=$(find "$R/boot" -name 'vmlinuz-*-cloud-amd64' | head -n1)
initrd=$(find "$R/boot" -name 'initrd.img-*-cloud-amd64' | head -n1)
[ -n "$kernel" ] && [ -n "$initrd" ] || die "no cloud kernel/initrd in /boot"
cp "$kernel" "$work/out/vmlinuz"
cp "$initrd" "$work/out/initrd.img"
# 2 GiB of free room for the .deb, the job database, the image cache.
size_mib=$(($(du -sm "$R" | cut -f1) + 2048))
mkfs.ext4 -q -F -L lvp-root -d "$R" "$work/out/rootfs.img" "${size_mib}M"
{
  printf '%s\n' "$manifest"
  echo "kernel $(basename "$kernel")"
  echo "rootfs ${size_mib} MiB, $(du -sm "$R" | cut -f1) MiB used"
  in_root dpkg-query -W -f='${Package}=${Version}\n' | sed 's/^/installed /'
} >"$work/out/manifest.txt"
touch "$work/out/complete"
rm -rf "$out"
mv "$work/out" "$out"
# Keep the two newest host guests (each is about 1.5 GB, sparse).
find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'host-*' -printf '%T@ %p\n' | sort -rn |
  tail -n +3 | cut -d' ' -f2- | while read -r old; do rm -rf "$old"; done
log "built $out in $(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
echo "$out"
