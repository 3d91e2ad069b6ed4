#!/usr/bin/env bash
# Quick start: build knockd and knock, run knockd on the loopback interface with
# examples/demo.conf, knock it with our client, show the log lines of the successful knock and
# of the stop command firing 3 seconds later, then stop knockd with SIGTERM.
#
#   scripts/demo.sh          (as root, or as a user who may sudo)
#
# On a fresh Debian/Ubuntu machine it installs libpcap-dev first (apt). It needs cargo
# (https://rustup.rs). It builds in debug mode (`cargo build -p knock-server -p knock-client`), which
# compiles faster than --release and is what scripts/test.sh builds too.
# Nothing touches the firewall: the demo's commands only print. Everything knockd writes (log,
# state file) goes to a temporary directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() {
    printf '\ndemo.sh: %s\n' "$*" >&2
    exit 1
}

# Only capture needs privileges (CAP_NET_RAW); building does not. As a user, sudo is used for
# apt-get and for running knockd, and cargo keeps running as the user.
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    fail "run me as root (or install sudo): knockd needs CAP_NET_RAW to capture packets"
fi

if ! dpkg-query -W -f='${Status}' libpcap-dev 2>/dev/null | grep -q "install ok installed"; then
    command -v apt-get >/dev/null || fail "install the libpcap development files (libpcap-dev)"
    say "installing libpcap-dev"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends libpcap-dev >/dev/null
fi
command -v cargo >/dev/null || fail "cargo not found: install Rust from https://rustup.rs"

say "cargo build -p knock-server -p knock-client"
cargo build -p knock-server -p knock-client
knockd=${CARGO_TARGET_DIR:-target}/debug/knockd
knock=${CARGO_TARGET_DIR:-target}/debug/knock

work=$(mktemp -d /tmp/knock-demo.XXXXXX)
chmod 755 "$work"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then "${as_root[@]}" kill -KILL "$server_pid" 2>/dev/null || true; fi
    "${as_root[@]}" rm -rf "$work"
}
trap cleanup EXIT

# wait_for FILE PATTERN SECONDS: polls FILE for a line matching PATTERN, within a deadline.
wait_for() {
    local deadline=$((SECONDS + $3))
    until grep -q -- "$2" "$1" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.05
    done
}
show_everything() {
    echo "--- knockd log" >&2
    cat "$work/knockd.log" >&2 2>/dev/null || true
    echo "--- knockd stdout/stderr" >&2
    cat "$work/stdout" "$work/stderr" >&2 2>/dev/null || true
}

say "starting knockd on lo with examples/demo.conf"
grep -v "^#" examples/demo.conf | sed "/^$/d"
# exec: the background job is knockd itself (or sudo, which passes SIGTERM on).
"${as_root[@]}" "$knockd" -i lo -c examples/demo.conf -g "$work/knockd.log" \
    --state-file "$work/pending-stops" -v >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
wait_for "$work/knockd.log" "listening on lo" 15 || {
    show_everything
    fail "knockd did not start"
}

say "knock -v 127.0.0.1 7000 8000:udp 9000"
"$knock" -v 127.0.0.1 7000 8000:udp 9000

wait_for "$work/knockd.log" "OPEN SESAME" 5 && wait_for "$work/stdout" "^demo: start command" 5 || {
    show_everything
    fail "the knock did not open the door"
}
say "knockd log: the knock was recognised and the start command ran"
grep -E "Stage|OPEN SESAME|running command" "$work/knockd.log"
echo "command output: $(grep "^demo: start command" "$work/stdout")"

say "waiting for cmd_timeout (3 s): the stop command fires"
wait_for "$work/knockd.log" "command timeout" 10 && wait_for "$work/stdout" "^demo: stop command" 5 || {
    show_everything
    fail "the stop command did not run"
}
grep -E "command timeout" "$work/knockd.log"
grep -E "running command: echo \"demo: stop" "$work/knockd.log"
echo "command output: $(grep "^demo: stop command" "$work/stdout")"

say "stopping knockd (SIGTERM)"
"${as_root[@]}" kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
grep -E "shutting down" "$work/knockd.log"
# 15 is knockd's status after SIGTERM, as knockd 0.8 (Debian's unit lists it as success).
[ "$status" -eq 15 ] || {
    show_everything
    fail "knockd exited with status $status (expected 15 after SIGTERM)"
}
echo "knockd exited with status 15 (stopped by SIGTERM)"

say "demo finished: knockd and knock work. Next: scripts/test.sh, and examples/configs/ for real firewalls"
