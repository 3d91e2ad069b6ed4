#!/usr/bin/env bash
# Flood and latency benchmark: our knockd side by side with Debian's knockd 0.8.
#
#   scripts/flood.sh [--rates "5000 25000 200000 max"] [--duration SECONDS] [--out FILE]
#                    [--tsv FILE] [--servers "ours 0.8"] [--idle-knocks N] [--idle-seconds N]
#                    [--other-port-rates "max"]
#
# Needs root (network namespaces). Everything happens inside two namespaces this script creates
# (a "server" and a "client", joined by a veth pair, addresses in 10.231.0.0/24 only) and is torn
# down on exit, whatever happens. No packet leaves them; the host's firewall is never touched:
# the knockd configurations only run `date` into a temporary directory.
#
# For each server it measures
#   * at idle: knock-to-command latency over N knocks (client send -> the command's own
#     high-resolution timestamp), CPU seconds and wakeups (context switches) over 10 s idle;
#     for our knockd also each stage (capture -> decision -> spawn, p50/p99) from its JSON log;
#   * under a flood of spoofed-source TCP SYNs to the door's first port, replayed with
#     tcpreplay at each rate ("max" = --topspeed) for --duration seconds, with one legitimate
#     knock (our `knock` client) sent halfway through: whether it opened the door, its latency,
#     the server's CPU seconds (utime+stime from /proc/PID/stat), peak RSS (VmHWM), packets the
#     server's interface received and dropped (`ip -s link`), and whether the server survived;
#     CPU per packet is the server's CPU seconds over the packets its interface received;
#   * under a flood of the same SYNs to a port no door uses (7001), at each --other-port-rates
#     rate (default "max"; "" skips it): the server's CPU, which must stay near zero because
#     the kernel filter drops those packets before they are copied to the server.
# and prints Markdown tables on stdout (and to --out FILE; --tsv FILE also writes the figures
# tab-separated for scripts/bench.sh). Progress goes to stderr.
#
# Environment: KNOCKD (our server binary, default target/release/knockd), KNOCK (our client,
# default target/release/knock), KNOCKD08 (default /usr/sbin/knockd). Missing release binaries
# are built with `cargo build --release -p knock-server -p knock-client`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

rates="5000 25000 200000 max"
duration=8
servers="ours 0.8"
idle_knocks=20
idle_seconds=10
settle=15
out=""
tsv=""
other_port_rates="max"
while [ $# -gt 0 ]; do
    case "$1" in
        --rates) rates=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --servers) servers=$2; shift 2 ;;
        --idle-knocks) idle_knocks=$2; shift 2 ;;
        --idle-seconds) idle_seconds=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --tsv) tsv=$2; shift 2 ;;
        --other-port-rates) other_port_rates=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "flood.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$duration" in '' | *[!0-9]*) echo "flood.sh: --duration must be whole seconds" >&2; exit 2 ;; esac
[ "$duration" -ge 2 ] && [ "$duration" -le 60 ] || { echo "flood.sh: --duration must be 2..60" >&2; exit 2; }

say() { echo "flood: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    echo "flood.sh: needs root (network namespaces); try: sudo $0 $*" >&2
    exit 1
fi

# --- what we need -------------------------------------------------------------------------------
packages=(iproute2 tcpreplay hping3 knockd python3 libpcap-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's knockd package ships a service listening on eth0; it must not run beside us.
if command -v systemctl >/dev/null 2>&1; then systemctl stop knockd 2>/dev/null || true; fi

KNOCKD=${KNOCKD:-$repo/target/release/knockd}
KNOCK=${KNOCK:-$repo/target/release/knock}
KNOCKD08=${KNOCKD08:-/usr/sbin/knockd}
if [[ " $servers " == *" ours "* ]] && { [ ! -x "$KNOCKD" ] || [ ! -x "$KNOCK" ]; }; then
    say "building our binaries (cargo build --release -p knock-server -p knock-client)"
    cargo build --release -p knock-server -p knock-client >&2
fi
client_name="ours (${KNOCK#"$repo"/})"
if [ ! -x "$KNOCK" ]; then
    say "our client is missing; knocking with the 0.8 client /usr/bin/knock instead"
    KNOCK=/usr/bin/knock
    client_name="0.8 (/usr/bin/knock)"
fi
# With two or more CPUs the server runs on CPU 0 and tcpreplay on the last one, so the flood
# generator (and the kernel work of delivering its packets, done on the sending CPU for a
# veth) does not compete with the server for the same core.
if [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c 0)
    replay_cpu=(taskset -c "$(($(nproc) - 1))")
    pinning="server on CPU 0, tcpreplay on CPU $(($(nproc) - 1)) (taskset)"
else
    server_cpu=()
    replay_cpu=()
    pinning="one CPU: server and tcpreplay share it"
fi

# --- namespaces, veth, cleanup ------------------------------------------------------------------
# shellcheck source=scripts/flood/lib.sh
. "$repo/scripts/flood/lib.sh"
# Each server runs at the priority its packaged systemd unit gives it (see unit_priority);
# knockd 0.8's Debian unit sets none.
unit_priority
[ ${#ours_sched[@]} -eq 0 ] || priority+=", 0.8 at nice 0 as Debian's unit runs it"
tag=$$
work=$(mktemp -d /tmp/knock-flood.XXXXXX)
# The processes we started and have not reaped yet (reaped ones are cleared, so a reused pid is
# never signalled).
server_pid=""
replay_pid=""

cleanup() {
    local pid
    for pid in $server_pid $replay_pid; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns del "$srv_ns" 2>/dev/null || true
    ip netns del "$cli_ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Namespaces "knfl-PID-srv"/"knfl-PID-cli", 10.231.0.2 (server) and .1 (client); the client
# knows the server's MAC, so the legitimate knock never waits for ARP.
netpair_up fl 10.231.0

# 500 000 distinct spoofed sources; tcpreplay loops over them when the rate needs more.
pcap="$work/flood.pcap"
say "generating $pcap"
python3 "$repo/scripts/flood/gen_syn_pcap.py" --out "$pcap" --count 500000 \
    --src-mac "$cli_mac" --dst-mac "$srv_mac" --dst-ip "$srv_ip" --dport 7000 \
    --avoid 10.231.0.0/16 --seed "$tag"

# --- helpers ------------------------------------------------------------------------------------
# cpu_seconds, peak_rss_mib and alive come from scripts/flood/lib.sh.
# Context switches of every thread: how often the process woke up.
wakeups() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/^(voluntary|nonvoluntary)_ctxt_switches/ { n += $2 } END { print n + 0 }'
}
if_stat() { ip netns exec "$srv_ns" cat "/sys/class/net/$srv_if/statistics/$1"; }
# process_cpu_ns PID: CPU nanoseconds so far of the process's live threads, from
# /proc/PID/task/*/schedstat. For the idle window: /proc/PID/stat counts 10 ms ticks, truncated,
# so it can step by 0.01 s for any CPU at all when the total crosses a tick. The flood rows keep
# cpu_seconds: /proc/PID/stat also counts threads that have ended (command reapers), which
# schedstat no longer lists, and a flood's total spans many ticks.
process_cpu_ns() {
    local task ns total=0
    for task in /proc/"$1"/task/*; do
        read -r ns _ <"$task/schedstat" 2>/dev/null || continue
        total=$((total + ns))
    done
    echo "$total"
}
# thread_cpu PID: "MAIN_NS MAIN_SLICES CAPTURE_NS CAPTURE_SLICES": CPU nanoseconds and times
# scheduled in (wake-ups, near enough) so far of the process's main thread and of its capture
# threads (named "capture IF"), from /proc/PID/task/*/schedstat (nanosecond resolution).
thread_cpu() {
    local task comm ns slices main=0 main_n=0 capture=0 capture_n=0
    for task in /proc/"$1"/task/*; do
        comm=$(cat "$task/comm" 2>/dev/null) || continue
        read -r ns _ slices <"$task/schedstat" 2>/dev/null || continue
        if [ "${task##*/}" = "$1" ]; then
            main=$((main + ns)) main_n=$((main_n + slices))
        elif [[ "$comm" == capture* ]]; then
            capture=$((capture + ns)) capture_n=$((capture_n + slices))
        fi
    done
    echo "$main $main_n $capture $capture_n"
}

# Writes the configuration for a run into $1 (the run directory).
write_config() {
    cat >"$1/knockd.conf" <<EOF
[options]
    LogFile = $1/knockd.log

[flood]
    sequence    = 7000,8000,9000
    seq_timeout = 5
    tcpflags    = syn
    command     = date +%s.%N >> $1/opened
EOF
}

# Our knockd keeps pending stop commands in a state file; point it into the run directory so the
# benchmark never touches /var/lib.
ours_extra_args() {
    local help
    help=$("$KNOCKD" --help 2>&1 || true)
    if grep -q -- '--state-file' <<<"$help"; then
        printf '%s\n' --state-file "$1/state"
    fi
    stage_json_args "$1" "$help"
}

# start_server KIND DIR: creates DIR and starts the server in the server namespace; sets
# server_pid. If the server does not come up, prints its output, stops it and returns 1.
start_server() {
    local kind=$1 dir=$2 args=()
    mkdir -p "$dir"
    write_config "$dir"
    : >"$dir/opened"
    if [ "$kind" = ours ]; then
        mapfile -t args < <(ours_extra_args "$dir")
        ip netns exec "$srv_ns" "${server_cpu[@]}" "${ours_sched[@]}" "$KNOCKD" -i "$srv_if" -c "$dir/knockd.conf" "${args[@]}" \
            >"$dir/stdout" 2>"$dir/stderr" &
    else
        ip netns exec "$srv_ns" "${server_cpu[@]}" "$KNOCKD08" -i "$srv_if" -c "$dir/knockd.conf" \
            >"$dir/stdout" 2>"$dir/stderr" &
    fi
    server_pid=$!
    # Ready when it logged that it listens (both write "starting up, listening on IF").
    local deadline=$((SECONDS + 15))
    until grep -q "listening on" "$dir/knockd.log" 2>/dev/null; do
        if ! alive "$server_pid" || [ $SECONDS -ge $deadline ]; then
            say "$kind did not start; its output:"
            cat "$dir/stdout" "$dir/stderr" "$dir/knockd.log" >&2 2>/dev/null || true
            stop_server
            return 1
        fi
        sleep 0.05
    done
    # The log line may precede the kernel filter by a moment; let the capture settle.
    sleep 0.5
}

# stop_server: SIGTERM, bounded wait, SIGKILL if needed; sets stop_status to the exit status
# (not a command substitution: only this shell can wait for its child).
stop_status=""
stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while alive "$server_pid" && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    if alive "$server_pid"; then kill -KILL "$server_pid" 2>/dev/null || true; fi
    stop_status=0
    wait "$server_pid" 2>/dev/null || stop_status=$?
    server_pid=""
}

# knock_once: sends the legitimate knock from the client namespace; prints the send time
# (taken inside the namespace right before the client starts).
knock_once() {
    ip netns exec "$cli_ns" sh -c 'date +%s.%N; exec "$@" >/dev/null 2>&1' sh \
        "$KNOCK" "$srv_ip" 7000 8000 9000
}

# wait_opened DIR BEFORE SECONDS: waits until the door's command wrote more than BEFORE lines;
# prints the newest timestamp, or nothing on timeout.
wait_opened() {
    local dir=$1 before=$2 limit=$3 deadline
    deadline=$(($(date +%s%N) + limit * 1000000000))
    while [ "$(wc -l <"$dir/opened")" -le "$before" ]; do
        [ "$(date +%s%N)" -ge "$deadline" ] && return 0
        sleep 0.002
    done
    tail -n 1 "$dir/opened"
}

ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# Our knockd logs a "statistics:" line on SIGUSR1, with the capture's own counters (packets
# the kernel dropped from the capture ring, events dropped between capture and matcher).
# Prints "received R, ring drops K, queue drops Q" (summed over interfaces), or nothing.
reported_drops() {
    local dir=$1 deadline
    kill -USR1 "$server_pid" 2>/dev/null || return 0
    deadline=$((SECONDS + 3))
    until grep -q "statistics:" "$dir/knockd.log" 2>/dev/null; do
        [ $SECONDS -ge $deadline ] && return 0
        sleep 0.05
    done
    grep "statistics:" "$dir/knockd.log" | tail -n 1 | awk '
        {
            for (i = 2; i <= NF; i++) {
                if ($i == "received,") r += $(i - 1)
                if ($i == "dropped" && $(i + 3) ~ /^kernel/) k += $(i - 1)
                if ($i == "dropped" && $(i + 3) ~ /^queue/) q += $(i - 1)
            }
            printf "capture: %d received, ring drops %d, queue drops %d", r, k, q
        }'
}

label() { if [ "$1" = ours ]; then echo "knockd (ours)"; else echo "knockd 0.8"; fi; }

# --- stage latencies (issue 14) -----------------------------------------------------------------
# In the idle run only (under a flood the JSON log would carry a line per spoofed packet), our
# knockd writes a JSON log; each open's start command has a "started" event with the stage
# times (capture -> decision -> spawn, in microseconds on one clock). stage_row turns them into a
# table row with p50/p99 of each stage, next to the client -> command latencies measured here.
stage_json=0
stage_rows=()
# stage_json_args DIR HELP: the --json-log argument, in the idle run, if the binary has it.
stage_json_args() {
    if [ "$stage_json" = 1 ] && grep -q -- '--json-log' <<<"$2"; then
        printf '%s\n' --json-log "$1/events.json"
    fi
}
# stage_row DIR CLIENT_LATENCIES_MS...: one Markdown row (server, opens, then p50 / p99 in ms of
# capture->decision, decision->spawn, the spawn call within it, capture->spawn, client->command).
stage_row() {
    local dir=$1
    shift
    python3 - "$dir/events.json" "$@" <<'PY'
import json, sys
def pct(values, p):
    if not values:
        return "–"
    values = sorted(values)
    return "%.3f" % values[min(len(values) - 1, max(0, -(-len(values) * p // 100) - 1))]
stages = {"capture_to_decision_us": [], "decision_to_spawn_us": [], "spawn_call_us": [],
          "capture_to_spawn_us": []}
try:
    with open(sys.argv[1]) as f:
        for line in f:
            event = json.loads(line)
            if event.get("event") == "started" and "captured_us" in event:
                for key in stages:
                    if key in event:
                        stages[key].append(event[key] / 1000)
except FileNotFoundError:
    pass
client = [float(v) for v in sys.argv[2:]]
cells = [str(len(stages["capture_to_spawn_us"]))]
for values in list(stages.values()) + [client]:
    cells += [pct(values, 50), pct(values, 99)]
print("| knockd (ours) | " + " | ".join(cells) + " |")
PY
}
stage_report() {
    [ ${#stage_rows[@]} -gt 0 ] || return 0
    echo
    echo "### Idle: knock-to-command stages (our knockd's JSON log)"
    echo
    echo "| server | opens | capture→decision p50 (ms) | p99 | decision→spawn p50 (ms) | p99 | of which spawn call p50 (ms) | p99 | capture→spawn p50 (ms) | p99 | client→command p50 (ms) | p99 |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${stage_rows[@]}"
    echo
    echo "Capture: the capture thread read the packet; decision: the daemon core was given it;"
    echo "spawn: the command's \`/bin/sh\` was spawned (\`posix_spawn\` returned; the spawn call is the time"
    echo "spent in it, the shell's exec included). Client→command"
    echo "also counts the client's own start and the shell running \`date\`. The door has no stop"
    echo "command; a door with one also waits for its stop to be written to the state file and renamed"
    echo "into place (not for the disk: the file is synced after the spawn)."
}

# us_per_packet CPU_SECONDS PACKETS: microseconds of server CPU per packet ("–" without packets).
us_per_packet() {
    awk -v c="$1" -v n="$2" 'BEGIN { if (n + 0 > 0) printf "%.2f", c * 1e6 / n; else printf "–" }'
}

# died_output KIND DIR: the end of a server's output, on stderr, when it died under a flood.
died_output() {
    say "$(label "$1") died; the end of its output:"
    tail -n 20 "$2/stderr" "$2/stdout" "$2/knockd.log" >&2 2>/dev/null || true
}

# --- idle ---------------------------------------------------------------------------------------
idle_rows=()
tsv_rows=()
for kind in $servers; do
    dir="$work/idle-$kind"
    say "$(label "$kind"): idle CPU over ${idle_seconds}s and $idle_knocks knocks"
    stage_json=1
    if ! start_server "$kind" "$dir"; then
        stage_json=0
        idle_rows+=("| $(label "$kind") | did not start | | | | | | |")
        tsv_rows+=("$(printf 'idle\t%s\tdid not start\t\t\t' "$kind")")
        continue
    fi
    c0=$(process_cpu_ns "$server_pid")
    w0=$(wakeups "$server_pid")
    sleep "$idle_seconds"
    c1=$(process_cpu_ns "$server_pid")
    w1=$(wakeups "$server_pid")
    idle_cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    latencies=()
    for _ in $(seq 1 "$idle_knocks"); do
        before=$(wc -l <"$dir/opened")
        t0=$(knock_once)
        t1=$(wait_opened "$dir" "$before" 3)
        if [ -n "$t1" ]; then latencies+=("$(ms_between "$t0" "$t1")"); fi
        sleep 0.2
    done
    opened=${#latencies[@]}
    if [ "$opened" -gt 0 ]; then
        stats=$(printf '%s\n' "${latencies[@]}" | sort -n | awk '
            { v[NR] = $1 }
            END {
                p50 = v[int((NR + 1) / 2)]; p90 = v[int(NR * 0.9 + 0.999)]; if (p90 == "") p90 = v[NR]
                printf "%s | %s | %s", p50, p90, v[NR]
            }')
    else
        stats="– | – | –"
    fi
    rss=$(peak_rss_mib "$server_pid")
    stop_server
    stage_json=0
    if [ "$kind" = ours ]; then stage_rows+=("$(stage_row "$dir" "${latencies[@]}")"); fi
    idle_rows+=("| $(label "$kind") | $opened/$idle_knocks | $stats | $idle_cpu | $((w1 - w0)) | $rss |")
    tsv_rows+=("$(printf 'idle\t%s\t%s\t%s\t%s\t%s' "$kind" "$opened/$idle_knocks" "${stats%% |*}" "$idle_cpu" "$((w1 - w0))")")
    say "$(label "$kind"): idle done (exit status $stop_status)"
done

# --- flood --------------------------------------------------------------------------------------
flood_rows=()
thread_rows=()
# thread_row RATE CPU_S PACKETS "THREADS0" "THREADS1": our knockd's CPU per packet by thread (the
# main thread: matcher, logging, commands; the capture threads: reading and decoding) and how
# many packets each wake-up of a thread handled, over the same window as the flood row.
thread_row() {
    awk -v rate="$1" -v cpu="$2" -v n="$3" -v a="$4" -v b="$5" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        main = (y[1] - x[1]) / 1000; main_n = y[2] - x[2]
        capture = (y[3] - x[3]) / 1000; capture_n = y[4] - x[4]
        if (n + 0 == 0) { printf "| %s | – | – | – | – | – | – | – | – |", rate; exit }
        other = cpu * 1e6 - main - capture; if (other < 0) other = 0
        printf "| %s | %.2f | %.2f | %.2f | %.2f | %d | %.0f | %d | %.0f |", rate, cpu * 1e6 / n,
            main / n, capture / n, other / n, main_n, (main_n ? n / main_n : 0),
            capture_n, (capture_n ? n / capture_n : 0)
    }'
}
for rate in $rates; do
    for kind in $servers; do
        dir="$work/flood-$kind-$rate"
        say "$(label "$kind"): flood at $rate packets/s for ${duration}s"
        if ! start_server "$kind" "$dir"; then
            flood_rows+=("| $(label "$kind") | $rate | | | did not start | | | | | | |")
            tsv_rows+=("$(printf 'flood\t%s\t%s\t\tdid not start\t\t\tno' "$kind" "$rate")")
            continue
        fi
        c0=$(cpu_seconds "$server_pid")
        threads0=$(thread_cpu "$server_pid")
        rx0=$(if_stat rx_packets)
        drop0=$(if_stat rx_dropped)
        if [ "$rate" = max ]; then pace=(--topspeed); else pace=(--pps="$rate"); fi
        ip netns exec "$cli_ns" "${replay_cpu[@]}" tcpreplay -i "$cli_if" "${pace[@]}" --loop=0 \
            --duration="$duration" --preload-pcap "$pcap" >"$dir/tcpreplay.out" 2>&1 &
        replay_pid=$!
        # The flood starts after the pcap is loaded into memory; knock halfway through it.
        sleep $((duration / 2)).5
        t0=$(knock_once)
        wait "$replay_pid" || true
        replay_pid=""
        # Give the server time to work through its backlog: wait for the door (bounded), then
        # until its CPU time stops growing.
        t1=$(wait_opened "$dir" 0 "$settle")
        previous=""
        for _ in $(seq 1 "$((settle * 2))"); do
            now=$(cpu_seconds "$server_pid")
            [ -n "$now" ] && [ "$now" = "$previous" ] && break
            previous=$now
            sleep 0.5
        done
        if alive "$server_pid"; then up=yes; else up="**no** (died)"; died_output "$kind" "$dir"; fi
        c1=$(cpu_seconds "$server_pid")
        threads1=$(thread_cpu "$server_pid")
        rss=$(peak_rss_mib "$server_pid")
        rx=$(($(if_stat rx_packets) - rx0))
        drops=$(($(if_stat rx_dropped) - drop0))
        extra=""
        if [ "$kind" = ours ] && alive "$server_pid"; then extra=$(reported_drops "$dir"); fi
        stop_server
        if [ "$up" = yes ]; then up="yes (exit $stop_status)"; fi
        cpu=$(awk -v a="$c0" -v b="${c1:-$c0}" 'BEGIN { printf "%.2f", b - a }')
        sent=$(grep -o -E 'Actual: [0-9]+ packets' "$dir/tcpreplay.out" | grep -o -E '[0-9]+' || echo "?")
        pps=$(grep -o -E '[0-9.]+ pps' "$dir/tcpreplay.out" | head -n 1 | cut -d' ' -f1 || echo "?")
        pps=$(awk -v p="${pps:-0}" 'BEGIN { printf "%.0f", p }')
        if [ -n "$t1" ]; then
            opened="yes"
            latency="$(ms_between "$t0" "$t1") ms"
        else
            opened="**no**"
            latency="–"
        fi
        per_packet=$(us_per_packet "$cpu" "$rx")
        if [ "$kind" = ours ]; then
            thread_rows+=("$(thread_row "$rate" "$cpu" "$rx" "$threads0" "$threads1")")
        fi
        flood_rows+=("| $(label "$kind") | $rate | $pps | $sent | $opened | $latency | $cpu | $per_packet | $rss | $rx / $drops${extra:+ ($extra)} | $up |")
        tsv_rows+=("$(printf 'flood\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$kind" "$rate" "$pps" "${opened//\*/}" "$cpu" "$rss" "${up%% *}" "$per_packet")")
        say "$(label "$kind") @ $rate: opened=$opened latency=$latency cpu=$cpu rss=${rss}MiB"
    done
done

# --- flood to a port no door uses ----------------------------------------------------------------
# The kernel filter admits only the doors' ports (and destinations): these packets must never
# reach the server, whose CPU stays near zero whatever the rate.
other_rows=()
if [ -n "$other_port_rates" ]; then
    other_pcap="$work/flood-other-port.pcap"
    say "generating $other_pcap"
    python3 "$repo/scripts/flood/gen_syn_pcap.py" --out "$other_pcap" --count 100000 \
        --src-mac "$cli_mac" --dst-mac "$srv_mac" --dst-ip "$srv_ip" --dport 7001 \
        --avoid 10.231.0.0/16 --seed "$tag"
fi
for rate in $other_port_rates; do
    for kind in $servers; do
        dir="$work/other-$kind-$rate"
        say "$(label "$kind"): flood to port 7001 (no door) at $rate packets/s for ${duration}s"
        if ! start_server "$kind" "$dir"; then
            other_rows+=("| $(label "$kind") | $rate | | | | | did not start |")
            continue
        fi
        c0=$(cpu_seconds "$server_pid")
        rx0=$(if_stat rx_packets)
        if [ "$rate" = max ]; then pace=(--topspeed); else pace=(--pps="$rate"); fi
        ip netns exec "$cli_ns" "${replay_cpu[@]}" tcpreplay -i "$cli_if" "${pace[@]}" --loop=0 \
            --duration="$duration" --preload-pcap "$other_pcap" >"$dir/tcpreplay.out" 2>&1 &
        replay_pid=$!
        wait "$replay_pid" || true
        replay_pid=""
        sleep 1
        if alive "$server_pid"; then up=yes; else up="**no** (died)"; died_output "$kind" "$dir"; fi
        c1=$(cpu_seconds "$server_pid")
        rx=$(($(if_stat rx_packets) - rx0))
        extra=""
        if [ "$kind" = ours ] && alive "$server_pid"; then extra=$(reported_drops "$dir"); fi
        stop_server
        if [ "$up" = yes ]; then up="yes (exit $stop_status)"; fi
        cpu=$(awk -v a="$c0" -v b="${c1:-$c0}" 'BEGIN { printf "%.2f", b - a }')
        pps=$(grep -o -E '[0-9.]+ pps' "$dir/tcpreplay.out" | head -n 1 | cut -d' ' -f1 || echo "?")
        pps=$(awk -v p="${pps:-0}" 'BEGIN { printf "%.0f", p }')
        per_packet=$(us_per_packet "$cpu" "$rx")
        other_rows+=("| $(label "$kind") | $rate | $pps | $rx${extra:+ ($extra)} | $cpu | $per_packet | $up |")
        tsv_rows+=("$(printf 'other-port\t%s\t%s\t%s\t%s\t%s\t%s' "$kind" "$rate" "$pps" "$cpu" "$per_packet" "${up%% *}")")
        say "$(label "$kind") @ $rate to port 7001: cpu=$cpu (${per_packet} µs/packet)"
    done
done

# --- report -------------------------------------------------------------------------------------
report() {
    echo "Client for the legitimate knocks: $client_name. Door: \`7000,8000,9000\`, \`tcpflags = syn\`,"
    echo "\`seq_timeout = 5\`, command \`date +%s.%N >> FILE\`; flood: spoofed sources from 10.0.0.0/8"
    echo "(500 000 distinct, looped) to port 7000, ${duration} s per rate, the knock sent halfway;"
    echo "$pinning; $priority."
    echo
    echo "### Idle"
    echo
    echo "| server | knocks opened | latency p50 (ms) | p90 (ms) | max (ms) | CPU s over ${idle_seconds} s idle | wakeups over ${idle_seconds} s | peak RSS (MiB) |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${idle_rows[@]}"
    echo
    echo "*CPU s* here: the run time of the server's threads over the idle window, from"
    echo "\`/proc/PID/task/*/schedstat\` (nanoseconds, rounded to 0.01 s)."
    echo
    echo "### Spoofed-source SYN flood"
    echo
    echo "| server | target rate (pps) | achieved (pps) | packets sent | legitimate knock opened | knock→command latency | server CPU s | CPU µs/packet | peak RSS (MiB) | interface rx / dropped | server up |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${flood_rows[@]}"
    if [ ${#thread_rows[@]} -gt 0 ]; then
        echo
        echo "### Where our knockd's CPU goes under the flood"
        echo
        echo "Per packet the interface received, by thread (\`/proc/PID/task/*/schedstat\`, same window as"
        echo "above): the main thread (matcher, logging, commands) and the capture thread (reading the"
        echo "ring, decoding, batching); *other* is the rest of the process total (threads that ended, such"
        echo "as command reapers, and rounding of the total's 10 ms ticks). Wake-ups: times each thread was"
        echo "scheduled in."
        echo
        echo "| rate (pps) | total µs/packet | main thread µs/packet | capture µs/packet | other µs/packet | main wake-ups | packets per main wake-up | capture wake-ups | packets per capture wake-up |"
        echo "|---|---|---|---|---|---|---|---|---|"
        printf '%s\n' "${thread_rows[@]}"
    fi
    if [ ${#other_rows[@]} -gt 0 ]; then
        echo
        echo "### The same flood to a port no door uses (7001)"
        echo
        echo "| server | target rate (pps) | achieved (pps) | interface rx | server CPU s | CPU µs/packet | server up |"
        echo "|---|---|---|---|---|---|---|"
        printf '%s\n' "${other_rows[@]}"
    fi
    stage_report
}
if [ -n "$out" ]; then report | tee "$out"; else report; fi
if [ -n "$tsv" ]; then printf '%s\n' "${tsv_rows[@]}" >"$tsv"; fi
