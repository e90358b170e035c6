#!/bin/sh
# Smoke test of the LVM test guest: everything the daemon needs from the machine, on real lvm2
# and device-mapper. Runs INSIDE the guest:
#
#   node test/vm/run-in-guest.mjs -- sh test/vm/smoke.sh
#
# Uses /dev/vdb (an empty disk from run-in-guest.mjs) and leaves it empty again. Exits 0 when
# every check passed; on the first failure it prints "SMOKE FAILED: ..." and exits 1.
set -eu
disk=${1:-/dev/vdb}
vg=vgtest
# The open-LV check below deliberately keeps fd 3 open on an LV while lvs runs.
export LVM_SUPPRESS_FD_WARNINGS=1

uptime_s() { cut -d' ' -f1 /proc/uptime; }
start=$(uptime_s)
last=$start
step() {
  now=$(uptime_s)
  awk -v n="$now" -v l="$last" -v s="$1" 'BEGIN { printf "smoke: %6.2f s  %s\n", n - l, s }'
  last=$now
}
fail() {
  current="$current: $*"
  exit 1
}
current=start
check() { current=$*; }
# set -e ends the script at the first failing command; say which check it was in.
# shellcheck disable=SC2154 # rc is assigned inside the trap
trap 'rc=$?; [ "$rc" = 0 ] || echo "SMOKE FAILED (exit $rc) in: $current"' EXIT

[ -b "$disk" ] || fail "$disk is not a block device"
check "device-mapper driver"
dmsetup version | grep -q 'Driver version' || fail "no device-mapper driver"
step "dmsetup version: $(dmsetup version | sed -n 's/Driver version: *//p')"

check "pvcreate/vgcreate"
pvcreate --yes "$disk" >/dev/null
step "pvcreate $disk"
vgcreate "$vg" "$disk" >/dev/null
step "vgcreate $vg"
lvcreate --yes -L 64M -n lv1 "$vg" >/dev/null
[ -b /dev/$vg/lv1 ] || fail "/dev/$vg/lv1 was not created"
step "lvcreate -L 64M $vg/lv1 (thick)"
check "thin pool"
lvcreate --yes --type thin-pool -L 256M -n pool "$vg" >/dev/null
step "lvcreate --type thin-pool -L 256M $vg/pool"
lvcreate --yes -V 1G -T "$vg/pool" -n thin1 >/dev/null
[ -b /dev/$vg/thin1 ] || fail "/dev/$vg/thin1 was not created"
step "lvcreate -V 1G -T $vg/pool -n thin1"

check "lvs json"
json=$(lvs --reportformat json --units b --nosuffix -o lv_name,lv_size,lv_attr,lv_tags,lv_path,data_percent "$vg")
echo "$json" | tr -d ' \n'
echo
echo "$json" | grep -q '"lv_name":"thin1", "lv_size":"1073741824"' ||
  echo "$json" | tr -d ' \n' | grep -q '"lv_name":"thin1","lv_size":"1073741824"' ||
  fail "lvs does not report thin1 as 1 GiB"
step "lvs --reportformat json"

check "qcow2 fixture"
tmp=$(mktemp -d)
qemu-img create -q -f qcow2 "$tmp/src.qcow2" 48M
qemu-io -f qcow2 -c 'write -q -P 0x5a 0 1M' -c 'write -q -P 0xa5 8M 3M' -c 'write -q -P 0x3c 44M 4M' \
  "$tmp/src.qcow2" >/dev/null
qemu-img convert -f qcow2 -O raw "$tmp/src.qcow2" "$tmp/ref.raw"
step "qemu-img create + qemu-io: 48 MiB qcow2 with 8 MiB of data"

check "qemu-img convert into the thick LV"
# Dirty the LV first: a thick LV reuses old extents, so the tail must be zeroed explicitly.
dd if=/dev/urandom of=/dev/$vg/lv1 bs=1M count=64 oflag=direct status=none
qemu-img convert -t none -f qcow2 -O raw -n "$tmp/src.qcow2" /dev/$vg/lv1
blkdiscard --zeroout --offset $((48 * 1024 * 1024)) /dev/$vg/lv1
qemu-img compare -q -f raw -F raw /dev/$vg/lv1 "$tmp/ref.raw" || fail "thick LV differs from the image"
step "qemu-img convert -t none -n into $vg/lv1, blkdiscard --zeroout of the tail, compare"

check "qemu-img convert into the thin LV"
qemu-img convert -t none -f qcow2 -O raw -n --target-is-zero "$tmp/src.qcow2" /dev/$vg/thin1
qemu-img compare -q -f raw -F raw /dev/$vg/thin1 "$tmp/ref.raw" || fail "thin LV differs from the image"
used=$(lvs --noheadings --units b --nosuffix -o data_percent "$vg/thin1" | tr -d ' ')
step "qemu-img convert -n --target-is-zero into $vg/thin1, compare (thin1 ${used} % allocated)"

check "node sha256 of an LV"
truncate -s 64M "$tmp/ref.raw"
want=$(sha256sum "$tmp/ref.raw" | cut -d' ' -f1)
got=$(node -e '
  const { createHash } = require("node:crypto");
  const { createReadStream } = require("node:fs");
  console.error(`smoke: node ${process.version}`);
  const hash = createHash("sha256");
  createReadStream(process.argv[1], { highWaterMark: 1 << 20 })
    .on("data", (chunk) => hash.update(chunk))
    .on("end", () => console.log(hash.digest("hex")));
' /dev/$vg/lv1)
[ "$got" = "$want" ] || fail "node sha256 $got != sha256sum $want"
step "node crypto sha256 of $vg/lv1 = sha256sum of the reference ($got)"

check "setpriv and prlimit"
setpriv --pdeathsig KILL -- qemu-img --version | head -n1
setpriv --pdeathsig KILL -- prlimit --cpu=30:35 --as=1073741824 -- qemu-img info -f qcow2 "$tmp/src.qcow2" >/dev/null
step "setpriv --pdeathsig KILL -- [prlimit --] qemu-img"

check "open LV"
attr() { lvs --noheadings -o lv_attr "$vg/$1" | tr -d ' '; }
exec 3</dev/$vg/lv1
held=$(attr lv1)
exec 3<&-
released=$(attr lv1)
echo "lv_attr while held: $held, after close: $released"
[ "$(echo "$held" | cut -c6)" = o ] || fail "lv_attr $held has no 'o' while the LV is open"
[ "$(echo "$released" | cut -c6)" = - ] || fail "lv_attr $released still open after close"
step "open flag ('o', 6th lv_attr char) follows exec 3</dev/$vg/lv1"

check "lvextend"
lvextend --yes -L 128M "$vg/lv1" >/dev/null
[ "$(blockdev --getsize64 /dev/$vg/lv1)" = 134217728 ] || fail "lvextend did not reach 128 MiB"
step "lvextend -L 128M"

check "remove"
lvremove --yes "$vg/thin1" "$vg/pool" "$vg/lv1" >/dev/null
vgremove --yes "$vg" >/dev/null
pvremove --yes "$disk" >/dev/null
[ -z "$(dmsetup ls | grep -v 'No devices found' || true)" ] || fail "device-mapper devices left: $(dmsetup ls)"
rm -rf "$tmp"
step "lvremove, vgremove, pvremove"

awk -v n="$(uptime_s)" -v s="$start" 'BEGIN { printf "smoke: OK in %.1f s\n", n - s }'
