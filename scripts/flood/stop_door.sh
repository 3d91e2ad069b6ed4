#!/usr/bin/env bash
# Flood against a one-step door with a stop command: every spoofed SYN opens the door, so every
# packet wants a start command and a pending-stop record. Checks that the state file is written
# at most once per event-loop pass (not once per open), that start commands are bounded, and
# that a legitimate three-step knock on another door still opens.
#
#   scripts/flood/stop_door.sh [--rate PPS|max] [--duration SECONDS]
#
# Needs root. Two namespaces joined by a veth pair (10.232.0.0/24 only), torn down on exit.
# The doors run `true` (one-step door) and `date` into a temporary directory (the other door):
# nothing outside the namespaces and that directory is touched. knockd runs under
# `strace --seccomp-bpf` tracing only rename and fsync calls, to count the state-file writes.
# Prints one Markdown table row (see BENCHMARKS.md for the header).
#
# Environment: KNOCKD (default target/release/knockd), KNOCK (default target/release/knock);
# KEEP=1 keeps the run directory (log, strace output) and prints its path.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
KNOCKD=${KNOCKD:-$repo/target/release/knockd}
KNOCK=${KNOCK:-$repo/target/release/knock}
rate=25000
duration=8
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) rate=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "stop_door.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then echo "stop_door.sh: needs root" >&2; exit 1; fi
for tool in strace tcpreplay python3; do
    command -v "$tool" >/dev/null || { echo "stop_door.sh: needs $tool" >&2; exit 1; }
done
[ -x "$KNOCKD" ] && [ -x "$KNOCK" ] || cargo build --release -p knockd -p knock >&2

tag=$$
srv_ns="knstop-$tag-srv"
cli_ns="knstop-$tag-cli"
srv_if="kss$tag"
cli_if="ksc$tag"
srv_ip=10.232.0.2
work=$(mktemp -d /tmp/knock-stopdoor.XXXXXX)
trace_pid=""
replay_pid=""
cleanup() {
    local pid
    for pid in $trace_pid $replay_pid; do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$srv_ns" 2>/dev/null || true
    ip netns del "$cli_ns" 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$srv_ns"
ip netns add "$cli_ns"
ip link add "$srv_if" netns "$srv_ns" type veth peer name "$cli_if" netns "$cli_ns"
ip -n "$srv_ns" addr add "$srv_ip/24" dev "$srv_if"
ip -n "$cli_ns" addr add 10.232.0.1/24 dev "$cli_if"
for ns in "$srv_ns" "$cli_ns"; do ip -n "$ns" link set lo up; done
ip -n "$srv_ns" link set "$srv_if" up
ip -n "$cli_ns" link set "$cli_if" up
srv_mac=$(ip netns exec "$srv_ns" cat "/sys/class/net/$srv_if/address")
cli_mac=$(ip netns exec "$cli_ns" cat "/sys/class/net/$cli_if/address")
ip -n "$cli_ns" neigh replace "$srv_ip" lladdr "$srv_mac" dev "$cli_if" nud permanent
python3 "$repo/scripts/flood/gen_syn_pcap.py" --out "$work/flood.pcap" --count 200000 \
    --src-mac "$cli_mac" --dst-mac "$srv_mac" --dst-ip "$srv_ip" --dport 6000 \
    --avoid 10.232.0.0/16 --seed "$tag"

cat >"$work/knockd.conf" <<CONF
[options]
    LogFile = $work/knockd.log

[onestep]
    sequence      = 6000
    tcpflags      = syn
    start_command = true
    cmd_timeout   = 5
    stop_command  = true

[door]
    sequence    = 7000,8000,9000
    seq_timeout = 5
    tcpflags    = syn
    command     = date +%s.%N >> $work/opened
CONF
: >"$work/opened"

ip netns exec "$srv_ns" strace -f --seccomp-bpf -ttt -e trace=rename,renameat,renameat2,fsync \
    -o "$work/trace" "$KNOCKD" -i "$srv_if" -c "$work/knockd.conf" --state-file "$work/state" \
    >"$work/stdout" 2>"$work/stderr" &
trace_pid=$!
deadline=$((SECONDS + 15))
until grep -q "listening on" "$work/knockd.log" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then cat "$work/stderr" >&2; exit 1; fi
    sleep 0.05
done
sleep 0.5
knockd_pid=$(pgrep -P "$trace_pid" | head -n 1)

if [ "$rate" = max ]; then pace=(--topspeed); else pace=(--pps="$rate"); fi
t_start=$(date +%s.%N)
ip netns exec "$cli_ns" tcpreplay -i "$cli_if" "${pace[@]}" --loop=0 --duration="$duration" \
    --preload-pcap "$work/flood.pcap" >"$work/tcpreplay.out" 2>&1 &
replay_pid=$!
sleep "$(awk -v d="$duration" 'BEGIN { print d / 2 }')"
t0=$(ip netns exec "$cli_ns" sh -c 'date +%s.%N; exec "$@" >/dev/null 2>&1' sh "$KNOCK" "$srv_ip" 7000 8000 9000)
wait "$replay_pid" || true
replay_pid=""
t_end=$(date +%s.%N)
sleep 1
opened="no"; latency="–"
if [ -s "$work/opened" ]; then
    opened="yes"
    latency=$(awk -v a="$t0" -v b="$(head -n 1 "$work/opened")" 'BEGIN { printf "%.1f ms", (b - a) * 1000 }')
fi
up="yes"; kill -0 "$knockd_pid" 2>/dev/null || up="**no**"
kill -USR1 "$knockd_pid" 2>/dev/null || true
sleep 0.5
kill -TERM "$knockd_pid" 2>/dev/null || true
wait "$trace_pid" || true
trace_pid=""

sent=$(grep -o -E 'Actual: [0-9]+ packets' "$work/tcpreplay.out" | grep -o -E '[0-9]+' || echo "?")
pps=$(grep -o -E '[0-9.]+ pps' "$work/tcpreplay.out" | head -n 1 | cut -d' ' -f1 || echo 0)
opens=$(grep -c "onestep: OPEN SESAME" "$work/knockd.log" || true)
starts=$(grep -c "onestep: running command: true" "$work/knockd.log" || true)
# State-file writes during the flood window: renames onto the state file, and all fsyncs.
read -r writes fsyncs < <(awk -v a="$t_start" -v b="$t_end" -v state="$work/state" '
    { t = $2 + 0 }
    t >= a && t <= b && /rename/ && index($0, state "\"") { w++ }
    t >= a && t <= b && /fsync\(/ { f++ }
    END { print w + 0, f + 0 }' "$work/trace")
secs=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }')
printf '| %s | %.0f | %s | %s | %s | %s | %s (%.0f/s) | %s (%.0f/s) | %s | %s | %s |\n' \
    "$rate" "$pps" "$sent" "$secs" "$opens" "$starts" \
    "$writes" "$(awk -v w="$writes" -v s="$secs" 'BEGIN { print w / s }')" \
    "$fsyncs" "$(awk -v w="$fsyncs" -v s="$secs" 'BEGIN { print w / s }')" \
    "$opened" "$latency" "$up"
