#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: the flood/latency comparison with knockd 0.8 (scripts/flood.sh)
# and the criterion micro-benchmarks (cargo bench -p knock-benches).
#
#   sudo scripts/bench.sh [--quick]
#
# --quick: shorter runs (fewer idle knocks, shorter floods, shorter criterion measurement),
# for trying the script; the committed BENCHMARKS.md comes from a full run.
# Needs root for the network namespaces of the flood harness. Takes about 10 minutes.
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
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/knock-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "==> cargo build --release -p knock-server -p knock-client" >&2
build_ok=yes
cargo build --release -p knock-server -p knock-client >&2 || build_ok=no

flood_args=(--out "$work/flood.md" --tsv "$work/flood.tsv")
flood_cmd="sudo scripts/flood.sh"
if [ "$quick" = yes ]; then
    flood_args+=(--rates "5000 max" --duration 4 --idle-knocks 5 --idle-seconds 3)
    flood_cmd="$flood_cmd --rates \"5000 max\" --duration 4 --idle-knocks 5 --idle-seconds 3"
fi
if [ "$build_ok" = no ]; then
    # Still measure knockd 0.8, so the table says what we are compared with.
    flood_args+=(--servers 0.8)
    flood_cmd="$flood_cmd --servers 0.8"
fi
echo "==> $flood_cmd" >&2
flood_status=0
scripts/flood.sh "${flood_args[@]}" >/dev/null || flood_status=$?

criterion_args=(--warm-up-time 1 --measurement-time 3)
[ "$quick" = yes ] && criterion_args=(--warm-up-time 0.5 --measurement-time 1)
bench_cmd="cargo bench -p knock-benches -- ${criterion_args[*]}"
echo "==> $bench_cmd" >&2
since=$(date +%s)
bench_status=0
# A private criterion directory: another `cargo bench` on the same target directory (or an old
# run) must not mix its results into ours.
export CRITERION_HOME="$work/criterion"
cargo bench -p knock-benches -- "${criterion_args[@]}" >"$work/criterion.out" 2>&1 || bench_status=$?
criterion_status=0
python3 scripts/flood/criterion_table.py --criterion-dir "$CRITERION_HOME" --since "$since" \
    --tsv "$work/criterion.tsv" >"$work/criterion.md" || criterion_status=$?

# --- the bar, checked from the figures ---------------------------------------------------------
verdict() {
    local tsv=$work/flood.tsv
    [ -s "$tsv" ] || { echo "* The flood harness produced no figures (see above)."; return; }
    awk -F '\t' '
        $1 == "idle" && $2 == "ours" {
            p50 = $4 + 0
            printf "* Idle knock-to-command latency p50 of our knockd: %s ms (bar: ≤ 5 ms) — **%s**.\n", $4, ($4 != "" && p50 <= 5) ? "met" : "not met"
            printf "* Idle CPU of our knockd: %s s over the idle window (bar: 0) — **%s**.\n", $5, ($5 == "0.00") ? "met" : "not met"
        }
        $1 == "idle" && $2 == "0.8" { printf "* knockd 0.8 idle latency p50: %s ms.\n", $4 }
        $1 == "flood" && $2 == "ours" && $3 == "max" {
            printf "* Fastest rate generated (%s packets/s achieved): legitimate knock opened: **%s**, our knockd still up: **%s**, peak RSS %s MiB.\n", $4, $5, $8, $7
        }
        $1 == "flood" && $2 == "0.8" && $3 == "25000" {
            printf "* knockd 0.8 at 25 000 packets/s: legitimate knock opened: **%s**.\n", $5
        }
        $1 == "flood" && $2 == "ours" { rss = rss sep $3 " pps: " $7 " MiB"; sep = ", " }
        $1 == "flood" && $2 == "ours" && $9 != "" {
            printf "* CPU per flood packet of our knockd at %s packets/s: %s µs (bar: ≤ 1 µs) — **%s**.\n", $3, $9, ($9 + 0 <= 1) ? "met" : "not met"
        }
        $1 == "other-port" && $2 == "ours" {
            printf "* Flood to a port no door uses at %s (%s packets/s achieved): our knockd spent %s CPU s (the kernel filter drops those packets).\n", $3, $4, $5
        }
        END {
            if (rss != "") printf "* Peak RSS of our knockd by flood rate (bounded by --max-sources, default 65 536 sources, plus the 8 MiB capture ring and the event queue): %s.\n", rss
        }
    ' "$tsv"
    # The matcher's bar: >= 20 M events/s on one core, within 2x from 1 to 1 M sources; judged
    # per variant of the steady-state benchmark (matcher/VARIANT/N_sources).
    if [ -s "$work/criterion.tsv" ]; then
        awk -F '\t' '
            $1 ~ /^matcher\/[^\/]+\/[0-9]+_sources$/ && $3 != "" {
                split($1, part, "/"); v = part[2]
                if (!(v in min)) { order[++n] = v; min[v] = $3; max[v] = $3 }
                if ($3 < min[v]) min[v] = $3
                if ($3 > max[v]) max[v] = $3
            }
            END {
                for (i = 1; i <= n; i++) {
                    v = order[i]
                    printf "* Matcher, `%s` (criterion, one core, 1 to 1 M tracked sources): %.1f–%.1f M events/s (bar: ≥ 20 M/s — **%s**; within 2× — %.2f×, **%s**).\n", v, min[v] / 1e6, max[v] / 1e6, (min[v] >= 20e6) ? "met" : "not met", max[v] / min[v], (max[v] / min[v] <= 2) ? "met" : "not met"
                }
            }
        ' "$work/criterion.tsv"
    fi
}

{
    echo "# Benchmarks"
    echo
    echo "Generated by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') from commit"
    echo "\`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)'). Regenerate with \`sudo scripts/bench.sh\`."
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
    echo
    echo "## Micro-benchmarks (criterion)"
    echo
    echo "\`cargo bench -p knock-benches\`: the matcher (events per second, by number of tracked"
    echo "sources), the configuration parser, and the frame decoder (per link type)."
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
    [ "$criterion_status" -eq 0 ]
