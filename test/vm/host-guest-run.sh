#!/bin/sh
# The host guest's test runner (build-host-guest.sh installs it as /usr/local/sbin/lvp-guest-run,
# run by lvp-guest-run.service once multi-user.target is reached; its output goes to ttyS0).
# Kernel command line, as for the LVM guest (guest-init.sh):
#   lvp.repo=<abs path>   mount the virtiofs share tagged "repo" there and run in it
#   lvp.cmd=<rel path>    script on the share, relative to lvp.repo, to run with sh
# Prints "LVP-GUEST-READY" before the command and "LVP-GUEST-EXIT=<rc>" after it, then powers
# off at once (the root disk is a throwaway overlay).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb

finish() {
  echo "LVP-GUEST-EXIT=$1"
  sync
  systemctl poweroff --force --force
  exit "$1"
}

repo=
cmd=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    lvp.repo=*) repo=${arg#lvp.repo=} ;;
    lvp.cmd=*) cmd=${arg#lvp.cmd=} ;;
  esac
done
if [ -z "$repo" ] || [ -z "$cmd" ]; then
  echo "lvp-guest: lvp.repo= and lvp.cmd= are required on the kernel command line"
  finish 125
fi
modprobe virtiofs
mkdir -p "$repo"
if ! mount -t virtiofs repo "$repo"; then
  echo "lvp-guest: cannot mount the virtiofs share 'repo' at $repo"
  finish 125
fi
[ -f "$repo/$cmd" ] || {
  echo "lvp-guest: command file $repo/$cmd is missing"
  finish 125
}
read -r up _ </proc/uptime
echo "lvp-guest: [${up}s] ready ($(systemctl is-system-running 2>/dev/null))"
echo "LVP-GUEST-READY"
cd "$repo" || finish 125
sh "$repo/$cmd" </dev/null
rc=$?
cd /
finish "$rc"
