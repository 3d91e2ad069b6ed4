# Helpers shared by the benchmark scripts in scripts/flood/ (sourced, not run).
#
# netpair_up creates two network namespaces joined by a veth pair, with addresses in one
# 10.x.y.0/24 only; their names carry the caller's process id, so runs beside each other (and
# beside the e2e tests) never collide. netpair_cleanup (install it with `trap ... EXIT`) kills
# the processes named in $bench_pids, deletes the namespaces and the work directory.
# shellcheck shell=bash

# Set by netpair_up; read by the scripts that source this file.
# shellcheck disable=SC2034
srv_ns="" cli_ns="" srv_if="" cli_if="" srv_ip="" cli_ip="" srv_mac="" cli_mac=""
# Processes to kill on exit (pids of our own children, cleared once reaped).
bench_pids=""
# The run directory (mktemp -d), removed on exit unless KEEP is set.
bench_work=""

# netpair_up SHORT NET: SHORT is 2 letters (namespace and interface names), NET the first three
# octets of the /24 (for example 10.233.0). Sets srv_ns, cli_ns, srv_if, cli_if, srv_ip (.2),
# cli_ip (.1), srv_mac, cli_mac; the client knows the server's MAC (no ARP wait).
netpair_up() {
    local short=$1 net=$2 tag=$$
    srv_ns="kn$short-$tag-srv"
    cli_ns="kn$short-$tag-cli"
    srv_if="k${short}s$tag"
    cli_if="k${short}c$tag"
    srv_ip=$net.2
    cli_ip=$net.1
    ip netns add "$srv_ns"
    ip netns add "$cli_ns"
    ip link add "$srv_if" netns "$srv_ns" type veth peer name "$cli_if" netns "$cli_ns"
    ip -n "$srv_ns" addr add "$srv_ip/24" dev "$srv_if"
    ip -n "$cli_ns" addr add "$cli_ip/24" dev "$cli_if"
    ip -n "$srv_ns" link set lo up
    ip -n "$cli_ns" link set lo up
    ip -n "$srv_ns" link set "$srv_if" up
    ip -n "$cli_ns" link set "$cli_if" up
    srv_mac=$(ip netns exec "$srv_ns" cat "/sys/class/net/$srv_if/address")
    cli_mac=$(ip netns exec "$cli_ns" cat "/sys/class/net/$cli_if/address")
    ip -n "$cli_ns" neigh replace "$srv_ip" lladdr "$srv_mac" dev "$cli_if" nud permanent
}

netpair_cleanup() {
    local pid
    for pid in $bench_pids; do kill -KILL "$pid" 2>/dev/null || true; done
    [ -n "$srv_ns" ] && ip netns del "$srv_ns" 2>/dev/null
    [ -n "$cli_ns" ] && ip netns del "$cli_ns" 2>/dev/null
    if [ -n "$bench_work" ]; then
        if [ -n "${KEEP:-}" ]; then echo "kept $bench_work" >&2; else rm -rf "$bench_work"; fi
    fi
    return 0
}

# forget_pid PID: PID was reaped; never signal it again.
forget_pid() { bench_pids=$(tr ' ' '\n' <<<"$bench_pids" | grep -v -x -- "$1" | tr '\n' ' '); }

# ensure_release_binaries: builds target/release/{knockd,knock} if KNOCKD/KNOCK are missing.
ensure_release_binaries() {
    if [ ! -x "$KNOCKD" ] || [ ! -x "$KNOCK" ]; then
        echo "building our binaries (cargo build --release -p knock-server -p knock-client)" >&2
        cargo build --release -p knock-server -p knock-client >&2
    fi
}

# need_tools TOOL...: exits 1 naming the first missing tool.
need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$(basename "$0"): needs $tool" >&2; exit 1; }
    done
}

# unit_priority: sets ours_sched, the command prefix that runs our knockd at the priority its
# packaged systemd unit gives it (the unit's Nice= and, with CPUSchedulingResetOnFork=yes, only
# the event loop raised: the threads and commands it creates start at nice 0), and priority,
# a phrase that says so. Both empty/"at nice 0" when the unit sets no Nice=.
unit_priority() {
    local unit nice
    unit="$repo/packaging/systemd/knockd.service"
    nice=$(sed -n 's/^Nice=//p' "$unit")
    ours_sched=()
    priority="both at nice 0"
    [ -n "$nice" ] || return 0
    ours_sched=(nice -n "$nice")
    priority="ours at nice $nice as its systemd unit runs it"
    if grep -qx 'CPUSchedulingResetOnFork=yes' "$unit"; then
        ours_sched+=(chrt --reset-on-fork --other 0)
        priority+=" (event loop only; its commands at 0)"
    fi
}

# CPU seconds (user+system, all threads) of a live process, or nothing.
cpu_seconds() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    # Fields after "(comm) ": state is $1, so utime/stime (fields 14/15) are $12/$13.
    awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / t }' <<<"$stat"
}

peak_rss_mib() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || true; }

alive() { kill -0 "$1" 2>/dev/null; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# wait_log FILE TEXT SECONDS: waits until FILE contains TEXT; returns 1 on timeout.
wait_log() {
    local deadline=$((SECONDS + $3))
    until grep -q -F -- "$2" "$1" 2>/dev/null; do
        [ $SECONDS -ge "$deadline" ] && return 1
        sleep 0.05
    done
}

# statistics_line PID LOG: asks our knockd for its "statistics:" line (SIGUSR1) and prints the
# newest one, or nothing.
statistics_line() {
    local pid=$1 log=$2 before deadline
    before=$(grep -c "statistics:" "$log" 2>/dev/null || true)
    kill -USR1 "$pid" 2>/dev/null || return 0
    deadline=$((SECONDS + 3))
    while [ "$(grep -c "statistics:" "$log" 2>/dev/null || true)" -le "${before:-0}" ]; do
        [ $SECONDS -ge $deadline ] && return 0
        sleep 0.05
    done
    grep "statistics:" "$log" | tail -n 1
}

# capture_counts LINE: "RECEIVED RING_DROPS QUEUE_DROPS" summed over the interfaces of a
# statistics line ("IF: R received, K dropped by the kernel, I dropped by the interface, Q
# dropped in the queue"); "- - -" without one.
capture_counts() {
    awk '
        {
            for (i = 2; i <= NF; i++) {
                if ($i == "received,") { r += $(i - 1); seen = 1 }
                if ($i == "dropped" && $(i + 3) ~ /^kernel/) k += $(i - 1)
                if ($i == "dropped" && $(i + 3) ~ /^queue/) q += $(i - 1)
            }
        }
        END { if (seen) print r + 0, k + 0, q + 0; else print "- - -" }' <<<"$1"
}

# thousands N: 200001 -> "200 001" (as the hand-written tables had it).
thousands() { awk -v n="$1" 'BEGIN { if (n !~ /^[0-9]+$/) { print n; exit } s = ""; while (length(n) > 3) { s = " " substr(n, length(n) - 2) s; n = substr(n, 1, length(n) - 3) } print n s }'; }
