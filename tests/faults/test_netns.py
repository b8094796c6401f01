"""Real partitions on a real segment: TCP and UDP traffic between agents in the namespaces.

Each node namespace (and the root namespace, as the client side) runs one small agent process:
a TCP echo server and a UDP sink bound to its address, which on request probes other agents (TCP
connect + echo round trip, concurrently) or sends datagrams. Needs root; skips otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests.faults import netns
from tests.faults.netns import (
    IP,
    NFT,
    CommandError,
    Network,
    NoFreeSubnetError,
    cleanup_stale,
    run_command,
)
from tests.helpers import REPO, wait_until

pytestmark = pytest.mark.timeout(60)

PROBE_TIMEOUT = 1.0  # a cut link must make a connect time out within this
AGENT_LIFETIME = 120.0  # agents exit on their own after this, whatever happens to the test
SETUP_FAILURE_PREFIX = "rct"  # names only the injected-failure tests create
CRASH_PREFIX = "rcs"  # names only the crashed-run test creates

AGENT = r"""
import json, os, socket, sys, threading

host, lifetime = sys.argv[1], float(sys.argv[2])
threading.Timer(lifetime, os._exit, (3,)).start()  # bounded even if the test never stops us
seen, seen_lock = set(), threading.Lock()


def echo(conn):
    with conn:
        conn.settimeout(5)
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
        except OSError:
            pass


def serve_tcp(listener):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def serve_udp(sock):
    while True:
        data, _ = sock.recvfrom(4096)
        with seen_lock:
            seen.add(data.decode())


def round_trip(ip, port, timeout, results, k):
    token = os.urandom(8).hex().encode()
    try:
        with socket.create_connection((ip, port), timeout=timeout, source_address=(host, 0)) as s:
            s.sendall(token)
            echoed = b""
            while len(echoed) < len(token) and (chunk := s.recv(64)):
                echoed += chunk
        results[k] = "ok" if echoed == token else "bad echo"
    except TimeoutError:
        results[k] = "timeout"
    except OSError as exc:
        results[k] = os.strerror(exc.errno) if exc.errno else repr(exc)


listener = socket.create_server((host, 0))
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind((host, 0))
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sender.bind((host, 0))
threading.Thread(target=serve_tcp, args=(listener,), daemon=True).start()
threading.Thread(target=serve_udp, args=(sink,), daemon=True).start()
print(json.dumps({"tcp": listener.getsockname()[1], "udp": sink.getsockname()[1]}), flush=True)

for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "tcp":
        targets = request["targets"]
        results = [None] * len(targets)
        probes = [
            threading.Thread(target=round_trip, args=(ip, port, request["timeout"], results, k))
            for k, (ip, port) in enumerate(targets)
        ]
        for probe in probes:
            probe.start()
        for probe in probes:
            probe.join()
        reply = {"results": results}
    elif request["op"] == "udp":
        sender.sendto(request["token"].encode(), tuple(request["target"]))
        reply = {"sent": True}
    else:  # "seen"
        with seen_lock:
            reply = {"tokens": sorted(seen)}
    print(json.dumps(reply), flush=True)
"""


class Agent:
    """One agent process bound to `host`, started with `prefix` (a namespace's exec prefix)."""

    def __init__(self, label: str, host: str, prefix: Sequence[str] = ()) -> None:
        self.label = label
        self.host = host
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", AGENT, host, str(AGENT_LIFETIME)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        try:
            ports = self.read()
        except BaseException:
            self.stop()
            raise
        self.tcp_port: int = ports["tcp"]
        self.udp_port: int = ports["udp"]

    def send(self, **request: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"agent {self.label} exited with {self.proc.wait(5)}")
        return json.loads(line)

    def send_udp(self, dest: Agent, token: str) -> None:
        self.send(op="udp", target=[dest.host, dest.udp_port], token=token)
        self.read()

    def seen(self) -> set[str]:
        self.send(op="seen")
        return set(self.read()["tokens"])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@dataclass
class Segment:
    net: Network
    root: Agent
    nodes: list[Agent]


def tcp_outcomes(seg: Segment, timeout: float = PROBE_TIMEOUT) -> dict[tuple[str, str], str]:
    """(source, destination) -> outcome of a connect + echo from every agent to every node agent."""
    sources = [seg.root, *seg.nodes]
    for src in sources:  # all probes run at once: one round takes at most `timeout`
        src.send(op="tcp", targets=[[d.host, d.tcp_port] for d in seg.nodes if d is not src], timeout=timeout)
    outcomes = {}
    for src in sources:
        dests = [d for d in seg.nodes if d is not src]
        for dest, outcome in zip(dests, src.read()["results"]):
            outcomes[(src.label, dest.label)] = outcome
    return outcomes


def expected_outcomes(seg: Segment, cut: set[tuple[int, int]]) -> dict[tuple[str, str], str]:
    """What `tcp_outcomes` should say when exactly the node pairs in `cut` cannot connect."""
    expected = {("root", d.label): "ok" for d in seg.nodes}
    for i, src in enumerate(seg.nodes):
        for j, dest in enumerate(seg.nodes):
            if i != j:
                expected[(src.label, dest.label)] = "timeout" if (i, j) in cut else "ok"
    return expected


def assert_cut_exactly(seg: Segment, cut: set[tuple[int, int]], rounds: int = 3) -> None:
    """Every probe matches `cut`. An open path gets a few rounds, as a loaded machine can make one
    probe miss its deadline; a cut path has to time out every round."""
    expected = expected_outcomes(seg, cut)
    for _ in range(rounds):
        outcomes = tcp_outcomes(seg)
        if outcomes == expected:
            return
        if any(outcomes[pair] != "timeout" for pair, want in expected.items() if want == "timeout"):
            break
    assert outcomes == expected


def fully_connected(seg: Segment) -> bool:
    return set(tcp_outcomes(seg).values()) == {"ok"}


def names_with(prefix: str) -> set[str]:
    """Host links and namespaces whose name starts with `prefix`-."""
    netns_names = {e["name"] for e in json.loads(run_command([IP, "-j", "netns", "list"]) or "[]")}
    links = {e["ifname"] for e in json.loads(run_command([IP, "-j", "link", "show"]) or "[]")}
    return {name for name in netns_names | links if name.startswith(f"{prefix}-")}


def pid_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module", autouse=True)
def netns_capable() -> None:
    ok, reason = netns.available()
    if not ok:
        pytest.skip(reason)
    for prefix in (netns.DEFAULT_PREFIX, SETUP_FAILURE_PREFIX, CRASH_PREFIX):
        cleanup_stale(prefix)


@pytest.fixture(scope="module")
def segment(netns_capable: None) -> Iterator[Segment]:
    agents: list[Agent] = []
    with Network(3) as net:
        try:
            agents.append(Agent("root", net.client_ip))
            for i in range(net.size):
                agents.append(Agent(f"n{i}", net.node_ip(i), net.exec_prefix(i)))
            yield Segment(net, agents[0], agents[1:])
        finally:
            for agent in agents:
                agent.stop()


@pytest.fixture
def seg(segment: Segment) -> Iterator[Segment]:
    """The shared segment, healed again after the test."""
    yield segment
    segment.net.heal()


# ------------------------------------------------------------------ connectivity
def test_every_node_reaches_every_node_and_the_root_reaches_all(seg: Segment) -> None:
    net = seg.net
    assert [net.node_ip(i) for i in range(3)] == [net.subnet.replace(".0/24", f".{11 + i}") for i in range(3)]
    assert net.client_ip == net.subnet.replace(".0/24", ".1")

    assert_cut_exactly(seg, cut=set())


def test_partition_cuts_links_between_groups_only(seg: Segment) -> None:
    seg.net.partition([[0], [1, 2]])

    assert seg.net.blocked == {(0, 1), (0, 2), (1, 0), (2, 0)}
    assert_cut_exactly(seg, cut={(0, 1), (0, 2), (1, 0), (2, 0)})


def test_heal_restores_full_connectivity(seg: Segment) -> None:
    seg.net.partition([[0, 1], [2]])
    assert tcp_outcomes(seg)[("n1", "n2")] == "timeout"

    seg.net.heal()

    assert seg.net.blocked == frozenset()
    wait_until(lambda: fully_connected(seg), timeout=10, what="full connectivity after heal")


def test_each_fault_replaces_the_previous_one_and_repeating_it_is_harmless(seg: Segment) -> None:
    seg.net.partition([[0], [1, 2]])
    seg.net.isolate(2)
    seg.net.isolate(2)

    assert seg.net.blocked == {(2, 0), (2, 1), (0, 2), (1, 2)}
    assert_cut_exactly(seg, cut={(2, 0), (2, 1), (0, 2), (1, 2)})

    seg.net.heal()
    seg.net.heal()
    wait_until(lambda: fully_connected(seg), timeout=10, what="full connectivity after heal")


def test_one_way_partition_drops_one_direction_only(seg: Segment) -> None:
    n0, n1, n2 = seg.nodes
    seg.net.partition_one_way(0, 1)

    n0.send_udp(n1, "0->1")  # dropped; sent first, so it would arrive before the next ones
    n0.send_udp(n2, "0->2")
    n1.send_udp(n0, "1->0")
    wait_until(lambda: "0->2" in n2.seen() and "1->0" in n0.seen(), timeout=5, what="datagrams on open paths")
    assert "0->1" not in n1.seen()

    # TCP needs both directions, so it fails both ways (see the module notes).
    assert_cut_exactly(seg, cut={(0, 1), (1, 0)})


def test_bad_fault_descriptions_are_refused_without_changing_the_rules(seg: Segment) -> None:
    seg.net.isolate(1)
    for bad in ([[0, 1], [1, 2]], [[0], [3]], [[-1], [0]]):
        with pytest.raises(ValueError):
            seg.net.partition(bad)
    with pytest.raises(ValueError):
        seg.net.partition_one_way(1, 1)

    assert seg.net.blocked == {(1, 0), (1, 2), (0, 1), (2, 1)}
    assert tcp_outcomes(seg)[("n0", "n1")] == "timeout"


# ------------------------------------------------------------------ address plan
def test_a_second_network_gets_a_free_subnet_and_refuses_when_none_is(segment: Segment) -> None:
    taken = segment.net.subnet
    other = "10.214.77.0/24"
    with Network(1, prefix=SETUP_FAILURE_PREFIX, subnets=[taken, other]) as net:
        assert net.subnet == other

    with pytest.raises(NoFreeSubnetError, match="overlaps a host route or address"):
        Network(1, prefix=SETUP_FAILURE_PREFIX, subnets=[taken, "10.213.0.0/16"])
    assert names_with(SETUP_FAILURE_PREFIX) == set()


# ------------------------------------------------------------------ cleanup
def test_close_leaves_no_namespace_link_or_table_behind(netns_capable: None) -> None:
    net = Network(2)
    owned = set(net.namespaces) | {net.client_link}
    assert owned <= names_with(netns.DEFAULT_PREFIX)
    address = net.client_ip

    net.close()
    net.close()

    assert not owned & names_with(netns.DEFAULT_PREFIX)
    assert address not in run_command([IP, "-4", "addr", "show"])
    assert net.tag not in run_command([NFT, "list", "tables"])
    with pytest.raises(netns.NetnsError, match="closed"):
        net.heal()


def failing_at(failing_step: int) -> netns.Runner:
    """A runner whose `failing_step`-th command (from 0) fails instead of running."""
    steps = iter(range(10**6))

    def run(cmd: Sequence[str], stdin: str | None) -> str:
        if next(steps) == failing_step:
            raise CommandError(cmd, 1, "injected failure")
        return run_command(cmd, stdin)

    return run


def test_a_setup_failing_at_any_step_leaves_nothing_behind(netns_capable: None) -> None:
    calls: list[Sequence[str]] = []

    def counting(cmd: Sequence[str], stdin: str | None) -> str:
        calls.append(cmd)
        return run_command(cmd, stdin)

    Network(1, prefix=SETUP_FAILURE_PREFIX, run=counting).close()
    setup_steps = len(calls) - 3  # the last three are close(): host link, then two namespaces

    for failing_step in range(setup_steps):
        with pytest.raises(CommandError, match="injected failure"):
            Network(1, prefix=SETUP_FAILURE_PREFIX, run=failing_at(failing_step))
        assert names_with(SETUP_FAILURE_PREFIX) == set(), f"leftovers after a failure at step {failing_step}"


CRASHING_RUN = """
import json, subprocess, time
from tests.faults.netns import Network
net = Network(2, prefix=%r)
node = subprocess.Popen([*net.exec_prefix(0), "sleep", "60"])
print(json.dumps({"names": net.namespaces + [net.client_link], "node_pid": node.pid}), flush=True)
time.sleep(60)
"""


def test_cleanup_stale_removes_a_crashed_runs_leftovers_and_nothing_live(netns_capable: None) -> None:
    crashed = subprocess.Popen(
        [sys.executable, "-c", CRASHING_RUN % CRASH_PREFIX], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert crashed.stdout is not None
        left = json.loads(crashed.stdout.readline())
    finally:
        crashed.send_signal(signal.SIGKILL)
        crashed.wait(10)
        crashed.stdout.close()  # type: ignore[union-attr]
    node_pid = left["node_pid"]
    try:
        assert set(left["names"]) <= names_with(CRASH_PREFIX)
        assert pid_running(node_pid)

        with Network(1, prefix=CRASH_PREFIX) as live:
            removed = cleanup_stale(CRASH_PREFIX)

            assert sorted(removed) == sorted(left["names"])
            assert names_with(CRASH_PREFIX) == set(live.namespaces) | {live.client_link}
            wait_until(lambda: not pid_running(node_pid), timeout=5, what="the crashed run's node to be killed")
    finally:
        if pid_running(node_pid):
            os.kill(node_pid, signal.SIGKILL)
