#!/usr/bin/env bash
# Builds the LVM test guest: Debian's cloud kernel plus an initramfs with busybox, lvm2,
# dmsetup, thin-provisioning-tools, qemu-img/qemu-io, util-linux's setpriv/prlimit/blkdiscard/
# blockdev, the decompressors and the host's node, all with their shared libraries, and
# test/vm/guest-init.sh as /init. Debian packages only; nothing is installed into the host's boot.
#
#   bash test/vm/build-guest.sh        prints the guest directory on its last stdout line
#
# The result is cached in ${LVP_VM_CACHE:-/var/cache/lvp-vm}/<key>/ (vmlinuz, initrd.cpio,
# manifest.txt), the key being a hash of the package versions that go into the guest, the node
# binary, this script and guest-init.sh. A cache hit takes well under a second. Progress goes
# to stderr. Run as root (apt-get, mknod, chroot); a cache hit needs no root.
set -euo pipefail
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
init_script=$here/guest-init.sh
cache=${LVP_VM_CACHE:-/var/cache/lvp-vm}
node_bin=${LVP_VM_NODE:-/usr/bin/node}
log() { echo "build-guest: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
as_root() { [ "$(id -u)" = 0 ] || die "must run as root to $*"; }

# --- host packages ------------------------------------------------------------------------------
# What the harness runs on the host (qemu, virtiofsd, cpio...) and what is copied into the guest.
host_packages=(qemu-system-x86 qemu-utils lvm2 thin-provisioning-tools busybox-static cpio kmod
  util-linux e2fsprogs gzip xz-utils zstd bzip2)
missing=()
for p in "${host_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
updated=
if [ ${#missing[@]} -gt 0 ]; then
  as_root "install ${missing[*]}"
  log "apt-get install ${missing[*]}"
  apt-get update -q >&2
  updated=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
[ -x "$node_bin" ] || die "$node_bin not found (set LVP_VM_NODE to the node binary to put in the guest)"

# --- the kernel: linux-image-cloud-amd64 is a metapackage; resolve it to the versioned one ------
# One apt-cache call (about 0.5 s here: the image disables apt's binary cache). Its Depends line
# reads "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)".
resolve_kernel() {
  apt-cache show --no-all-versions linux-image-cloud-amd64 2>/dev/null | awk '
    $1 == "Depends:" {
      for (i = 2; i <= NF; i++) if ($i ~ /^linux-image-.*-cloud-amd64$/) {
        v = $(i + 2); sub(/\)$/, "", v); sub(/,$/, "", v); print $i, v; exit
      }
    }'
}
read -r kpkg kpkg_version < <(resolve_kernel || true) || true
if [ -z "${kpkg:-}" ] && [ -z "$updated" ]; then
  as_root "run apt-get update (no package list knows linux-image-cloud-amd64)"
  log "apt-get update (to resolve linux-image-cloud-amd64)"
  apt-get update -q >&2
  read -r kpkg kpkg_version < <(resolve_kernel || true) || true
fi
[ -n "${kpkg:-}" ] && [ -n "${kpkg_version:-}" ] ||
  die "cannot resolve linux-image-cloud-amd64 to a versioned kernel package"
kver=${kpkg#linux-image-}

# --- cache key ------------------------------------------------------------------------------------
guest_packages=(busybox-static dash coreutils findutils lvm2 dmsetup libdevmapper1.02.1
  thin-provisioning-tools qemu-utils util-linux libc6 libstdc++6 gzip xz-utils zstd bzip2 nodejs)
manifest=$(
  echo "lvp test guest, layout 1"
  echo "kernel $kpkg=$kpkg_version"
  for p in "${guest_packages[@]}"; do
    echo "package $p=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo none)"
  done
  echo "node $("$node_bin" --version) $(stat -Lc '%s %Y' "$node_bin")"
  echo "build-guest.sh $(sha256sum <"${BASH_SOURCE[0]}" | cut -c1-64)"
  echo "guest-init.sh $(sha256sum <"$init_script" | cut -c1-64)"
)
key=$(printf '%s\n' "$manifest" | sha256sum | cut -c1-16)
out=$cache/$key

if [ -f "$out/complete" ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

as_root "build the guest"
mkdir -p "$cache"
# One build at a time; a second caller waits, then finds the result.
exec 9>"$cache/.lock"
flock 9
if [ -f "$out/complete" ]; then
  log "cached (built by a concurrent run): $out"
  echo "$out"
  exit 0
fi

started=$EPOCHREALTIME
rm -rf "$cache"/.build.* # left by a build that was killed (we hold the lock: none is running)
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP
log "building $key in $work"

# --- kernel: download and unpack (never installed on the host) ------------------------------------
mkdir -p "$cache/debs"
deb=$(find "$cache/debs" -maxdepth 1 -name "${kpkg}_*.deb" | head -n1)
if [ -z "$deb" ] || [ "$(dpkg-deb -f "$deb" Version)" != "$kpkg_version" ]; then
  rm -f "$cache"/debs/linux-image-*.deb
  log "apt-get download $kpkg=$kpkg_version"
  # A folder apt's sandbox user may write to, so apt does not warn about downloading as root.
  dl=$work/download
  mkdir -p "$dl"
  chmod 755 "$work"
  ! id -u _apt >/dev/null 2>&1 || chown _apt "$dl"
  (cd "$dl" && apt-get download -q "$kpkg=$kpkg_version" >&2)
  mv "$dl"/*.deb "$cache/debs/"
  deb=$(find "$cache/debs" -maxdepth 1 -name "${kpkg}_*.deb" | head -n1)
  [ -n "$deb" ] || die "apt-get download $kpkg left no .deb"
fi
kroot=$work/kernel
dpkg-deb -x "$deb" "$kroot"
[ -f "$kroot/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $deb"
depmod -b "$kroot" "$kver"

# --- initramfs root: merged /usr layout, so host paths (/sbin/lvm, /lib64/ld-linux...) all resolve
R=$work/root
mkdir -p "$R"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bin,etc/lvm,proc,sys,dev,run,tmp,root,mnt}
ln -s usr/bin "$R/bin"
ln -s usr/sbin "$R/sbin"
ln -s usr/lib "$R/lib"
ln -s usr/lib64 "$R/lib64"
chmod 1777 "$R/tmp"
mknod -m 600 "$R/dev/console" c 5 1
mknod -m 666 "$R/dev/null" c 1 3
mknod -m 666 "$R/dev/zero" c 1 5
mknod -m 666 "$R/dev/urandom" c 1 9

# Copies a file to the same path in the guest (following symlinks) plus every library ldd names.
copy_with_libs() {
  local file lib
  for file in "$@"; do
    [ -e "$file" ] || die "missing on the host: $file"
    mkdir -p "$R$(dirname "$file")"
    cp -L "$file" "$R$file"
    ldd "$file" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
      [ -e "$R$lib" ] && continue
      mkdir -p "$R$(dirname "$lib")"
      cp -L "$lib" "$R$lib"
    done
  done
}
which_real() { command -v "$1" || die "$1 not found on the host"; }

# lvm2 and device-mapper
copy_with_libs "$(which_real lvm)" "$(which_real dmsetup)"
lvm_dir=$(dirname "$(which_real lvm)")
for tool in pvcreate pvs pvdisplay pvremove pvscan vgcreate vgs vgdisplay vgchange vgremove vgscan \
  vgextend vgreduce lvcreate lvextend lvreduce lvresize lvs lvremove lvchange lvdisplay lvconvert \
  lvrename lvscan; do
  ln -sf lvm "$R$lvm_dir/$tool"
done
# thin-provisioning-tools: lvm runs thin_check when it activates a thin pool. All tools are
# symlinks to one multi-call binary (pdata_tools).
thin_check=$(which_real thin_check)
while read -r path; do
  [ -L "$path" ] || [ -f "$path" ] || continue
  case "$path" in */sbin/*) ;; *) continue ;; esac
  if [ -L "$path" ]; then
    target=$(readlink -f "$path")
    [ -e "$R$target" ] || copy_with_libs "$target"
    ln -sf "$target" "$R$path"
  else
    copy_with_libs "$path"
  fi
done < <(dpkg -L thin-provisioning-tools)
[ -x "$R$thin_check" ] || die "thin_check did not make it into the guest"
# qemu, util-linux, decompressors, node
copy_with_libs "$(which_real qemu-img)" "$(which_real qemu-io)"
copy_with_libs "$(which_real setpriv)" "$(which_real prlimit)" "$(which_real blkdiscard)" \
  "$(which_real blockdev)" "$(which_real losetup)"
copy_with_libs "$(which_real gzip)" "$(which_real xz)" "$(which_real zstd)" "$(which_real bzip2)"
mkdir -p "$R/usr/bin"
copy_with_libs "$node_bin"
[ "$node_bin" = /usr/bin/node ] || cp -L "$node_bin" "$R/usr/bin/node"

# Shell: dash, as on Debian. Debian's busybox-static is built to prefer its own applets over
# PATH (its sh would run busybox's setpriv/blkdiscard instead of util-linux's), so busybox must
# not be /bin/sh, and the few tools that exec other programs come from coreutils/findutils.
copy_with_libs "$(which_real dash)"
ln -s dash "$R/usr/bin/sh"
for tool in env timeout nohup nice xargs find setsid dd sha256sum stat truncate sync; do
  copy_with_libs "$(which_real "$tool")"
done
# busybox last: its applets only fill the names no real tool took.
cp -L "$(which_real busybox)" "$R/usr/bin/busybox"
"$R/usr/bin/busybox" --list | while read -r applet; do
  [ -e "$R/usr/bin/$applet" ] || [ -L "$R/usr/bin/$applet" ] || [ -e "$R/usr/sbin/$applet" ] ||
    ln -s busybox "$R/usr/bin/$applet"
done

# Library search paths without the host's ld.so.cache.
find "$R/usr/lib" "$R/usr/lib64" -name '*.so*' -printf '%h\n' | sed "s|^$R||" | sort -u \
  >"$R/etc/ld.so.conf"
ldconfig -r "$R"

# --- configuration ---------------------------------------------------------------------------------
cat >"$R/etc/lvm/lvm.conf" <<EOF
# The test guest has no udev, no systemd, no dmeventd/lvmpolld and no lvmetad (lvm2 2.03 dropped
# it). libdevmapper creates /dev/mapper nodes itself, lvm the /dev/<vg>/<lv> links.
config {
    checks = 1
}
devices {
    obtain_device_list_from_udev = 0
    external_device_info_source = "none"
    use_devicesfile = 0
    multipath_component_detection = 0
    md_component_detection = 0
    fw_raid_component_detection = 0
}
activation {
    udev_sync = 0
    udev_rules = 0
    verify_udev_operations = 0
    monitoring = 0
}
global {
    use_lvmpolld = 0
    event_activation = 0
    notify_dbus = 0
    thin_check_executable = "$thin_check"
    thin_dump_executable = "$(dirname "$thin_check")/thin_dump"
    thin_repair_executable = "$(dirname "$thin_check")/thin_repair"
    cache_check_executable = "$(dirname "$thin_check")/cache_check"
}
backup {
    backup = 0
    archive = 0
}
EOF
cat >"$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$R/etc/group" <<'EOF'
root:x:0:
tty:x:5:
disk:x:6:
nogroup:x:65534:
EOF
echo '127.0.0.1 localhost' >"$R/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$R/etc/nsswitch.conf"
echo lvp-guest >"$R/etc/hostname"
ln -s /proc/self/mounts "$R/etc/mtab"

# --- kernel modules: copied with their tree paths; /init insmods them in dependency order ----------
modules=(virtio_pci virtio_blk virtio_net virtio_console dm_mod dm_thin_pool dm_snapshot virtiofs fuse loop)
moddir=lib/modules/$kver
mkdir -p "$R/usr/$moddir"
: >"$R/etc/lvp-modules"
modprobe -d "$kroot" -S "$kver" --show-depends -a "${modules[@]}" >"$work/deps"
while read -r verb path _; do
  [ "$verb" = insmod ] || continue
  rel=${path#"$kroot/$moddir/"}
  grep -qxF "$rel" "$R/etc/lvp-modules" && continue
  mkdir -p "$R/usr/$moddir/$(dirname "$rel")"
  cp "$path" "$R/usr/$moddir/$rel"
  echo "$rel" >>"$R/etc/lvp-modules"
done <"$work/deps"
builtin=$(awk '$1 == "builtin" { print $2 }' "$work/deps" | sort -u | tr '\n' ' ')
cp "$kroot/$moddir"/modules.{order,builtin,builtin.modinfo} "$R/usr/$moddir/" 2>/dev/null || true
depmod -b "$R" "$kver" # so that busybox modprobe also works in the guest
log "modules: $(wc -l <"$R/etc/lvp-modules") to load; built in: ${builtin:-none}"

cp "$init_script" "$R/init"
chmod 755 "$R/init"

# --- self-test: every program resolves its libraries inside the guest root alone, and the main
# tools start there (no device-mapper needed for these) ---------------------------------------------
find "$R/usr/bin" "$R/usr/sbin" -type f -perm -u+x ! -name busybox | sed "s|^$R||" | sort >"$work/elves"
while read -r prog; do
  if ! chroot "$R" /lib64/ld-linux-x86-64.so.2 --list "$prog" >"$work/ldd" 2>&1 ||
    grep -q 'not found' "$work/ldd"; then
    cat "$work/ldd" >&2
    die "$prog does not find its libraries in the guest root"
  fi
done <"$work/elves"
# (lvm wants /proc and /sys: mounted in a private mount namespace that vanishes with the test)
unshare --mount --propagation private /bin/sh -ec \
  'mount -t proc proc "$1/proc"; mount -t sysfs sysfs "$1/sys"; shift; exec chroot "$@"' - \
  "$R" "$R" /usr/bin/env -i PATH=/usr/bin:/usr/sbin LVM_SUPPRESS_FD_WARNINGS=1 /bin/sh -ec '
  lvm segtypes 2>/dev/null | grep -qw thin-pool
  dmsetup help >/dev/null 2>&1
  thin_check -V >/dev/null
  qemu-img --version >/dev/null
  qemu-io --version >/dev/null
  setpriv --pdeathsig KILL -- true
  prlimit --version >/dev/null
  blkdiscard --version >/dev/null
  blockdev --version >/dev/null
  for z in gzip xz zstd bzip2; do echo x | $z -c | $z -dc >/dev/null; done
  node -e "require(\"node:crypto\").createHash(\"sha256\")"
' >&2 || die "a guest tool does not start inside the guest root"

# --- output -----------------------------------------------------------------------------------------
mkdir -p "$work/out"
cp "$kroot/boot/vmlinuz-$kver" "$work/out/vmlinuz"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$work/out/initrd.cpio"
printf '%s\n' "$manifest" >"$work/out/manifest.txt"
{
  echo "kernel release $kver"
  echo "modules loaded by /init:"
  sed 's/^/  /' "$R/etc/lvp-modules"
  echo "initrd size $(stat -c %s "$work/out/initrd.cpio")"
} >>"$work/out/manifest.txt"
touch "$work/out/complete"
rm -rf "$out"
mv "$work/out" "$out"

# Keep the three newest guests; older keys are stale package versions.
find "$cache" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/[0-9a-f]{16}' \
  -printf '%T@ %p\n' | sort -rn |
  tail -n +4 | cut -d' ' -f2- | while read -r old; do rm -rf "$old"; done

log "built $out in $(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s ($(du -sh "$out/initrd.cpio" | cut -f1) initrd)"
echo "$out"
