#!/usr/bin/env bash
# Debian packages the daemon and its tests need. Run as root; safe to run again.
#   qemu-utils     qemu-img / qemu-io: the converter, and the tests' image builder
#   chromium       the headless browser that opens Swagger UI in the tests
#   util-linux     setpriv (children die with the daemon), prlimit (limits on qemu-img), blkdiscard
#   gzip xz-utils zstd bzip2   unpack compressed images
#   e2fsprogs      mkfs.ext4 for the LVM suite's filesystem image
#   xfsprogs       mkfs.xfs: the reflink-clone specs mount an XFS loop (reflink=1) as VOLUME_DIR
#   python3 make g++   build better-sqlite3's native addon (npm ci; the .deb's staging npm ci)
#   dpkg-dev lintian   build the .deb (dpkg-shlibdeps, dpkg-parsechangelog, strip) and check it
#   debootstrap dpkg-repack   the .deb test: a clean bookworm chroot, and the host's nodejs repacked
#                  into a local apt repository (test/package/deb.spec.ts)
#   qemu-system-x86 lvm2 thin-provisioning-tools busybox-static cpio kmod
#                  the LVM test bed: a QEMU/TCG guest (qemu-system-x86_64, virtiofsd) whose
#                  initramfs test/vm/build-guest.sh assembles from these (test/vm/README.md)
#   libvirt-clients virsh, for LIBVIRT_POOL refreshes (tested against libvirt's test:///default driver)
#   ansible-core   ansible-playbook, to run examples/ansible against the daemon (test/e2e/ansible-example.spec.ts)
#   libnbd-bin     nbdinfo, an NBD client independent of qemu, that checks the streaming export's
#                  handshake and size (test/e2e/nbd-export.spec.ts)
set -euo pipefail
packages=(qemu-utils chromium util-linux curl ca-certificates gzip xz-utils zstd bzip2 e2fsprogs xfsprogs
  prometheus qemu-system-x86 lvm2 thin-provisioning-tools busybox-static cpio kmod tmux libvirt-clients
  python3 make g++ dpkg-dev lintian debootstrap dpkg-repack ansible-core libnbd-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "--- apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "--- system packages already installed: ${packages[*]}"
fi
