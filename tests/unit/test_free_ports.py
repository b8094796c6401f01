"""tests.helpers.free_ports: ports no outgoing connection can take, and never shared between test workers."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.helpers import PORT_SPAN, free_ports, port_slice, worker_ports


def ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_the_span_lies_below_the_ephemeral_range():
    assert PORT_SPAN[1] <= ephemeral_range().start


def test_each_worker_owns_a_slice_no_other_worker_offers():
    for workers in (1, 2, 3, 8):
        slices = [set(port_slice(f"gw{i}", workers)) for i in range(workers)]
        assert all(len(s) >= 2000 for s in slices)
        assert sum(len(s) for s in slices) == len(set().union(*slices))
    assert port_slice(None, 1) == port_slice("gw0", 1)


def test_free_ports_are_distinct_and_skip_ports_in_use():
    assert len(set(free_ports(5))) == 5
    (last,) = free_ports(1)
    ports = worker_ports()
    after = [ports[(ports.index(last) + k) % len(ports)] for k in (1, 2, 3)]  # the next ports it would offer
    held = []
    try:
        for port in after:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", port))
            s.listen()
        (offered,) = free_ports(1)
    finally:
        for s in held:
            s.close()
    assert offered not in after
    with socket.socket() as s:
        s.bind(("127.0.0.1", offered))
