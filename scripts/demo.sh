#!/usr/bin/env bash
# Quick start: on a fresh Debian 12 machine with Node 20, installs what is missing, builds the daemon,
# provisions a volume from a small qcow2 served over HTTP, follows the job over Server-Sent Events, and
# checks the volume byte for byte against `qemu-img convert -O raw`. The daemon is left running on
# 127.0.0.1:8080 (its state under ./var) so you can try the API; the script prints how to stop it.
# When 8080 is taken, the daemon takes a free port instead (nothing on 8080 is touched) and the
# script prints the address it used.
#
#   bash scripts/demo.sh
#
# DEMO_SKIP_INSTALL=1 skips `npm ci` and `npm run build` (for a second run on a tree the demo has
# already built; the quick-start test uses it for its second case only).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PREFERRED_PORT=8080
DEMO_DIR=$ROOT/var/demo
VOLUME_NAME=demo-vm
VOLUME_SIZE_GB=1

say() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'demo: %s\n' "$*" >&2
  exit 1
}

# --- 1. system packages (only what is missing) ---------------------------------------------------
missing=()
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || missing+=(qemu-utils)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]} > 0)); then
  say "installing ${missing[*]}"
  if ((EUID == 0)); then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  elif command -v sudo >/dev/null; then
    sudo apt-get update
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
  else
    die "please install ${missing[*]} (apt-get install -y ${missing[*]}) and run me again"
  fi
fi
command -v node >/dev/null || die 'Node.js 20.19 or newer is needed (node not found)'
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
  die "Node.js 20.19 or newer is needed (this is $(node --version))"

# --- 2. build ------------------------------------------------------------------------------------
if [[ ${DEMO_SKIP_INSTALL:-} == 1 && -f dist/src/main.js ]]; then
  say 'DEMO_SKIP_INSTALL=1: using node_modules and dist/ as they are'
else
  say 'npm ci'
  npm ci --no-audit --no-fund
  say 'npm run build'
  npm run build
fi

# --- 3. a stopped earlier demo, and a free port --------------------------------------------------
mkdir -p "$DEMO_DIR"
if [[ -f $DEMO_DIR/daemon.pid ]]; then
  old=$(<"$DEMO_DIR/daemon.pid")
  if [[ $old =~ ^[0-9]+$ ]] && kill -0 "$old" 2>/dev/null && grep -qs 'dist/src/main.js' "/proc/$old/cmdline"; then
    say "stopping the daemon of an earlier demo (PID $old)"
    kill "$old"
    for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
  fi
  rm -f "$DEMO_DIR/daemon.pid"
fi
# Whether anything listens on 127.0.0.1:8080 (or on all addresses at 8080): binding it is the one
# test that also sees a listener that does not speak HTTP. Taken: the daemon gets PORT=0 (a port
# the kernel picks) and the listener on 8080 is left alone.
if python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$PREFERRED_PORT" 2>/dev/null; then
  daemon_port=$PREFERRED_PORT
else
  say "127.0.0.1:$PREFERRED_PORT is already in use; the demo daemon takes a free port instead"
  daemon_port=0
fi

# --- 4. a demo image: 1 GiB virtual qcow2, patterns with holes between them -----------------------
# The 512 MiB of compressed clusters download as ~2 MB but take qemu-img a second or two to convert,
# so there is progress to watch.
say "making $DEMO_DIR/demo.qcow2"
rm -f "$DEMO_DIR/demo.qcow2" "$DEMO_DIR/reference.raw"
qemu-img create -q -f qcow2 "$DEMO_DIR/demo.qcow2" 1G
qemu-io -f qcow2 -c 'write -c -P 0x33 0 512M' -c 'write -P 0x5a 600M 1M' -c 'write -P 0xa5 1000M 24M' \
  "$DEMO_DIR/demo.qcow2" >/dev/null

# --- 5. serve it over HTTP on 127.0.0.1, on a port the kernel picks -------------------------------
http_pid=
daemon_pid=
cleanup() {
  status=$?
  if [[ -n $http_pid ]]; then kill "$http_pid" 2>/dev/null || true; fi
  if ((status != 0)) && [[ -n $daemon_pid ]]; then
    printf 'demo failed; daemon log (%s):\n' "$DEMO_DIR/daemon.log" >&2
    tail -n 20 "$DEMO_DIR/daemon.log" >&2 || true
    kill "$daemon_pid" 2>/dev/null || true
    rm -f "$DEMO_DIR/daemon.pid"
  fi
}
trap cleanup EXIT

python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$DEMO_DIR" >"$DEMO_DIR/http.log" 2>&1 &
http_pid=$!
http_port=
for _ in $(seq 100); do
  line=$(head -n 1 "$DEMO_DIR/http.log" 2>/dev/null || true)
  if [[ $line =~ port\ ([0-9]+) ]]; then
    http_port=${BASH_REMATCH[1]}
    break
  fi
  kill -0 "$http_pid" 2>/dev/null || die "the HTTP server did not start: $(cat "$DEMO_DIR/http.log")"
  sleep 0.1
done
[[ -n $http_port ]] || die 'the HTTP server did not report its port'
image_url=http://127.0.0.1:$http_port/demo.qcow2
say "serving $image_url"

# --- 6. the daemon, on its embedded defaults (127.0.0.1:8080, state in ./var) ---------------------
# One setting differs: the daemon refuses image URLs that reach loopback addresses (a guard against
# server-side request forgery), and the demo image is served from 127.0.0.1. IMAGE_ALLOW_ADDRESSES
# lets exactly that address through (the setting takes addresses, not ports); a daemon you start
# yourself keeps the strict default.
say "starting the daemon (IMAGE_ALLOW_ADDRESSES=127.0.0.1/32, for the demo's image server)"
rm -f "$ROOT/var/volumes/$VOLUME_NAME.raw" # the demo's own volume from an earlier run
# setsid: the daemon has its own session and outlives this script (and a Ctrl-C in this terminal).
PORT=$daemon_port IMAGE_ALLOW_ADDRESSES=127.0.0.1/32 \
  setsid node dist/src/main.js >"$DEMO_DIR/daemon.log" 2>&1 </dev/null &
daemon_pid=$!
echo "$daemon_pid" >"$DEMO_DIR/daemon.pid"
# The address it listens on, from its "listening on http://<host>:<port>" log line.
API=
for _ in $(seq 300); do
  if [[ $(<"$DEMO_DIR/daemon.log") =~ listening\ on\ (http://[^\"[:space:]]+) ]]; then
    API=${BASH_REMATCH[1]}
    break
  fi
  kill -0 "$daemon_pid" 2>/dev/null || die "the daemon exited during start: $(tail -n 5 "$DEMO_DIR/daemon.log")"
  sleep 0.1
done
[[ -n $API ]] || die "the daemon did not report its address in 30 s (see $DEMO_DIR/daemon.log)"
say "the daemon listens on $API"
curl -fsS "$API/health"
echo

# --- 7. provision -------------------------------------------------------------------------------
say "POST $API/api/v1/provision"
body=$(printf '{"image_url":"%s","volume_name":"%s","volume_size_gb":%d,"image_type":"qcow2","correlation_id":"demo"}' \
  "$image_url" "$VOLUME_NAME" "$VOLUME_SIZE_GB")
echo "$body"
http_code=$(curl -sS -o "$DEMO_DIR/submit.json" -w '%{http_code}' -X POST "$API/api/v1/provision" \
  -H 'Content-Type: application/json' --data-binary "$body")
cat "$DEMO_DIR/submit.json"
echo
[[ $http_code == 202 ]] || die "expected 202 Accepted, got $http_code"
job_id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["job_id"])' <"$DEMO_DIR/submit.json")
[[ $job_id =~ ^[0-9a-f-]{36}$ ]] || die "no job id in the answer"

# --- 8. follow it over Server-Sent Events until `end` (the server closes the stream then) ---------
say "curl -N $API/api/v1/jobs/$job_id/events"
event=
curl -sS -N --max-time 300 "$API/api/v1/jobs/$job_id/events" | while IFS= read -r line; do
  case $line in
    'event: '*) event=${line#event: } ;;
    'data: '*)
      [[ $line =~ \"status\":\"([a-z]+)\" ]] && status=${BASH_REMATCH[1]} || status=?
      [[ $line =~ \"stage\":\"([a-z_]+)\" ]] && stage=${BASH_REMATCH[1]} || stage=-
      [[ $line =~ \"percent\":([0-9.]+) ]] && percent=${BASH_REMATCH[1]} || percent=?
      printf '  %-9s %-10s %-16s %6s %%\n' "$event" "$status" "$stage" "$percent"
      ;;
  esac
done

# --- 9. final status, and the volume against qemu-img's own conversion ---------------------------
say "GET $API/api/v1/status/$job_id"
curl -fsS "$API/api/v1/status/$job_id" >"$DEMO_DIR/status.json"
python3 -m json.tool "$DEMO_DIR/status.json"
final=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])' <"$DEMO_DIR/status.json")
[[ $final == completed ]] || die "the job ended $final"
volume=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["volume_path"])' <"$DEMO_DIR/status.json")

say "comparing $volume with qemu-img convert -O raw of the image"
qemu-img convert -f qcow2 -O raw "$DEMO_DIR/demo.qcow2" "$DEMO_DIR/reference.raw"
truncate -s "$(stat -c %s "$volume")" "$DEMO_DIR/reference.raw"
cmp "$volume" "$DEMO_DIR/reference.raw" || die 'the volume differs from the image'
rm -f "$DEMO_DIR/reference.raw"
echo "identical: $(stat -c %s "$volume") bytes"

# --- 10. done: the HTTP server stops (trap), the daemon stays ------------------------------------
cat <<EOF

Demo complete. The daemon keeps running:
  address   $API
  PID       $daemon_pid   (stop it: kill $daemon_pid)
  log       $DEMO_DIR/daemon.log
  API       $API/api/v1/jobs   Swagger UI $API/docs
  state     $ROOT/var (jobs database, volumes)
  note      it allows image URLs on 127.0.0.1 (IMAGE_ALLOW_ADDRESSES=127.0.0.1/32) for the demo image
EOF
