"""Real network partitions between the nodes of a local cluster, for Jepsen-style fault tests.

Role
----
:class:`Network` gives each of N node processes its own Linux network namespace on one private
L2 segment that the test process (in the root namespace) reaches directly, and cuts and heals the
links between nodes with nftables. It needs root, iproute2 and nftables; :func:`available` says
whether this machine can do it, and why not, so tests can skip cleanly.

Using it
--------
::

    with Network(3) as net:
        procs = [subprocess.Popen([*net.exec_prefix(i), sys.executable, "-m", "raftcache", ...]) for i in range(3)]
        net.partition([[0], [1, 2]])   # or isolate(i), partition_one_way(src, dst), set_blocked(pairs)
        net.heal()

Nodes must bind and advertise ``net.node_ip(i)`` (or bind 0.0.0.0): ``127.0.0.1`` inside a node
namespace is that namespace's own loopback. Clients in the test process connect to the node IPs.
Ports are per namespace, so nodes may all use the same port; ``exec_prefix`` keeps the PID, so
signals (kill, SIGSTOP) go straight to the node.

Topology and address plan
-------------------------
::

    root namespace (test process, clients)
      <tag>c  10.213.B.1/24 ──veth──┐
                                    │ up0
    switch namespace <tag>s         br0 (Linux bridge)  + nft table `bridge partitions`
                                    │ p0          │ p1          │ p2 ...
    node namespace <tag>n0  eth0 10.213.B.11/24   │             │
    node namespace <tag>n1            eth0 10.213.B.12/24       │
    node namespace <tag>n2                       eth0 10.213.B.13/24

Node i is ``.(11 + i)``; the root end is ``.1`` (:attr:`Network.client_ip`). The /24 is the first
of ``10.213.0.0/24 .. 10.213.31.0/24`` (or the caller's ``subnets``) that overlaps no route (any
table) and no address on the host; the choice and the address assignment happen under a file lock,
so concurrent Networks, even from other processes, get different /24s. No candidate free: raises
:class:`NoFreeSubnetError`. The only route this adds to the host is the connected /24 route of
``<tag>c``; nodes have no default route, so their traffic cannot leave the segment.

Why the bridge lives in a namespace of its own rather than in the root namespace:

* with ``br_netfilter`` loaded and ``bridge-nf-call-iptables = 1`` (Docker hosts, CI runners),
  frames bridged in the root namespace traverse the host's iptables FORWARD chain, whose DROP
  policy would silently cut nodes off from each other; a fresh namespace has no such rules;
* the nft table lives inside that namespace, so the host's ruleset is never read or written;
* the host only ever sees one veth interface per Network.

Names
-----
``tag = f"{prefix}-{pid:5 base36}{counter:2 base36}"`` (e.g. ``rcf-0ab3k02``): the owner's PID is
in every name, so :func:`cleanup_stale` removes only leftovers whose owner process is dead and never
a concurrent run's live Network. Host interface ``<tag>c`` is at most 13 characters (limit 15);
interfaces inside our namespaces have fixed names (``br0``, ``up0``, ``p<i>``, ``eth0``).

Partitions
----------
The fault state is a set of blocked *ordered* node pairs ``(src, dst)``. Each blocked pair is one
rule in the bridge's forward chain: ``iifname "p<src>" oifname "p<dst>" ether type != arp drop``.
Every change is one ``nft -f -`` transaction that flushes the chain and adds the new rules, so it
is atomic and idempotent. Client traffic (root namespace <-> node) crosses ``up0``, which no rule
names, so it always flows. ARP is let through so a one-way cut stays one-way (the reverse direction
can still resolve MAC addresses), a blocked connect fails by timing out rather than with
EHOSTUNREACH, and healing takes effect on the very next packet.

Cleanup
-------
:meth:`Network.close` (and ``__exit__``) deletes the host veth (which takes its peer with it) and
every namespace this Network created; deleting the switch namespace destroys the bridge, the nft
table and the node-side veth pairs. It runs after a partial setup failure too (the constructor
cleans up before re-raising), tolerates things already gone and is idempotent. It does not kill
processes: stop the nodes first (a process left in a deleted namespace keeps running, cut off).
:func:`cleanup_stale` removes namespaces and host links of crashed runs (owner PID dead), killing
any process still inside such a namespace. A reused PID hides a leftover until that process exits.

Timing notes for callers
------------------------
* A rule change is one ``ip netns exec ... nft -f -`` run: 15-30 ms, effective on return.
  Setting up or closing a 3-node Network takes about 0.2 s in all.
* Frames are dropped silently: established TCP connections just stall (no RST), and the kernel
  gives up only after ``tcp_retries2`` (about 15 minutes), so node code needs its own timeouts.
  New connects hang until the caller's timeout (SYN retries: 1 s, 3 s, 7 s, ...).
* After :meth:`Network.heal`, a stalled TCP stream resumes at its next retransmission, whose
  back-off doubles while partitioned (capped at 120 s): after a long partition resumption can take
  tens of seconds unless the application reconnects. Wait on the behaviour with a deadline.
* A one-way cut breaks TCP in both directions (the handshake or the ACKs are lost); it is really
  one-way only for datagrams.
* Segment links have MTU 1500 whatever the host's MTU; IPv6 is not configured on node interfaces.

Exceptions::

    NetnsError                a network could not be set up, changed or torn down
     ├── CommandError         a command failed: .cmd, .returncode, .stderr
     └── NoFreeSubnetError    every candidate /24 overlaps a host route or address
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Self

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_SUBNETS",
    "CommandError",
    "NetnsError",
    "Network",
    "NoFreeSubnetError",
    "available",
    "cleanup_stale",
    "run_command",
]

DEFAULT_PREFIX = "rcf"
DEFAULT_SUBNETS: tuple[str, ...] = tuple(f"10.213.{b}.0/24" for b in range(32))
FIRST_NODE_HOST = 11  # node i is host number 11 + i of the subnet; the root end is host 1
MAX_NODES = 200
COMMAND_TIMEOUT = 30.0
NFT_TABLE = "partitions"  # lives in the switch namespace, so it cannot clash with anything

_TOOL_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
IP = shutil.which("ip", path=_TOOL_PATH) or "ip"
NFT = shutil.which("nft", path=_TOOL_PATH) or "nft"

_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,3}")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_PID_WIDTH, _COUNTER_WIDTH = 5, 2
_counter = itertools.count()


class NetnsError(RuntimeError):
    """A network could not be set up, changed or torn down."""


class CommandError(NetnsError):
    """A command failed; carries the command line and its stderr."""

    def __init__(self, cmd: Sequence[str], returncode: int | None, stderr: str) -> None:
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stderr = stderr.strip()
        status = "timed out" if returncode is None and "timed out" in stderr else f"exited {returncode}"
        super().__init__(f"`{' '.join(self.cmd)}` {status}: {self.stderr or '(no stderr)'}")


class NoFreeSubnetError(NetnsError):
    """Every candidate subnet overlaps a route or an address of the host."""


Runner = Callable[[Sequence[str], "str | None"], str]


def run_command(cmd: Sequence[str], stdin: str | None = None) -> str:
    """Run `cmd`, return its stdout; raise :class:`CommandError` with its stderr on failure."""
    try:
        done = subprocess.run(list(cmd), input=stdin, check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.CalledProcessError as exc:
        raise CommandError(cmd, exc.returncode, exc.stderr or "") from None
    except subprocess.TimeoutExpired:
        raise CommandError(cmd, None, f"timed out after {COMMAND_TIMEOUT}s") from None
    except OSError as exc:  # binary missing or not executable
        raise CommandError(cmd, None, str(exc)) from None
    return done.stdout


def _is_gone(exc: CommandError) -> bool:
    """Whether a delete failed only because the thing does not exist (already cleaned up)."""
    return "Cannot find device" in exc.stderr or "No such file or directory" in exc.stderr


# ------------------------------------------------------------------ names
def _base36(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 36)
        digits.append(_BASE36[digit])
    if value:
        raise ValueError(f"{value} does not fit in {width} base-36 digits")
    return "".join(reversed(digits))


def _new_tag(prefix: str) -> str:
    counter = next(_counter) % 36**_COUNTER_WIDTH
    return f"{prefix}-{_base36(os.getpid(), _PID_WIDTH)}{_base36(counter, _COUNTER_WIDTH)}"


def _name_pattern(prefix: str) -> re.Pattern[str]:
    """Every name we create: host link `<tag>c`, namespaces `<tag>s`, `<tag>n<i>`, probes `<tag>p`."""
    return re.compile(rf"({re.escape(prefix)}-([0-9a-z]{{{_PID_WIDTH}}})[0-9a-z]{{{_COUNTER_WIDTH}}})(c|s|p|n\d+)")


def _check_prefix(prefix: str) -> None:
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"prefix must be 1-4 characters [a-z][a-z0-9]*, got {prefix!r}")


# ------------------------------------------------------------------ host inspection
def _netns_names(run: Runner) -> list[str]:
    out = run([IP, "-j", "netns", "list"], None).strip()
    return [entry["name"] for entry in json.loads(out)] if out else []


def _link_names(run: Runner) -> list[str]:
    out = run([IP, "-j", "link", "show"], None).strip()
    return [entry["ifname"] for entry in json.loads(out)] if out else []


def _host_networks(run: Runner) -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host routes (any table, default excluded) or has an address in."""
    networks = []
    routes = run([IP, "-j", "-4", "route", "show", "table", "all"], None).strip()
    for route in json.loads(routes) if routes else []:
        dst = route.get("dst", "default")
        if dst != "default":
            networks.append(ipaddress.IPv4Network(dst, strict=False))
    addresses = run([IP, "-j", "-4", "addr", "show"], None).strip()
    for link in json.loads(addresses) if addresses else []:
        for info in link.get("addr_info", []):
            networks.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return [n for n in networks if n.prefixlen > 0]


@contextlib.contextmanager
def _subnet_lock() -> Iterator[None]:
    """Serialise subnet choice + address assignment across processes (the address is the claim)."""
    directory = "/run/lock" if os.access("/run/lock", os.W_OK) else tempfile.gettempdir()
    with open(os.path.join(directory, "raftcache-netns.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _pick_subnet(candidates: Sequence[ipaddress.IPv4Network], taken: Sequence[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    for candidate in candidates:
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise NoFreeSubnetError(
        f"every candidate subnet ({candidates[0]} .. {candidates[-1]}, {len(candidates)} in all) overlaps a host "
        f"route or address; pass `subnets=` with free ones"
    )


# ------------------------------------------------------------------ the network
class Network:
    """A private L2 segment: node i in namespace :meth:`namespace` at :meth:`node_ip`.

    Creating it builds everything (cleaning up before re-raising if any step fails); ``close()``
    or leaving the ``with`` block removes it. Fault methods each replace the whole fault state.
    """

    def __init__(
        self,
        size: int,
        *,
        prefix: str = DEFAULT_PREFIX,
        subnets: Iterable[str] = DEFAULT_SUBNETS,
        run: Runner = run_command,
    ) -> None:
        if not 1 <= size <= MAX_NODES:
            raise ValueError(f"size must be 1..{MAX_NODES}, got {size}")
        _check_prefix(prefix)
        candidates = [ipaddress.IPv4Network(s) for s in subnets]
        if not candidates:
            raise ValueError("no candidate subnets")
        for candidate in candidates:
            if candidate.num_addresses < FIRST_NODE_HOST + size + 1:
                raise ValueError(f"subnet {candidate} is too small for {size} nodes")
        self.size = size
        self._run = run
        self._tag = ""
        self._subnet: ipaddress.IPv4Network | None = None
        self._namespaces: list[str] = []  # created (or being created), in order
        self._client_link_made = False
        self._blocked: frozenset[tuple[int, int]] = frozenset()
        self._closed = False
        try:
            self._setup(prefix, candidates)
        except BaseException as exc:
            try:
                self.close()
            except NetnsError as cleanup_error:
                exc.add_note(f"cleanup after the failed setup was incomplete too: {cleanup_error}")
            raise

    # -------------------------------------------------------------- addresses and names
    @property
    def tag(self) -> str:
        """The unique stem of every name this Network created."""
        return self._tag

    @property
    def subnet(self) -> str:
        assert self._subnet is not None
        return str(self._subnet)

    @property
    def client_ip(self) -> str:
        """The root namespace's address on the segment: where clients in the test process come from."""
        assert self._subnet is not None
        return str(self._subnet[1])

    def node_ip(self, i: int) -> str:
        assert self._subnet is not None
        return str(self._subnet[FIRST_NODE_HOST + self._index(i)])

    def namespace(self, i: int) -> str:
        return f"{self._tag}n{self._index(i)}"

    @property
    def switch_namespace(self) -> str:
        return f"{self._tag}s"

    @property
    def client_link(self) -> str:
        """The one interface this Network adds to the root namespace."""
        return f"{self._tag}c"

    @property
    def namespaces(self) -> list[str]:
        """Every namespace this Network owns: the switch's, then the nodes'."""
        return [self.switch_namespace] + [self.namespace(i) for i in range(self.size)]

    def exec_prefix(self, i: int) -> list[str]:
        """Prepend to a command line to run it in node i's namespace (the PID is the command's own)."""
        return [IP, "netns", "exec", self.namespace(i)]

    # -------------------------------------------------------------- faults
    @property
    def blocked(self) -> frozenset[tuple[int, int]]:
        """The ordered (src, dst) node pairs whose frames are currently dropped."""
        return self._blocked

    def set_blocked(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Drop exactly the frames from src to dst for each pair (replacing the previous state)."""
        blocked = frozenset((self._index(src), self._index(dst)) for src, dst in pairs)
        if any(src == dst for src, dst in blocked):
            raise ValueError("a node cannot be cut off from itself")
        self._apply(blocked)

    def partition(self, groups: Sequence[Iterable[int]]) -> None:
        """Cut every link between nodes of different groups, both ways.

        A node in no group keeps reaching everyone (a "bridge" node, as in Jepsen's nemesis).
        """
        sets = [{self._index(i) for i in group} for group in groups]
        seen: set[int] = set()
        for group in sets:
            if seen & group:
                raise ValueError(f"node(s) {sorted(seen & group)} appear in more than one group")
            seen |= group
        self.set_blocked((a, b) for g in sets for h in sets if g is not h for a in g for b in h)

    def isolate(self, i: int) -> None:
        """Cut node i off from every other node (clients still reach it)."""
        i = self._index(i)
        self.partition([[i], [j for j in range(self.size) if j != i]])

    def partition_one_way(self, src: int, dst: int) -> None:
        """Drop only frames from src to dst (see the module notes: TCP breaks both ways)."""
        self.set_blocked([(src, dst)])

    def heal(self) -> None:
        """Remove every partition rule."""
        self.set_blocked(())

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Delete everything this Network created; safe to call twice and after a failed setup."""
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        targets = ([["link", "del", self.client_link]] if self._client_link_made else []) + [
            ["netns", "del", ns] for ns in self._namespaces
        ]
        for args in targets:
            try:
                self._run([IP, *args], None)
            except CommandError as exc:
                if not _is_gone(exc):
                    errors.append(str(exc))
        if errors:
            raise NetnsError("could not remove everything: " + "; ".join(errors))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._subnet}, blocked={sorted(self._blocked)}"
        return f"<Network {self._tag} size={self.size} {state}>"

    # -------------------------------------------------------------- internals
    def _index(self, i: int) -> int:
        if not isinstance(i, int) or not 0 <= i < self.size:
            raise ValueError(f"node index must be 0..{self.size - 1}, got {i!r}")
        return i

    def _ip(self, *args: str) -> None:
        self._run([IP, *args], None)

    def _setup(self, prefix: str, candidates: Sequence[ipaddress.IPv4Network]) -> None:
        self._tag = self._unused_tag(prefix)
        switch = self.switch_namespace
        self._add_namespace(switch)
        # A fresh bridge has STP off, so its ports forward at once.
        self._ip("-n", switch, "link", "add", "br0", "type", "bridge")
        self._ip("-n", switch, "link", "set", "br0", "up")
        self._client_link_made = True  # claimed before the attempt: a half-done command is cleaned too
        self._ip("link", "add", self.client_link, "type", "veth", "peer", "name", "up0", "netns", switch)
        self._ip("-n", switch, "link", "set", "up0", "master", "br0", "up")
        with _subnet_lock():
            self._subnet = _pick_subnet(candidates, _host_networks(self._run))
            self._ip("addr", "add", f"{self.client_ip}/{self._subnet.prefixlen}", "dev", self.client_link)
        self._ip("link", "set", self.client_link, "up")
        for i in range(self.size):
            ns = self.namespace(i)
            self._add_namespace(ns)
            self._ip("-n", switch, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._ip("-n", switch, "link", "set", f"p{i}", "master", "br0", "up")
            self._ip("-n", ns, "addr", "add", f"{self.node_ip(i)}/{self._subnet.prefixlen}", "dev", "eth0")
            # No IPv6 link-local address: keeps DAD/RS/MLD chatter off the segment.
            self._ip("-n", ns, "link", "set", "eth0", "addrgenmode", "none", "up")
            self._ip("-n", ns, "link", "set", "lo", "up")
        self._apply(frozenset())

    def _unused_tag(self, prefix: str) -> str:
        # Our PID is in the tag, so only a leftover of a dead process that had the same PID can clash.
        namespaces, links = set(_netns_names(self._run)), set(_link_names(self._run))
        for _ in range(36**_COUNTER_WIDTH):
            tag = _new_tag(prefix)
            if f"{tag}s" not in namespaces and f"{tag}c" not in links:
                return tag
        raise NetnsError(f"no unused name left for prefix {prefix!r}; run cleanup_stale({prefix!r})")

    def _add_namespace(self, name: str) -> None:
        self._namespaces.append(name)
        self._ip("netns", "add", name)

    def _apply(self, blocked: frozenset[tuple[int, int]]) -> None:
        if self._closed:
            raise NetnsError(f"{self!r} is closed")
        # Declaring the table and chain first makes the script valid on a fresh namespace; the flush
        # and the new rules then replace the old ones in the same transaction.
        lines = [
            f"table bridge {NFT_TABLE} {{",
            "    chain forward { type filter hook forward priority 0; policy accept; }",
            "}",
            f"flush chain bridge {NFT_TABLE} forward",
        ]
        lines += [
            f'add rule bridge {NFT_TABLE} forward iifname "p{src}" oifname "p{dst}" ether type != arp drop'
            for src, dst in sorted(blocked)
        ]
        self._run([IP, "netns", "exec", self.switch_namespace, NFT, "-f", "-"], "\n".join(lines) + "\n")
        self._blocked = blocked


# ------------------------------------------------------------------ machine checks and stale runs
def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale(prefix: str = DEFAULT_PREFIX, *, kill_processes: bool = True, run: Runner = run_command) -> list[str]:
    """Remove namespaces and host links named with `prefix` whose owner process is dead.

    Processes still inside such a namespace (nodes of the crashed run) are SIGKILLed first, unless
    `kill_processes` is false. Live Networks, of this process or of a concurrent run, are left
    alone. Returns the names removed.
    """
    _check_prefix(prefix)
    pattern = _name_pattern(prefix)

    def stale(name: str) -> bool:
        match = pattern.fullmatch(name)
        return match is not None and not _owner_alive(int(match.group(2), 36))

    removed = []
    for link in filter(stale, _link_names(run)):
        try:
            run([IP, "link", "del", link], None)
        except CommandError as exc:
            if not _is_gone(exc):
                raise
        removed.append(link)
    for ns in filter(stale, _netns_names(run)):
        if kill_processes:
            for pid in run([IP, "netns", "pids", ns], None).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        try:
            run([IP, "netns", "del", ns], None)
        except CommandError as exc:
            if not _is_gone(exc):
                raise
        removed.append(ns)
    return removed


@functools.cache
def available() -> tuple[bool, str]:
    """(True, "") if this machine can build a Network; else (False, a reason a person can act on).

    Tries everything a Network needs in a throwaway namespace: a bridge, a veth pair, an nft
    table of the bridge family, and ``ip netns exec``.
    """
    if not sys.platform.startswith("linux"):
        return False, f"network namespaces need Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return False, f"needs root to create network namespaces (running as uid {os.geteuid()})"
    for tool, package in ((IP, "iproute2"), (NFT, "nftables")):
        if not os.path.isabs(tool):
            return False, f"`{tool}` not found (install {package})"
    probe = f"{_new_tag(DEFAULT_PREFIX)}p"
    steps = [
        ([IP, "netns", "add", probe], None),
        ([IP, "-n", probe, "link", "add", "br0", "type", "bridge"], None),
        ([IP, "-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1"], None),
        (
            [IP, "netns", "exec", probe, NFT, "-f", "-"],
            "table bridge probe {\n  chain forward { type filter hook forward priority 0; policy accept; }\n}\n",
        ),
    ]
    try:
        for cmd, stdin in steps:
            run_command(cmd, stdin)
    except CommandError as exc:
        return False, f"cannot build a namespaced bridge with nftables here: {exc}"
    finally:
        with contextlib.suppress(CommandError):
            run_command([IP, "netns", "del", probe])
    return True, ""
