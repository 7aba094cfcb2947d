# Shell helpers shared by the .ci/ and bench/ scripts. Source it; it defines functions only.

# step MESSAGE...: a section heading on stdout (the CI log's outline).
step() { printf '\n==> %s\n' "$*"; }
# log MESSAGE...: a timestamped line on stderr, prefixed with the script's name.
log() { printf '[%s %(%H:%M:%S)T] %s\n' "${0##*/}" -1 "$*" >&2; }
# die MESSAGE...: log it and exit 1.
die() { log "error: $*"; exit 1; }

# apt_install PACKAGE...: install Debian packages (needs root), refreshing the index only
# when the first attempt fails.
apt_install() {
  [ "$(id -u)" -eq 0 ] || die "$* missing and not root: apt-get install -y $*"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq "$@" >&2; then
    apt-get update -qq >&2
    apt-get install -y -qq "$@" >&2
  fi
}

# wait_for_port PID LOG [ERRLOG]: prints the port from the "listening" line a
# helpdesk-server started with port 0 writes to LOG. Fails (printing ERRLOG, default LOG)
# if the server exits first or nothing is logged within 60 s. Use as port=$(wait_for_port ...).
wait_for_port() {
  local pid=$1 out=$2 err=${3:-$2} deadline=$((SECONDS + 60)) port
  while :; do
    port=$(grep -m1 '"listening"' "$out" 2>/dev/null | grep -o '"port":[0-9]*' | cut -d: -f2 || true)
    if [ -n "$port" ]; then echo "$port"; return 0; fi
    kill -0 "$pid" 2>/dev/null || { cat "$err" >&2; die "the server exited before listening"; }
    [ "$SECONDS" -lt "$deadline" ] || die "no \"listening\" line in $out within 60 s"
    sleep 0.1
  done
}
