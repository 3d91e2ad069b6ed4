#!/usr/bin/env python3
"""Print a Markdown table of criterion results, for scripts/bench.sh.

Reads target/criterion/**/new/{benchmark,estimates}.json written at or after --since (a Unix
time), so only the benchmarks of this run are listed. Throughput (elements or bytes per
second) is computed from the median time per iteration and the benchmark's declared
throughput; benchmarks without one show the time only.
"""

import argparse
import json
import os
import sys


def human_rate(per_second, unit):
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_second >= factor:
            return f"{per_second / factor:.2f} {prefix}{unit}/s"
    return f"{per_second:.0f} {unit}/s"


def human_time(ns):
    for factor, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if ns >= factor:
            return f"{ns / factor:.2f} {unit}"
    return f"{ns:.2f} ns"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--criterion-dir", required=True)
    parser.add_argument("--since", type=float, required=True)
    parser.add_argument("--tsv", help="also write id, median ns, elements/s tab-separated")
    args = parser.parse_args()

    rows = []
    tsv = []
    for dirpath, _dirnames, filenames in os.walk(args.criterion_dir):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in filenames:
            continue
        estimates_path = os.path.join(dirpath, "estimates.json")
        if not os.path.exists(estimates_path):
            continue
        if os.path.getmtime(estimates_path) < args.since:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(estimates_path) as f:
            estimates = json.load(f)
        median_ns = estimates["median"]["point_estimate"]
        low = estimates["median"]["confidence_interval"]["lower_bound"]
        high = estimates["median"]["confidence_interval"]["upper_bound"]
        throughput = bench.get("throughput") or {}
        rate = ""
        elements_per_second = ""
        if "Elements" in throughput:
            elements_per_second = throughput["Elements"] / median_ns * 1e9
            rate = human_rate(elements_per_second, "elem")
        elif "Bytes" in throughput:
            rate = human_rate(throughput["Bytes"] / median_ns * 1e9, "B")
        elif "BytesDecimal" in throughput:
            rate = human_rate(throughput["BytesDecimal"] / median_ns * 1e9, "B")
        tsv.append(f"{bench.get('full_id', dirpath)}\t{median_ns}\t{elements_per_second}")
        rows.append((bench.get("full_id", dirpath), human_time(median_ns),
                     f"{human_time(low)} – {human_time(high)}", rate))

    if args.tsv:
        with open(args.tsv, "w") as f:
            f.write("".join(line + "\n" for line in sorted(tsv)))
    if not rows:
        print("No criterion results were written by this run.")
        return 1
    print("| benchmark | median time per iteration | 95 % CI of the median | throughput |")
    print("|---|---|---|---|")
    for row in sorted(rows):
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
