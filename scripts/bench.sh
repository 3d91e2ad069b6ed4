#!/usr/bin/env bash
# Regenerates all of BENCHMARKS.md: the flood/latency comparison with knockd 0.8
# (scripts/flood.sh, at 10 000, 25 000 and 100 000 packets/s and the generator's top speed),
# the flood against a one-step door with a stop command (scripts/flood/stop_door.sh), knock to
# nftables element (scripts/flood/nft_latency.sh), the flood to an SPA port
# (scripts/flood/spa_flood.sh), what one flood pause costs the machine with no packet work
# (the benches' pause-cost program) and the criterion micro-benchmarks (cargo bench -p
# knock-benches), with the bars checked from the figures (scripts/flood/verdict.py).
#
#   sudo scripts/bench.sh [--quick]
#
# --quick: shorter runs (fewer rates and knocks, shorter floods, shorter criterion measurement),
# for trying the script; the committed BENCHMARKS.md comes from a full run.
# Needs root for the network namespaces of the flood harnesses. Takes about 15 minutes (more
# the first time: nft_latency.sh builds the e2e tests in release mode).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

quick=no
[ "${1:-}" = --quick ] && quick=yes

if [ "$(id -u)" -ne 0 ]; then
    echo "bench.sh: needs root (the flood harness uses network namespaces); try: sudo $0" >&2
    exit 1
fi

# Other work on the machine skews every figure below; say how busy it was.
# Whether the tree differs from HEAD, taken now: BENCHMARKS.md itself is rewritten at the end
# (and is left out, so that a rerun from a clean checkout says so).
dirty=$(git diff --quiet HEAD -- . ':(exclude)BENCHMARKS.md' 2>/dev/null || echo ' (with uncommitted changes)')
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/knock-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "==> cargo build --release -p knock-server -p knock-client" >&2
build_ok=yes
cargo build --release -p knock-server -p knock-client >&2 || build_ok=no

# Issue 14 asks for the CPU per flood packet at 10 000 and 100 000 packets/s and at top speed;
# 25 000 is where knockd 0.8 stopped opening in earlier runs.
flood_rates="10000 25000 100000 max"
[ "$quick" = yes ] && flood_rates="10000 max"
flood_args=(--out "$work/flood.md" --tsv "$work/flood.tsv" --rates "$flood_rates")
flood_cmd="sudo scripts/flood.sh --rates \"$flood_rates\""
if [ "$quick" = yes ]; then
    flood_args+=(--duration 4 --idle-knocks 5 --idle-seconds 3)
    flood_cmd="$flood_cmd --duration 4 --idle-knocks 5 --idle-seconds 3"
fi
if [ "$build_ok" = no ]; then
    # Still measure knockd 0.8, so the table says what we are compared with.
    flood_args+=(--servers 0.8)
    flood_cmd="$flood_cmd --servers 0.8"
fi
echo "==> $flood_cmd" >&2
flood_status=0
flood_load_start=$(cut -d' ' -f1-3 /proc/loadavg)
scripts/flood.sh "${flood_args[@]}" >/dev/null || flood_status=$?
flood_load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# The other harnesses print their whole section (heading, what it measures, the command, the
# load average, the table). run_section NAME TITLE SCRIPT ARGS...: runs one into
# $work/NAME.md; if it fails, the section says so with the last lines of its progress output.
extra_cmds=()
run_section() {
    local name=$1 title=$2 script=$3 status=0
    shift 3
    local shown="sudo $script" arg
    for arg in "$@"; do
        case "$arg" in *' '*) shown+=" \"$arg\"" ;; *) shown+=" $arg" ;; esac
    done
    extra_cmds+=("$shown")
    echo "==> $shown" >&2
    if [ "$build_ok" = no ]; then
        printf '## %s\n\nNot measured: the release build of our knockd failed.\n' "$title" >"$work/$name.md"
        return 0
    fi
    # stdout to the section file, progress (stderr) to the terminal and to $name.err.
    { "$script" "$@" --tsv "$work/$name.tsv" 2>&1 >&3 3>&- | tee "$work/$name.err" >&2; } \
        3>"$work/$name.md" || status=$?
    if [ "$status" -ne 0 ]; then
        section_failures=$((section_failures + 1))
        local heading=yes
        grep -q '^## ' "$work/$name.md" && heading=no
        {
            if [ "$heading" = yes ]; then printf '## %s\n\n' "$title"; else echo; fi
            printf '**%s failed (exit status %s).** Last lines of its progress output:\n\n' "$script" "$status"
            echo '```text'
            tail -n 15 "$work/$name.err"
            echo '```'
        } >>"$work/$name.md"
    fi
}
section_failures=0
if [ "$quick" = yes ]; then
    run_section stop_door "Flood against a one-step door with a stop command" scripts/flood/stop_door.sh \
        --rates 5000 --duration 3
    run_section nft "Knock to nftables element" scripts/flood/nft_latency.sh --rounds 20
    run_section spa "Flood to an SPA port" scripts/flood/spa_flood.sh --packets 20000
else
    run_section stop_door "Flood against a one-step door with a stop command" scripts/flood/stop_door.sh \
        --rates "5000 25000" --duration 6
    run_section nft "Knock to nftables element" scripts/flood/nft_latency.sh --rounds 200
    run_section spa "Flood to an SPA port" scripts/flood/spa_flood.sh --packets 200000
fi

# What a flood pause costs this machine with no packet work (read against the 10 000 packets/s
# bar), pinned to the CPU flood.sh pins the server to.
pause_pin=()
[ "$(nproc)" -ge 2 ] && pause_pin=(taskset -c 0)
pause_pauses=250
[ "$quick" = yes ] && pause_pauses=60
pause_cmd="cargo build --release -p knock-benches --bin pause-cost && ${pause_pin[*]}${pause_pin:+ }target/release/pause-cost --pauses $pause_pauses"
echo "==> $pause_cmd" >&2
if cargo build --release -p knock-benches --bin pause-cost >&2 &&
    "${pause_pin[@]}" target/release/pause-cost --pauses "$pause_pauses" --tsv "$work/pause.tsv" >"$work/pause.md"; then
    :
else
    printf '## What one flood pause costs this machine\n\n**pause-cost failed.**\n' >"$work/pause.md"
fi

criterion_args=(--warm-up-time 1 --measurement-time 3)
[ "$quick" = yes ] && criterion_args=(--warm-up-time 0.5 --measurement-time 1)
bench_cmd="cargo bench -p knock-benches -- ${criterion_args[*]}"
echo "==> $bench_cmd" >&2
since=$(date +%s)
bench_load_start=$(cut -d' ' -f1-3 /proc/loadavg)
bench_status=0
# A private criterion directory: another `cargo bench` on the same target directory (or an old
# run) must not mix its results into ours.
export CRITERION_HOME="$work/criterion"
cargo bench -p knock-benches -- "${criterion_args[@]}" >"$work/criterion.out" 2>&1 || bench_status=$?
criterion_status=0
python3 scripts/flood/criterion_table.py --criterion-dir "$CRITERION_HOME" --since "$since" \
    --tsv "$work/criterion.tsv" >"$work/criterion.md" || criterion_status=$?
bench_load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the bar, checked from the figures ---------------------------------------------------------
# verdict.py finds the figures by column header and row label and says "not measured" for any
# that is missing, so a harness that failed or a column not there yet never stops the report.
verdict() {
    python3 scripts/flood/verdict.py --flood-md "$work/flood.md" --criterion-tsv "$work/criterion.tsv" \
        --nft-tsv "$work/nft.tsv" --pause-tsv "$work/pause.tsv" ||
        echo "* The figures could not be checked (scripts/flood/verdict.py failed)."
}

{
    echo "# Benchmarks"
    echo
    echo "Generated by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') from commit"
    echo "\`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`$dirty. Regenerate with \`sudo scripts/bench.sh\`."
    echo
    echo "## Machine"
    echo
    echo "* CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), \`nproc\` = $(nproc)"
    echo "* Kernel: \`$(uname -r)\`; memory: $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "* Load average when the run started: $load_at_start (1, 5, 15 min); at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "* $(rustc --version), libpcap $(dpkg-query -W -f='${Version}' libpcap0.8 2>/dev/null || echo '?'), tcpreplay $(dpkg-query -W -f='${Version}' tcpreplay 2>/dev/null || echo '?'), knockd 0.8 package $(dpkg-query -W -f='${Version}' knockd 2>/dev/null || echo '?')"
    echo
    echo "## Commands"
    echo
    echo '```sh'
    echo "cargo build --release -p knock-server -p knock-client"
    echo "$flood_cmd"
    printf '%s\n' "${extra_cmds[@]}"
    echo "$pause_cmd"
    echo "$bench_cmd"
    echo '```'
    echo
    echo "## Against the bar"
    echo
    verdict
    echo
    echo "## Flood and latency: our knockd and knockd 0.8 side by side"
    echo
    echo "Both servers run in turn in the same network namespace on one end of a veth pair, with"
    echo "the same configuration (a LogFile, one three-step door), started fresh for every row."
    echo "tcpreplay replays spoofed-source SYNs from the other end; the legitimate knock comes from"
    echo "the client namespace's own address. *Latency* is from just before the client starts to"
    echo "the timestamp the door's command writes. *CPU s* is the server's user+system time from"
    echo "flood start until it has worked through its backlog. *Peak RSS* is VmHWM. *Interface"
    echo "rx / dropped* are the server veth's counters (\`ip -s link\`); drops inside the capture"
    echo "ring are not visible there — where our knockd reports its own, they follow in brackets."
    echo "Load average: $flood_load_start at the start, $flood_load_end at the end."
    echo "*CPU µs/packet* is the CPU seconds over the packets the server's interface received."
    echo
    if [ "$build_ok" = no ]; then
        echo "**The release build of our knockd failed, so only knockd 0.8 was measured.**"
        echo
    fi
    if [ "$flood_status" -ne 0 ]; then
        echo "**The flood harness failed (exit status $flood_status).** Partial output, if any:"
        echo
    fi
    if [ -s "$work/flood.md" ]; then cat "$work/flood.md"; fi
    for name in stop_door nft spa pause; do
        echo
        cat "$work/$name.md"
    done
    echo
    echo "## Micro-benchmarks (criterion)"
    echo
    echo "\`cargo bench -p knock-benches\`: the matcher (events per second, by number of tracked"
    echo "sources), the configuration parser, the frame decoder (per link type), and this machine's"
    echo "random memory reads in the matcher's pattern at 1 M sources (\`machine/random_reads\`: the"
    echo "ceiling its figure there is read against). Load average:"
    echo "$bench_load_start at the start, $bench_load_end at the end."
    echo
    if [ "$bench_status" -ne 0 ]; then
        echo "**cargo bench failed (exit status $bench_status).** Last lines of its output:"
        echo
        echo '```text'
        tail -n 20 "$work/criterion.out"
        echo '```'
        echo
    fi
    cat "$work/criterion.md"
} >"$repo/BENCHMARKS.md"

echo "==> wrote BENCHMARKS.md" >&2
[ "$build_ok" = yes ] && [ "$flood_status" -eq 0 ] && [ "$bench_status" -eq 0 ] &&
    [ "$criterion_status" -eq 0 ] && [ "$section_failures" -eq 0 ]
