#!/usr/bin/env python3
"""Print the "Against the bar" bullets of BENCHMARKS.md, for scripts/bench.sh.

Reads the Markdown tables scripts/flood.sh printed (--flood-md) and finds the figures by their
column headers and row labels, not by position, so a column added to a table moves nothing;
a figure that is not there is reported as "not measured", never an error. Also reads the
criterion TSV of scripts/flood/criterion_table.py (id, median ns, elements/s), the TSV of
scripts/flood/nft_latency.sh and that of the benches' pause-cost program (what one flood pause
costs the machine, read against the 10 000 packets/s bar).

The bars: idle knock-to-command p50 <= 5 ms, no idle CPU and no idle wake-ups; capture -> spawn
p50 <= 0.3 ms at idle; <= 1 us of server CPU per flood packet at 10 000, 100 000 packets/s and
the generator's top speed; near-zero server CPU for a flood to a port that is not a knock port;
the matcher >= 20 M events/s on one core (batched, 1 M sources), within 2x from 1 to 1 M
sources; a set door's knock-to-element p50 under 0.3 ms.
"""

import argparse
import re
import sys

NOT_MEASURED = "not measured"
# A flood to a port no door listens on must cost (almost) nothing: at most this many µs of
# server CPU per packet (a twentieth of the knock-port bar), or at most this many CPU seconds
# over the whole row when the packet count is not known.
NEAR_ZERO_US = 0.05
NEAR_ZERO_S = 0.05
# How a row or a table heading names the flood to a port that is not a knock port.
NON_KNOCK = r"non[- ]?knock|not a knock|no door|not in any door|other port"


def verdict(ok):
    return "**met**" if ok else "**not met**"


def cells(line):
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        return None
    return [c.strip() for c in line[1:-1].split("|")]


def tables(text):
    """Markdown tables as dicts: heading (the nearest heading above), header, rows."""
    found = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        row = cells(line)
        if row is not None and i + 1 < len(lines):
            sep = cells(lines[i + 1])
            if sep and all(re.fullmatch(r":?-{3,}:?", c) for c in sep):
                table = {"heading": heading, "header": row, "rows": []}
                i += 2
                while i < len(lines) and cells(lines[i]) is not None:
                    table["rows"].append(cells(lines[i]))
                    i += 1
                found.append(table)
                continue
        i += 1
    return found


def column(table, *patterns, avoid=None):
    """Index of the first header cell matching every pattern (case-insensitive)."""
    for index, name in enumerate(table["header"]):
        if all(re.search(p, name, re.I) for p in patterns):
            if avoid and re.search(avoid, name, re.I):
                continue
            return index
    return None


def cell(row, index):
    if index is None or index >= len(row):
        return None
    return row[index]


def number(text):
    """The first number in a cell ("1 600 001", "**1.7 ms**", "0.41"), or None."""
    if text is None:
        return None
    text = text.replace("*", "")
    match = re.search(r"-?\d[\d ,]*(?:\.\d+)?", text.replace("\u202f", " "))
    if not match:
        return None
    try:
        return float(match.group(0).replace(" ", "").replace(",", ""))
    except ValueError:
        return None


def as_ms(text, header):
    """A latency cell in milliseconds: units from the cell or, failing that, the header."""
    value = number(text)
    if value is None:
        return None
    unit_text = text if re.search(r"(ms|µs|us|ns)\b", text or "") else header
    if re.search(r"µs|\bus\b", unit_text):
        return value / 1000
    if re.search(r"\bns\b", unit_text):
        return value / 1e6
    return value


def is_ours(label):
    return bool(re.search(r"ours", label or "", re.I))


def is_08(label):
    return bool(re.search(r"0\.8", label or ""))


def fmt(value, digits=2):
    return NOT_MEASURED if value is None else f"{value:.{digits}f}"


def flood_table(all_tables):
    for table in all_tables:
        if column(table, r"target rate") is not None:
            return table
    return None


def idle_table(all_tables):
    """The idle table: under an "Idle" heading, with knocks opened or wake-ups (not the stage
    table that may also sit under an idle heading)."""
    idle = [t for t in all_tables if re.search(r"idle", t["heading"], re.I) and column(t, r"p50") is not None]
    for table in idle:
        if column(table, r"knocks opened") is not None or column(table, r"wake") is not None:
            return table
    return idle[0] if idle else None


def is_non_knock(row):
    return any(re.search(NON_KNOCK, c, re.I) for c in row)


def cpu_per_packet(table, row):
    """(µs of server CPU per packet, how it was obtained) for a flood row, or (None, None)."""
    us = cell(row, column(table, r"µs|\bus\b", r"packet|pkt"))
    value = number(us)
    if value is not None:
        return value, "column"
    cpu = number(cell(row, column(table, r"cpu s|cpu \(s\)|cpu seconds")))
    sent = number(cell(row, column(table, r"packets sent")))
    if cpu is not None and sent:
        return cpu * 1e6 / sent, "derived"
    return None, None


def idle_bullets(all_tables, out):
    table = idle_table(all_tables)
    if table is None:
        out.append("* Idle figures: " + NOT_MEASURED + ".")
        return
    p50 = column(table, r"p50")
    cpu = column(table, r"cpu")
    wake = column(table, r"wake")
    ours = next((r for r in table["rows"] if is_ours(r[0])), None)
    old = next((r for r in table["rows"] if is_08(r[0])), None)
    if ours is None:
        out.append("* Idle figures of our knockd: " + NOT_MEASURED + ".")
    else:
        latency = as_ms(cell(ours, p50), table["header"][p50] if p50 is not None else "")
        out.append(
            f"* Idle knock-to-command latency p50 of our knockd: {fmt(latency, 1)} ms (bar: ≤ 5 ms) — "
            + (verdict(latency <= 5) if latency is not None else NOT_MEASURED) + "."
        )
        idle_cpu = number(cell(ours, cpu))
        out.append(
            f"* Idle CPU of our knockd: {fmt(idle_cpu)} s over the idle window (bar: 0) — "
            + (verdict(idle_cpu == 0) if idle_cpu is not None else NOT_MEASURED) + "."
        )
        wakeups = number(cell(ours, wake))
        window = number(table["header"][wake]) if wake is not None else None
        if wakeups is None or not window:
            out.append("* Idle wake-ups of our knockd: " + NOT_MEASURED + " (bar: none).")
        else:
            out.append(
                f"* Idle wake-ups of our knockd: {wakeups:.0f} context switches over {window:.0f} s "
                "(bar: no periodic wake-up, judged as fewer than one per second) — "
                + verdict(wakeups < window) + "."
            )
    if old is not None:
        latency = as_ms(cell(old, p50), table["header"][p50] if p50 is not None else "")
        out.append(f"* knockd 0.8 idle latency p50: {fmt(latency, 1)} ms.")


def stage_bullet(all_tables, out):
    """capture -> spawn p50 of our knockd at idle, from a table with stages as rows or columns."""
    for table in all_tables:
        # Stages as columns: a header cell naming capture..spawn (and p50, or a p50 table).
        index = column(table, r"capture", r"spawn", r"p50")
        if index is None and re.search(r"p50", " ".join(table["header"]), re.I) is None:
            index = column(table, r"capture", r"spawn")
        if index is not None:
            rows = [r for r in table["rows"] if is_ours(r[0])] or table["rows"]
            value = as_ms(cell(rows[0], index), table["header"][index]) if rows else None
            if value is not None:
                return stage_line(value, out)
        # Stages as rows: the row naming capture..spawn, the p50 column.
        p50 = column(table, r"p50")
        if p50 is None:
            continue
        for row in table["rows"]:
            if any(re.search(r"capture.*spawn", c, re.I) for c in row[:2]):
                if any(is_08(c) for c in row[:2]):
                    continue
                value = as_ms(cell(row, p50), table["header"][p50])
                if value is not None:
                    return stage_line(value, out)
    out.append("* Stage latency capture → spawn p50 of our knockd at idle: " + NOT_MEASURED
               + " (bar: ≤ 0.3 ms).")


def stage_line(value, out):
    out.append(
        f"* Stage latency capture → spawn p50 of our knockd at idle: {value:.3f} ms (bar: ≤ 0.3 ms) — "
        + verdict(value <= 0.3) + "."
    )


def flood_bullets(all_tables, out):
    table = flood_table(all_tables)
    if table is None:
        out.append("* Flood figures: " + NOT_MEASURED + ".")
        return
    rate_col = column(table, r"target rate")
    achieved_col = column(table, r"achieved")
    opened_col = column(table, r"opened")
    rss_col = column(table, r"rss")
    up_col = column(table, r"server up|up$")

    def rows(kind):
        return [r for r in table["rows"] if kind(r[0]) and not is_non_knock(r)]

    def at(kind, rate):
        for row in rows(kind):
            value = cell(row, rate_col) or ""
            if (rate == "max" and "max" in value) or (rate != "max" and number(value) == rate):
                return row
        return None

    # CPU per packet at the three rates.
    for rate, name in ((10000, "10 000 packets/s"), (100000, "100 000 packets/s"), ("max", "the generator's top speed")):
        ours = at(is_ours, rate)
        old = at(is_08, rate)
        us, how = cpu_per_packet(table, ours) if ours else (None, None)
        old_us, _ = cpu_per_packet(table, old) if old else (None, None)
        text = f"* Server CPU per flood packet at {name}"
        if ours is not None and rate == "max":
            text += f" ({cell(ours, achieved_col) or '?'} packets/s achieved)"
        if us is None:
            text += ": " + NOT_MEASURED + " (bar: ≤ 1 µs)"
        else:
            how = "server CPU s ÷ packets sent; " if how == "derived" else ""
            text += f": {us:.2f} µs ({how}bar: ≤ 1 µs) — {verdict(us <= 1)}"
        if old_us is not None:
            text += f"; knockd 0.8: {old_us:.2f} µs"
        out.append(text + ".")

    # A flood to a port that is not a knock port.
    non_knock = [r for r in table["rows"] if is_non_knock(r) and not is_08(r[0])]
    if not non_knock:
        for other in all_tables:
            if other is not table and re.search(NON_KNOCK, other["heading"], re.I):
                non_knock = [r for r in other["rows"] if not is_08(r[0])]
                table = other
                break
    if non_knock:
        row = non_knock[0]
        us, _ = cpu_per_packet(table, row)
        cpu = number(cell(row, column(table, r"cpu s|cpu \(s\)|cpu seconds")))
        if us is not None:
            out.append(f"* Flood to a port that is not a knock port: {us:.3f} µs of server CPU per packet "
                       f"(bar: near zero, ≤ {NEAR_ZERO_US} µs) — {verdict(us <= NEAR_ZERO_US)}.")
        elif cpu is not None:
            out.append(f"* Flood to a port that is not a knock port: {cpu:.2f} server CPU s "
                       f"(bar: near zero, ≤ {NEAR_ZERO_S} s) — {verdict(cpu <= NEAR_ZERO_S)}.")
        else:
            out.append("* Flood to a port that is not a knock port: server CPU " + NOT_MEASURED + " (bar: near zero).")
    else:
        out.append("* Flood to a port that is not a knock port: " + NOT_MEASURED + " (bar: near-zero server CPU).")

    table = flood_table(all_tables)
    fastest = at(is_ours, "max")
    if fastest is not None:
        out.append(
            f"* Fastest rate generated ({cell(fastest, achieved_col) or '?'} packets/s achieved): "
            f"legitimate knock opened: **{(cell(fastest, opened_col) or '?').replace('*', '')}**, "
            f"our knockd still up: **{(cell(fastest, up_col) or '?').replace('*', '').split(' ')[0]}**, "
            f"peak RSS {cell(fastest, rss_col) or '?'} MiB."
        )
    old_rows = rows(is_08)
    if old_rows:
        opened = ", ".join(
            f"{cell(r, rate_col)}: {(cell(r, opened_col) or '?').replace('*', '')}" for r in old_rows
        )
        out.append(f"* knockd 0.8, legitimate knock opened under flood, by target rate (packets/s): {opened}.")
    rss = ", ".join(f"{cell(r, rate_col)} pps: {cell(r, rss_col)} MiB" for r in rows(is_ours) if cell(r, rss_col))
    if rss:
        out.append(
            "* Peak RSS of our knockd by flood rate (bounded by --max-sources, default 65 536 sources, "
            f"plus the 8 MiB capture ring and the event queue): {rss}."
        )


def matcher_bullets(path, out):
    rates = {}
    order = []
    machine = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3 or not parts[2]:
                    continue
                read = re.fullmatch(r"machine/random_reads/(\w+)", parts[0])
                if read:
                    machine[read.group(1)] = float(parts[2])
                    continue
                match = re.fullmatch(r"matcher/([^/]+)/(\d+)_sources", parts[0])
                if not match:
                    continue
                variant, sources = match.group(1), int(match.group(2))
                if variant not in rates:
                    order.append(variant)
                    rates[variant] = {}
                rates[variant][sources] = float(parts[2])
    except OSError:
        pass
    batched = rates.get("steady_batched", {}).get(1000000)
    out.append(
        "* Matcher, `steady_batched` at 1 M tracked sources (criterion, one core): "
        + (f"{batched / 1e6:.1f} M events/s (bar: ≥ 20 M/s) — {verdict(batched >= 20e6)}"
           if batched is not None else NOT_MEASURED + " (bar: ≥ 20 M events/s)")
        + "."
    )
    independent, dependent = machine.get("independent"), machine.get("dependent")
    if independent is not None and dependent is not None:
        out.append(
            "* This machine's memory in the same run (`machine/random_reads`): the two reads of a "
            "look-up at 1 M sources (a byte of 2 MiB of control bytes, a line of 128 MiB of "
            f"entries, at random) run at {independent / 1e6:.1f} M pairs/s when independent, the "
            f"ceiling of a batched look-up; one read that depends on the one before takes "
            f"{1e9 / dependent:.0f} ns."
        )
    for variant in order:
        values = rates[variant].values()
        low, high = min(values), max(values)
        out.append(
            f"* Matcher, `{variant}` (criterion, one core, 1 to 1 M tracked sources): "
            f"{low / 1e6:.1f}–{high / 1e6:.1f} M events/s (bar: ≥ 20 M/s — {verdict(low >= 20e6)}; "
            f"within 2× — {high / low:.2f}×, {verdict(high / low <= 2)})."
        )


def pause_bullet(path, out):
    """The machine's cost of one flood pause with no packet work (benches' pause-cost TSV)."""
    try:
        with open(path) as f:
            parts = f.readline().rstrip("\n").split("\t")
        pause_ms, sleeper, receiver, cold, hot = (float(parts[i]) for i in (0, 2, 3, 4, 5))
    except (OSError, ValueError, IndexError):
        out.append("* What a flood pause costs this machine (`pause-cost`): " + NOT_MEASURED + ".")
        return
    per_second = 1000 / pause_ms
    out.append(
        f"* What this machine charges for the pauses alone (`pause-cost`, no packet work): a thread "
        f"waking from a {pause_ms:g} ms sleep and the thread it wakes with a channel send take "
        f"{sleeper:.1f} + {receiver:.1f} µs of CPU, {(sleeper + receiver) * per_second / 10000:.2f} µs "
        f"per packet at 10 000 packets/s ({per_second:g} pauses a second, one per {pause_ms:g} ms, "
        f"knockd's bound on a knock's wait during a flood); reading 1 MiB just after a pause takes "
        f"{cold:.0f} µs, against {hot:.0f} µs at once."
    )


def nft_bullet(path, out):
    p50 = None
    try:
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 4 and parts[1] == "set":
                    p50 = number(parts[3])
    except OSError:
        pass
    out.append(
        "* Knock to nftables element, set door p50: "
        + (f"{p50:.3f} ms (bar: < 0.3 ms) — {verdict(p50 < 0.3)}" if p50 is not None
           else NOT_MEASURED + " (bar: < 0.3 ms)")
        + "."
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flood-md", help="Markdown printed by scripts/flood.sh")
    parser.add_argument("--criterion-tsv", help="TSV of scripts/flood/criterion_table.py")
    parser.add_argument("--nft-tsv", help="TSV of scripts/flood/nft_latency.sh")
    parser.add_argument("--pause-tsv", help="TSV of the benches' pause-cost program")
    args = parser.parse_args()
    text = ""
    if args.flood_md:
        try:
            with open(args.flood_md) as f:
                text = f.read()
        except OSError:
            text = ""
    all_tables = tables(text)
    out = []
    if not all_tables:
        out.append("* The flood harness produced no figures (see below).")
    else:
        idle_bullets(all_tables, out)
        stage_bullet(all_tables, out)
        flood_bullets(all_tables, out)
    if args.pause_tsv:
        pause_bullet(args.pause_tsv, out)
    if args.criterion_tsv:
        matcher_bullets(args.criterion_tsv, out)
    if args.nft_tsv:
        nft_bullet(args.nft_tsv, out)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
