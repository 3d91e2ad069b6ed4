#!/usr/bin/env bash
# Knock to nftables element: the latency of a native set door (`Nft_Set`, netlink, no process)
# next to a door whose `Start_Command` runs `nft add element …`, and knockd 0.8 with the same
# command, measured by the root e2e test `nft::knock_to_element_latency` (release build).
#
#   scripts/flood/nft_latency.sh [--rounds N] [--tsv FILE]
#
# Needs root, nft and /usr/sbin/knockd (Debian's knockd 0.8; its row is left out without it).
# The test builds its own pair of namespaces (addresses in 10.x and fd00::/8, names with the
# test process's pid, deleted when it ends) and loads examples/configs/nft-native.nft in the
# server one: nothing outside them is touched. N knocks per door (default 200).
# Prints the Markdown section of BENCHMARKS.md on stdout (--tsv FILE: nft, row, knocks, p50,
# p90, p99, max in ms, tab-separated; the rows are "set", "command" and "0.8").
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source-path=SCRIPTDIR source=lib.sh
. scripts/flood/lib.sh
rounds=200
tsv=""
command_line="sudo scripts/flood/nft_latency.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; command_line+=" --rounds $2"; shift 2 ;;
        --tsv) tsv=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "nft_latency.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$rounds" in '' | *[!0-9]* | 0) echo "nft_latency.sh: --rounds must be a positive number" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then echo "nft_latency.sh: needs root" >&2; exit 1; fi
need_tools nft ip cargo

load_start=$(loadavg)
bench_work=$(mktemp -d /tmp/knock-nftlat.XXXXXX)
trap netpair_cleanup EXIT
trap 'exit 130' INT TERM
test_cmd="KNOCKD_BENCH_ROUNDS=$rounds cargo test --release -p knock-server --test e2e nft::knock_to_element_latency -- --exact --include-ignored --nocapture"
echo "nft_latency: $test_cmd" >&2
status=0
KNOCKD_BENCH_ROUNDS=$rounds cargo test --release -p knock-server --test e2e \
    nft::knock_to_element_latency -- --exact --include-ignored --nocapture \
    >"$bench_work/test.out" 2>&1 || status=$?

# "knock→element LABEL: N knocks, p50 A ms, p90 B ms, p99 C ms, max D ms" -> TSV rows.
sed -n -E 's/^knock→element (.*): ([0-9]+) knocks, p50 ([0-9.]+) ms, p90 ([0-9.]+) ms, p99 ([0-9.]+) ms, max ([0-9.]+) ms$/\1\t\2\t\3\t\4\t\5\t\6/p' \
    "$bench_work/test.out" | awk -F '\t' -v OFS='\t' '
        $1 ~ /0\.8/ { print "nft", "0.8", $2, $3, $4, $5, $6; next }
        $1 ~ /Nft_Set/ { print "nft", "set", $2, $3, $4, $5, $6; next }
        $1 ~ /Start_Command/ { print "nft", "command", $2, $3, $4, $5, $6 }' >"$bench_work/rows.tsv"
[ -z "$tsv" ] || cp "$bench_work/rows.tsv" "$tsv"

cat <<SECTION
## Knock to nftables element

\`$command_line\` runs \`$test_cmd\`.
The example ruleset (\`examples/configs/nft-native.nft\`) is loaded in the server
namespace of a veth pair; the door is \`7113,9245:udp,8472\`. *Latency* is from just before the
client (a thread in the client namespace, in the test process) sends the last knock to the
moment a thread in the server namespace, dumping the set over netlink in a busy loop
(\`NftSets::elements\`), first sees the knocker's address; both times are the test process's
monotonic clock. The set is flushed between rounds; the test fails unless every knock of every
row added the element. Load average: $load_start at the start, $(loadavg) at the end.

SECTION
if [ "$status" -ne 0 ]; then
    echo "**The test failed (exit status $status).** Last lines of its output:"
    echo
    echo '```text'
    tail -n 20 "$bench_work/test.out"
    echo '```'
    echo
fi
if [ -s "$bench_work/rows.tsv" ]; then
    echo "| server, door | knocks | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |"
    echo "|---|---|---|---|---|---|"
    awk -F '\t' '
        function ms(v) { return v < 1 ? sprintf("%.2f", v) : v < 100 ? sprintf("%.1f", v) : sprintf("%.0f", v) }
        {
            if ($2 == "set") label = "knockd (ours), `Nft_Set = inet knockd ssh4` (netlink, no process)"
            else if ($2 == "command") label = "knockd (ours), `Start_Command = nft add element inet knockd ssh4 { %IP% timeout 5s }`"
            else label = "knockd 0.8, the same `Start_Command`"
            printf "| %s | %s | %s | %s | %s | %s |\n", label, $3, ms($4), ms($5), ms($6), ms($7)
        }' "$bench_work/rows.tsv"
    echo
    awk -F '\t' '$2 == "set" {
        printf "Issue 12'"'"'s target for the set door, p50 under 0.3 ms: %s ms — **%s**.\n", $4, ($4 + 0 < 0.3) ? "met" : "not met"
    }' "$bench_work/rows.tsv"
    [ -x /usr/sbin/knockd ] || echo "knockd 0.8 is not installed (/usr/sbin/knockd): its row is missing."
fi
exit "$status"
