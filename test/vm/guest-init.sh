#!/bin/sh
# PID 1 of the LVM test guest (test/vm/build-guest.sh puts it in the initramfs as /init).
# Kernel command line:
#   lvp.repo=<abs path>   mount the virtiofs share tagged "repo" there and run in it (required)
#   lvp.cmd=<rel path>    script on the share, relative to lvp.repo, to run with sh (required)
#   lvp.disks=<n>         wait until n virtio disks (vda...) are present (default 0)
# Prints "LVP-GUEST-READY" before the command and "LVP-GUEST-EXIT=<rc>" after it, then powers
# off. Any failure of its own is reported as LVP-GUEST-EXIT=125 or a missing marker.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export HOME=/root LANG=C.UTF-8 TERM=dumb

stamp() {
  read -r up _ </proc/uptime
  echo "lvp-guest: [${up}s] $*"
}

finish() {
  echo "LVP-GUEST-EXIT=$1"
  sync
  [ -n "${repo:-}" ] && umount "$repo" 2>/dev/null
  poweroff -f
  sleep 5 # poweroff -f does not return; if it ever does, the kernel panics (panic=-1 reboots)
  exit "$1"
}

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o mode=0755 devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=000 devpts /dev/pts
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm
mount -t tmpfs -o nosuid,nodev,mode=0755,size=64M tmpfs /run
mount -t tmpfs -o nosuid,nodev,mode=1777,size=1500M tmpfs /tmp
mkdir -p /run/lock/lvm /run/lvm
stamp "init started"

# Modules: insmod in the order computed on the host (modprobe --show-depends), one per line.
while read -r module; do
  [ -n "$module" ] || continue
  # "No such device": a CPU-specific variant (crc32c-intel without SSE4.2); the generic one serves.
  insmod "/lib/modules/$(uname -r)/$module" 2>/tmp/insmod.err ||
    grep -qE 'File exists|No such device' /tmp/insmod.err ||
    echo "lvp-guest: insmod $module: $(cat /tmp/insmod.err)"
done </etc/lvp-modules
rm -f /tmp/insmod.err
ip link set lo up
stamp "modules loaded"

repo=
cmd=
disks=0
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    lvp.repo=*) repo=${arg#lvp.repo=} ;;
    lvp.cmd=*) cmd=${arg#lvp.cmd=} ;;
    lvp.disks=*) disks=${arg#lvp.disks=} ;;
  esac
done

# virtio_blk probes in PCI slot order; give the devices a moment to show up.
tries=0
while [ "$(ls -d /sys/block/vd* 2>/dev/null | wc -l)" -lt "$disks" ]; do
  tries=$((tries + 1))
  if [ "$tries" -gt 200 ]; then
    echo "lvp-guest: only $(ls -d /sys/block/vd* 2>/dev/null | wc -l) of $disks disks appeared"
    finish 125
  fi
  sleep 0.05
done

if [ -z "$repo" ] || [ -z "$cmd" ]; then
  echo "lvp-guest: lvp.repo= and lvp.cmd= are required on the kernel command line"
  finish 125
fi
mkdir -p "$repo"
if ! mount -t virtiofs repo "$repo"; then
  echo "lvp-guest: cannot mount the virtiofs share 'repo' at $repo"
  repo=
  finish 125
fi
if [ ! -f "$repo/$cmd" ]; then
  echo "lvp-guest: command file $repo/$cmd is missing"
  finish 125
fi

stamp "ready"
echo "LVP-GUEST-READY"
cd "$repo" || finish 125
sh "$repo/$cmd" </dev/null
rc=$?
cd /
stamp "command exited with $rc"
finish "$rc"
