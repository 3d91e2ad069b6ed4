#!/usr/bin/env python3
"""Write a pcap savefile of spoofed-source TCP SYNs, for scripts/flood.sh.

Every packet is an Ethernet/IPv4/TCP SYN from a random source in 10.0.0.0/8 (never inside
the harness's own /16, given by --avoid) to one destination address and port, with correct IP
and TCP checksums, so the receiving kernel treats it as an ordinary connection attempt.

Generated at run time into a temporary directory: no binary fixture is committed. Only the
standard library is used, so a fresh Debian/Ubuntu machine needs nothing beyond python3.
"""

import argparse
import ipaddress
import random
import struct
import sys

PCAP_GLOBAL_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # DLT_EN10MB


def mac_bytes(text):
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ones_sum(data):
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="pcap file to write")
    parser.add_argument("--count", type=int, required=True, help="number of packets")
    parser.add_argument("--src-mac", required=True, help="Ethernet source (client side)")
    parser.add_argument("--dst-mac", required=True, help="Ethernet destination (server side)")
    parser.add_argument("--dst-ip", required=True, help="IPv4 destination (the server)")
    parser.add_argument("--dport", type=int, required=True, help="TCP destination port")
    parser.add_argument("--avoid", required=True, help="a /16 no source may come from")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    if not 0 < args.count <= 10_000_000:
        sys.exit("--count must be in 1..=10000000")
    rng = random.Random(args.seed)
    avoid = ipaddress.ip_network(args.avoid)
    dst = ipaddress.IPv4Address(args.dst_ip).packed
    ether = mac_bytes(args.dst_mac) + mac_bytes(args.src_mac) + b"\x08\x00"

    # The only fields that vary per packet are the source address, source port, IP id and
    # sequence number, so both checksums are a constant part plus the varying words.
    ip_fixed = ones_sum(struct.pack("!BBHHHBBH4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, dst))
    tcp_fixed = ones_sum(dst + struct.pack("!BBH", 0, 6, 20)) + ones_sum(
        struct.pack("!HIIBBHHH", 0, 0, 0, 5 << 4, 0x02, 64240, 0, 0)
    ) + args.dport

    out = bytearray()
    out += PCAP_GLOBAL_HEADER
    record = struct.Struct("<IIII")
    ipv4 = struct.Struct("!BBHHHBBH4s4s")
    tcp = struct.Struct("!HHIIBBHHH")
    avoid_lo = int(avoid.network_address)
    avoid_hi = int(avoid.broadcast_address)
    for n in range(args.count):
        while True:
            src_int = 0x0A000000 | rng.getrandbits(24)
            if not avoid_lo <= src_int <= avoid_hi and src_int & 0xFF not in (0, 255):
                break
        src = src_int.to_bytes(4, "big")
        sport = 1024 + rng.getrandbits(15)
        ip_id = n & 0xFFFF
        seq = rng.getrandbits(32)
        src_words = (src_int >> 16) + (src_int & 0xFFFF)
        ip_csum = ~fold(ip_fixed + ip_id + src_words) & 0xFFFF
        tcp_csum = ~fold(tcp_fixed + src_words + sport + (seq >> 16) + (seq & 0xFFFF)) & 0xFFFF
        frame = (
            ether
            + ipv4.pack(0x45, 0, 40, ip_id, 0x4000, 64, 6, ip_csum, src, dst)
            + tcp.pack(sport, args.dport, seq, 0, 5 << 4, 0x02, 64240, tcp_csum, 0)
        )
        # Timestamps are irrelevant: tcpreplay paces by --pps or --topspeed.
        out += record.pack(n // 1_000_000, n % 1_000_000, len(frame), len(frame))
        out += frame
    with open(args.out, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
