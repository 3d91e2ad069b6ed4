#!/usr/bin/env bash
# Flood against a one-step door with a stop command: every spoofed SYN opens the door, so every
# packet wants a start command and a pending-stop record. Checks that the state file is written
# at most once per event-loop pass (not once per open), that start commands are bounded, and
# that a legitimate three-step knock on another door still opens.
#
#   scripts/flood/stop_door.sh [--rates "5000 25000"] [--duration SECONDS] [--tsv FILE]
#
# Needs root. Two namespaces joined by a veth pair (10.232.0.0/24 only, names with this
# script's pid), torn down on exit. The doors run `true` (one-step door) and `date` into a
# temporary directory (the other door): nothing outside the namespaces and that directory is
# touched. knockd runs under `strace --seccomp-bpf` tracing only rename and fsync calls, to
# count the state-file writes. A fresh knockd for every rate ("max" = tcpreplay --topspeed).
# Prints the Markdown section of BENCHMARKS.md on stdout (--tsv FILE: the figures, tab-separated:
# stop_door, rate, achieved pps, opens, starts, writes, fsyncs, opened, latency ms, up).
#
# Environment: KNOCKD (default target/release/knockd), KNOCK (default target/release/knock);
# KEEP=1 keeps the run directory (logs, strace output) and prints its path.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. scripts/flood/lib.sh
KNOCKD=${KNOCKD:-$repo/target/release/knockd}
KNOCK=${KNOCK:-$repo/target/release/knock}
rates="5000 25000"
duration=6
tsv=""
command_line="sudo scripts/flood/stop_door.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --rates | --rate) rates=$2; command_line+=" --rates \"$2\""; shift 2 ;;
        --duration) duration=$2; command_line+=" --duration $2"; shift 2 ;;
        --tsv) tsv=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "stop_door.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$duration" in '' | *[!0-9]*) echo "stop_door.sh: --duration must be whole seconds" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then echo "stop_door.sh: needs root" >&2; exit 1; fi
need_tools strace tcpreplay python3 ip
# knockd runs at the priority its systemd unit gives it (sets ours_sched and priority).
unit_priority
ensure_release_binaries
say() { echo "stop_door: $*" >&2; }

load_start=$(loadavg)
bench_work=$(mktemp -d /tmp/knock-stopdoor.XXXXXX)
trap netpair_cleanup EXIT
trap 'exit 130' INT TERM
netpair_up sd 10.232.0
python3 "$repo/scripts/flood/gen_syn_pcap.py" --out "$bench_work/flood.pcap" --count 200000 \
    --src-mac "$cli_mac" --dst-mac "$srv_mac" --dst-ip "$srv_ip" --dport 6000 \
    --avoid 10.232.0.0/16 --seed "$$"

# run_rate RATE: one fresh knockd under strace, one flood; appends the table row to
# $bench_work/rows (run in this shell, not a subshell, so the cleanup knows its processes).
run_rate() {
    local rate=$1 dir="$bench_work/rate-$1" trace_pid replay_pid knockd_pid pace t_start t0 t_end
    mkdir -p "$dir"
    cat >"$dir/knockd.conf" <<CONF
[options]
    LogFile = $dir/knockd.log

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
    command     = date +%s.%N >> $dir/opened
CONF
    : >"$dir/opened"
    ip netns exec "$srv_ns" strace -f --seccomp-bpf -ttt -e trace=rename,renameat,renameat2,fsync \
        -o "$dir/trace" "${ours_sched[@]}" "$KNOCKD" -i "$srv_if" -c "$dir/knockd.conf" --state-file "$dir/state" \
        >"$dir/stdout" 2>"$dir/stderr" &
    trace_pid=$!
    bench_pids+=" $trace_pid"
    if ! wait_log "$dir/knockd.log" "listening on" 15; then
        say "knockd did not start:"; cat "$dir/stderr" >&2
        kill -KILL "$trace_pid" 2>/dev/null || true; wait "$trace_pid" 2>/dev/null || true
        forget_pid "$trace_pid"
        printf '| %s | | | | | | | | | did not start | | |\n' "$rate" >>"$bench_work/rows"
        [ -z "$tsv" ] || printf 'stop_door\t%s\t\t\t\t\t\tdid not start\t\tno\n' "$rate" >>"$tsv"
        return 0
    fi
    sleep 0.5
    knockd_pid=$(pgrep -P "$trace_pid" | head -n 1)

    if [ "$rate" = max ]; then pace=(--topspeed); else pace=(--pps="$rate"); fi
    t_start=$(date +%s.%N)
    ip netns exec "$cli_ns" tcpreplay -i "$cli_if" "${pace[@]}" --loop=0 --duration="$duration" \
        --preload-pcap "$bench_work/flood.pcap" >"$dir/tcpreplay.out" 2>&1 &
    replay_pid=$!
    bench_pids+=" $replay_pid"
    sleep "$(awk -v d="$duration" 'BEGIN { print d / 2 }')"
    t0=$(ip netns exec "$cli_ns" sh -c 'date +%s.%N; exec "$@" >/dev/null 2>&1' sh "$KNOCK" "$srv_ip" 7000 8000 9000)
    wait "$replay_pid" || true
    forget_pid "$replay_pid"
    t_end=$(date +%s.%N)
    # The legitimate command may wait behind the flood's start commands: up to 10 s.
    local deadline=$((SECONDS + 10))
    while [ ! -s "$dir/opened" ] && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    local opened="**no**" latency="–" latency_ms="" up="yes" stats counts
    if [ -s "$dir/opened" ]; then
        opened="yes"
        latency_ms=$(awk -v a="$t0" -v b="$(head -n 1 "$dir/opened")" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
        latency="$latency_ms ms"
    fi
    alive "$knockd_pid" || up="**no**"
    stats=$(statistics_line "$knockd_pid" "$dir/knockd.log")
    read -r -a counts <<<"$(capture_counts "$stats")"
    kill -TERM "$knockd_pid" 2>/dev/null || true
    wait "$trace_pid" || true
    forget_pid "$trace_pid"

    local sent pps opens starts writes fsyncs secs
    sent=$(grep -o -E 'Actual: [0-9]+ packets' "$dir/tcpreplay.out" | grep -o -E '[0-9]+' || echo "?")
    pps=$(grep -o -E '[0-9.]+ pps' "$dir/tcpreplay.out" | head -n 1 | cut -d' ' -f1 || true)
    opens=$(grep -c "onestep: OPEN SESAME" "$dir/knockd.log" || true)
    starts=$(grep -c "onestep: running command: true" "$dir/knockd.log" || true)
    # State-file writes during the flood window: renames onto the state file, and all fsyncs.
    read -r writes fsyncs < <(awk -v a="$t_start" -v b="$t_end" -v state="$dir/state" '
        { t = $2 + 0 }
        t >= a && t <= b && /rename/ && index($0, state "\"") { w++ }
        t >= a && t <= b && /fsync\(/ { f++ }
        END { print w + 0, f + 0 }' "$dir/trace")
    secs=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }')
    printf '| %s | %.0f | %s | %s | %s | %s | %s (%.0f/s) | %s (%.0f/s) | %s / %s | %s | %s | %s |\n' \
        "$rate" "${pps:-0}" "$sent" "$secs" "$opens" "$starts" \
        "$writes" "$(awk -v w="$writes" -v s="$secs" 'BEGIN { print w / s }')" \
        "$fsyncs" "$(awk -v w="$fsyncs" -v s="$secs" 'BEGIN { print w / s }')" \
        "${counts[1]}" "${counts[2]}" "$opened" "$latency" "$up" >>"$bench_work/rows"
    [ -z "$tsv" ] || printf 'stop_door\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rate" "${pps:-0}" \
        "$opens" "$starts" "$writes" "$fsyncs" "${opened//\*/}" "$latency_ms" "${up//\*/}" >>"$tsv"
    say "$rate pps: opens=$opens starts=$starts writes=$writes opened=$opened latency=$latency"
}

[ -z "$tsv" ] || : >"$tsv"
: >"$bench_work/rows"
for rate in $rates; do
    say "flood at $rate packets/s for ${duration}s"
    run_rate "$rate"
done

cat <<SECTION
## Flood against a one-step door with a stop command

\`$command_line\` (release build).
Every spoofed SYN (200 000 distinct sources from 10.0.0.0/8, looped, to port 6000) opens
the one-step door \`[onestep]\` (\`start_command = true\`, \`cmd_timeout = 5\`,
\`stop_command = true\`), so every packet asks for a start command and a pending-stop record; a
legitimate \`7000,8000,9000\` knock on another door (\`command = date …\`) is sent halfway.
knockd runs under \`strace --seccomp-bpf\` tracing only \`rename*\` and \`fsync\`, which counts the
state-file writes (each write is one rename and two fsyncs: the file and its directory). The
window is from the flood's start to its end, ${duration} s per rate. *Capture drops* are the
kernel ring's and the capture queue's, from knockd's \`SIGUSR1\` statistics line. Priority:
${priority}.
Load average: $load_start at the start, $(loadavg) at the end.

| target rate (pps) | achieved (pps) | packets sent | window (s) | opens logged | start commands run | state-file writes | fsyncs | capture drops (ring / queue) | legitimate knock opened | knock→command latency | server up |
|---|---|---|---|---|---|---|---|---|---|---|---|
SECTION
cat "$bench_work/rows"
cat <<'SECTION'

Disk writes stay bounded (at most one state-file write per 10 ms, and only while records
change). Start commands are bounded by the 4 096 jobs a door may have waiting (the others are
refused and logged once per power of two), and the `cmd_timeout` of a refused open runs no stop
command. The doors take turns for command slots (a door's stops before its starts) and the
refusal count is per door, so neither the flooded door's waiting starts nor the stops its
pending-stop bound fires early hold back the legitimate knock's command (when stops went
first over all doors, it waited 2.2-3.3 s here at 25 000 packets/s). When the event
loop falls behind (it logs two lines per packet and spawns every accepted start command
itself), the capture ring and queue drop events: the legitimate command runs late, or one of
its knocks is among the dropped packets and the door stays closed.
SECTION
