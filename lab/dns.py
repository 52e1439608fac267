"""A tiny authoritative DNS server over UDP: A records from a fixed table, for names a test maps.

It stands in for a cluster's DNS where a program resolves names at run time with its own resolver
instead of libc (HAProxy's ``resolvers`` section): run it as a process inside a lab namespace and
point that namespace's resolv.conf at it. A name in the table answers its address, any other name
(or type) NXDOMAIN or an empty answer; nothing is forwarded anywhere.

    python -m lab.dns --bind 198.18.7.3:53 name1=198.18.7.1 name2=198.18.7.2
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import struct
from collections.abc import Mapping

TYPE_A, CLASS_IN, TTL = 1, 1, 1


def parse_question(query: bytes) -> tuple[int, int, str, int, int, int]:
    """(id, flags, name, qtype, qclass, end of the question) of a query; ValueError when malformed."""
    if len(query) < 12:
        raise ValueError("short header")
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        raise ValueError("one question expected")
    labels, pos = [], 12
    while True:
        if pos >= len(query):
            raise ValueError("truncated name")
        length = query[pos]
        pos += 1
        if length == 0:
            break
        if length > 63:
            raise ValueError("compressed or bad label in a question")
        labels.append(query[pos:pos + length].decode("ascii").lower())
        pos += length
    if pos + 4 > len(query):
        raise ValueError("truncated question")
    qtype, qclass = struct.unpack("!HH", query[pos:pos + 4])
    return ident, flags, ".".join(labels), qtype, qclass, pos + 4


def answer(query: bytes, table: Mapping[str, str]) -> bytes:
    """The response to one query: the question echoed, then an A record when the name is in ``table``."""
    ident, flags, name, qtype, qclass, end = parse_question(query)
    address = table.get(name.rstrip("."))
    rd = flags & 0x0100
    rcode = 0 if address is not None else 3  # NXDOMAIN for a name we do not know
    header = struct.pack("!HHHHHH", ident, 0x8400 | rd | rcode, 1, 0, 0, 0)  # QR, AA
    body = query[12:end]
    if address is not None and qtype == TYPE_A and qclass == CLASS_IN:
        header = header[:6] + struct.pack("!H", 1) + header[8:]
        body += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + ipaddress.IPv4Address(address).packed
    return header + body


def serve(bind: tuple[str, int], table: Mapping[str, str]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(bind)
    while True:
        query, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(query, table), peer)
        except (ValueError, UnicodeDecodeError):
            continue  # not a query we understand: no answer, the client times out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True, help="HOST:PORT")
    parser.add_argument("records", nargs="*", help="NAME=IPV4 (none: NXDOMAIN for every name)")
    args = parser.parse_args()
    host, _, port = args.bind.rpartition(":")
    table = {}
    for record in args.records:
        name, _, address = record.partition("=")
        table[name.lower().rstrip(".")] = str(ipaddress.IPv4Address(address))
    serve((host, int(port)), table)


if __name__ == "__main__":
    main()
