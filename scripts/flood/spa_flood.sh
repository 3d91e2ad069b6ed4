#!/usr/bin/env bash
# Flood to an SPA port: random-source 200-byte UDP datagrams (hping3) to the SPA port of an SPA
# door of our knockd, with one fwknop packet sent during the flood. Checks that knockd stays
# up, that its memory stays flat, that the flood is counted and not logged, and that the
# legitimate packet opens the door.
#
#   scripts/flood/spa_flood.sh [--packets N] [--runs N] [--tsv FILE]
#
# Needs root, hping3 and fwknop (Debian's fwknop-client). Two namespaces joined by a veth pair
# (10.233.0.0/24 only, names with this script's pid), torn down on exit; the spoofed sources
# never leave them (the server namespace has no route but its /24). The door's commands only
# append lines to a file in a temporary directory. Fresh random keys for every run, in files
# readable by root only; never printed. N datagrams per run (default 200 000), one knockd per
# run. Prints the Markdown section of BENCHMARKS.md on stdout (--tsv FILE: spa_flood, run,
# packets sent, seconds, unauthenticated, ring drops, queue drops, log lines, opened, RSS
# before, RSS after, CPU s, tab-separated).
#
# Environment: KNOCKD (default target/release/knockd); KEEP=1 keeps the run directory.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. scripts/flood/lib.sh
KNOCKD=${KNOCKD:-$repo/target/release/knockd}
KNOCK=${KNOCK:-$repo/target/release/knock}
packets=200000
runs=1
tsv=""
command_line="sudo scripts/flood/spa_flood.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --packets) packets=$2; command_line+=" --packets $2"; shift 2 ;;
        --runs) runs=$2; command_line+=" --runs $2"; shift 2 ;;
        --tsv) tsv=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "spa_flood.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
for n in "$packets" "$runs"; do
    case "$n" in '' | *[!0-9]* | 0) echo "spa_flood.sh: --packets and --runs take positive numbers" >&2; exit 2 ;; esac
done
if [ "$(id -u)" -ne 0 ]; then echo "spa_flood.sh: needs root" >&2; exit 1; fi
need_tools hping3 fwknop ip base64
ensure_release_binaries
say() { echo "spa_flood: $*" >&2; }

load_start=$(loadavg)
bench_work=$(mktemp -d /tmp/knock-spaflood.XXXXXX)
trap netpair_cleanup EXIT
trap 'exit 130' INT TERM
netpair_up sp 10.233.0
spa_port=62201

# run_once N: one knockd, one flood; appends the table row to $bench_work/rows.
run_once() {
    local run=$1 dir="$bench_work/run-$1" key hmac knockd_pid flood_pid
    mkdir -p "$dir"
    chmod 700 "$dir"
    # fwknop's keys: 32 bytes for AES-256, 64 for HMAC-SHA256, base64 (as `fwknop --key-gen`).
    key=$(head -c 32 /dev/urandom | base64 -w 0)
    hmac=$(head -c 64 /dev/urandom | base64 -w 0)
    (umask 077 && printf '%s\n' "$key" >"$dir/spa.key" && printf '%s\n' "$hmac" >"$dir/spa.hmac" && : >"$dir/fwknoprc")
    cat >"$dir/knockd.conf" <<CONF
[options]
    LogFile = $dir/knockd.log

[spa]
    spa_key_file      = $dir/spa.key
    spa_hmac_key_file = $dir/spa.hmac
    spa_access        = tcp/22
    cmd_timeout       = 60
    start_command     = echo open %IP% %PROTO% %PORT% >> $dir/opened
    stop_command      = echo close %IP% %PROTO% %PORT% >> $dir/opened
CONF
    : >"$dir/opened"
    ip netns exec "$srv_ns" "$KNOCKD" -i "$srv_if" -c "$dir/knockd.conf" --state-file "$dir/state" \
        >"$dir/stdout" 2>"$dir/stderr" &
    knockd_pid=$!
    bench_pids+=" $knockd_pid"
    if ! wait_log "$dir/knockd.log" "listening on" 15; then
        say "knockd did not start:"; cat "$dir/stderr" >&2
        kill -KILL "$knockd_pid" 2>/dev/null || true; wait "$knockd_pid" 2>/dev/null || true
        forget_pid "$knockd_pid"
        printf '| %s | | | did not start | | | | | | | |\n' "$run" >>"$bench_work/rows"
        return 0
    fi
    sleep 0.5
    local rss0 cpu0 t0 t1 during="no"
    rss0=$(peak_rss_mib "$knockd_pid")
    cpu0=$(cpu_seconds "$knockd_pid")
    t0=$(date +%s.%N)
    ip netns exec "$cli_ns" hping3 -q --rand-source -2 -d 200 -p "$spa_port" -c "$packets" -i u10 \
        "$srv_ip" </dev/null >"$dir/hping3.out" 2>&1 &
    flood_pid=$!
    bench_pids+=" $flood_pid"
    # The legitimate packet, 200 ms into the flood.
    sleep 0.2
    ip netns exec "$cli_ns" fwknop -A tcp/22 -a "$cli_ip" -D "$srv_ip" --use-hmac \
        --key-base64-rijndael "$key" --key-base64-hmac "$hmac" --rc-file "$dir/fwknoprc" \
        --no-save-args >"$dir/fwknop.out" 2>&1 || say "fwknop failed: $(tail -n 1 "$dir/fwknop.out")"
    alive "$flood_pid" && during="yes"
    wait "$flood_pid" || true
    forget_pid "$flood_pid"
    t1=$(date +%s.%N)
    # Let knockd work through its backlog: until its CPU time stops growing (bounded).
    local previous="" now
    for _ in $(seq 1 30); do
        now=$(cpu_seconds "$knockd_pid")
        [ -n "$now" ] && [ "$now" = "$previous" ] && break
        previous=$now
        sleep 0.5
    done
    local opened="**no**" up="yes" cpu1 rss1 lines stats counts unauth
    local deadline=$((SECONDS + 5))
    while ! grep -q "^open " "$dir/opened" && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    grep -q "^open $cli_ip tcp 22\$" "$dir/opened" && opened="yes"
    [ "$during" = yes ] || opened="$opened (sent after the flood)"
    alive "$knockd_pid" || up="**no**"
    cpu1=$(cpu_seconds "$knockd_pid")
    rss1=$(peak_rss_mib "$knockd_pid")
    lines=$(grep -c -v "statistics:" "$dir/knockd.log" || true)
    stats=$(statistics_line "$knockd_pid" "$dir/knockd.log")
    read -r -a counts <<<"$(capture_counts "$stats")"
    unauth=$(grep -o -E '[0-9]+ unauthenticated SPA packets dropped' <<<"$stats" | cut -d' ' -f1 || true)
    kill -TERM "$knockd_pid" 2>/dev/null || true
    wait "$knockd_pid" || true
    forget_pid "$knockd_pid"

    local sent secs cpu us
    # hping3 -q prints "N packets transmitted"; without it, what was asked for.
    sent=$(grep -o -E '[0-9]+ packets transmitted' "$dir/hping3.out" | cut -d' ' -f1 || true)
    sent=$((${sent:-$packets} + 1))
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    cpu=$(awk -v a="${cpu0:-0}" -v b="${cpu1:-0}" 'BEGIN { printf "%.2f", b - a }')
    us=$(awk -v c="$cpu" -v n="$sent" 'BEGIN { printf "%.1f", c * 1e6 / n }')
    printf '| %s | %s | %s s | %s | %s | %s | %s | %s (%s µs/packet) | %s | %s → %s MiB | %s |\n' \
        "$run" "$(thousands "$sent")" "$secs" "$(thousands "${unauth:-–}")" "$(thousands "${counts[1]}")" \
        "$(thousands "${counts[2]}")" "$lines" "$cpu" "$us" "$opened" "$rss0" "$rss1" "$up" >>"$bench_work/rows"
    [ -z "$tsv" ] || printf 'spa_flood\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$sent" "$secs" \
        "${unauth:-}" "${counts[1]}" "${counts[2]}" "$lines" "${opened//\*/}" "$rss0" "$rss1" "$cpu" >>"$tsv"
    say "run $run: $sent sent in ${secs}s, ${unauth:-?} unauthenticated, opened=$opened, RSS $rss0 -> $rss1 MiB"
}

[ -z "$tsv" ] || : >"$tsv"
: >"$bench_work/rows"
for run in $(seq 1 "$runs"); do
    say "run $run: $packets datagrams to port $spa_port"
    run_once "$run"
done

cat <<SECTION
## Flood to an SPA port

\`$command_line\` (release build).
An SPA door (\`SPA_Access = tcp/22\`, fresh random keys) listens on port $spa_port; the
client namespace sends $(thousands "$packets") 200-byte UDP datagrams from random sources
(\`hping3 --rand-source -2 -d 200 -i u10\`) to that port, and one fwknop packet
(\`fwknop -A tcp/22 --use-hmac\`) 200 ms into the flood (the +1 in *packets sent*). The counts
come from knockd's \`SIGUSR1\` statistics line; *log lines* are the lines of its log besides that
one; *CPU* is knockd's user+system time from the flood's start until it has worked through it;
*peak RSS* is VmHWM just before the flood and after it. Load average: $load_start at the
start, $(loadavg) at the end.

| run | packets sent | flood time | counted as unauthenticated | kernel ring drops | queue drops | log lines | knockd CPU s | legitimate SPA opened | peak RSS before → after | server up |
|---|---|---|---|---|---|---|---|---|---|---|
SECTION
cat "$bench_work/rows"
cat <<'SECTION'

Every forged datagram costs one HMAC-SHA256 over its data and nothing else; none is logged.
Memory stays flat: datagrams to SPA ports are the only capture events that carry data, and at
most 1 024 of them exist at once (the rest are counted as queue drops).
SECTION
