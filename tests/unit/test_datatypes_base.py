"""The typed-value foundation, on a toy collection type (a "bag": an ordered list of members)
registered for these tests only: WRONGTYPE, TYPE, SCAN TYPE, RENAME/COPY, emptied keys,
WATCH indexes, snapshots, digests, replicated randomness and the element SCAN order."""

from __future__ import annotations

from typing import Any

import pytest

from raftcache import commands as c
from raftcache import datatypes
from raftcache.datatypes.base import Collection, Rng, ScanOrder, element_hash
from raftcache.errors import WrongTypeError
from raftcache.statemachine import CacheStateMachine


class Bag(Collection):
    __slots__ = ("items",)
    TYPE = "bag"

    def __init__(self, items: list[bytes] | None = None) -> None:
        super().__init__()
        self.items = items or []

    def __len__(self) -> int:
        return len(self.items)

    def encoding(self) -> str:
        return "bagpack"

    def dump(self) -> list[Any]:
        return list(self.items)

    @classmethod
    def load(cls, payload: list[Any]) -> Bag:
        return cls(list(payload))

    def copy(self) -> Bag:
        return Bag(list(self.items))


def _bagadd(ks, args):
    bag = ks.collection_for_write(args[1], Bag)
    bag.items.extend(args[2:])
    ks.changed(args[1], bag)
    return len(bag)


def _bagpop(ks, args):
    bag = ks.get_collection(args[1], Bag)
    if bag is None:
        return None
    item = bag.items.pop(ks.draw(len(bag)))
    ks.changed(args[1], bag)
    return item


def _bagitems(ks, args):
    bag = ks.get_collection(args[1], Bag)
    return [] if bag is None else list(bag.items)


@pytest.fixture(autouse=True)
def bag_type(monkeypatch):
    monkeypatch.setitem(datatypes.WRITE_HANDLERS, b"bagadd", _bagadd)
    monkeypatch.setitem(datatypes.WRITE_HANDLERS, b"bagpop", _bagpop)
    monkeypatch.setitem(datatypes.READ_HANDLERS, b"bagitems", _bagitems)
    monkeypatch.setitem(datatypes.COLLECTION_TYPES, "bag", Bag)


def apply(fsm: CacheStateMachine, *commands: Any, now: int = 1_000) -> list[Any]:
    return fsm.apply(c.Batch(now, [(None, command) for command in commands]))


def w(*args: bytes) -> c.DataWrite:
    return c.DataWrite(args)


def test_collections_are_typed_values():
    fsm = CacheStateMachine()
    assert apply(fsm, w(b"bagadd", b"k", b"x", b"y"), c.Set(b"s", b"v")) == [2, True]
    assert fsm.read(c.Type(b"k")) == "bag"
    assert fsm.read(c.ObjectEncoding(b"k")) == "bagpack"
    assert fsm.read(c.DataRead((b"bagitems", b"k"))) == [b"x", b"y"]
    for read in (c.Get(b"k"), c.Strlen(b"k"), c.GetRange(b"k", 0, 1)):
        with pytest.raises(WrongTypeError):
            fsm.read(read)
    assert fsm.read(c.MGet((b"k", b"s"))) == [None, b"v"]  # MGET answers nil for other types
    for write in (c.Append(b"k", b"z"), c.IncrBy(b"k", 1), c.Set(b"k", b"v", get=True), c.GetDel(b"k")):
        assert apply(fsm, write) == [WrongTypeError()]
    assert apply(fsm, w(b"bagadd", b"s", b"x")) == [WrongTypeError()]
    assert fsm.read(c.DataRead((b"bagitems", b"k"))) == [b"x", b"y"]  # the refused writes left it alone
    assert apply(fsm, c.Set(b"k", b"plain")) == [True]  # SET replaces any type
    assert fsm.read(c.Get(b"k")) == b"plain"


def test_scan_type_rename_copy_and_emptied_keys():
    fsm = CacheStateMachine()
    apply(fsm, w(b"bagadd", b"b1", b"x"), c.Set(b"s", b"v"), w(b"bagadd", b"b2", b"y"))
    assert fsm.read(c.Scan(0, None, 100, "bag"))[1] == [b"b1", b"b2"]
    assert fsm.read(c.Scan(0, None, 100, "string"))[1] == [b"s"]
    assert apply(fsm, c.Copy(b"b1", b"b3"), c.Rename(b"b2", b"b4")) == [True, True]
    apply(fsm, w(b"bagadd", b"b3", b"z"))
    assert fsm.read(c.DataRead((b"bagitems", b"b1"))) == [b"x"]  # the copy is deep
    assert fsm.read(c.DataRead((b"bagitems", b"b3"))) == [b"x", b"z"]
    assert fsm.read(c.Exists((b"b2", b"b4"))) == 1
    index = fsm.watch_index(b"b1")
    assert apply(fsm, w(b"bagpop", b"b1")) == [b"x"]
    assert fsm.read(c.Exists((b"b1",))) == 0  # an emptied collection is deleted
    assert fsm.watch_index(b"b1") != index
    assert apply(fsm, w(b"bagpop", b"b1")) == [None]


def test_watch_index_moves_on_every_change():
    fsm = CacheStateMachine()
    apply(fsm, w(b"bagadd", b"k", b"x"))
    seen = fsm.watch_index(b"k")
    apply(fsm, w(b"bagadd", b"k", b"y"))
    assert fsm.watch_index(b"k") != seen
    seen = fsm.watch_index(b"k")
    apply(fsm, c.Expire(b"k", 10_000))
    assert fsm.watch_index(b"k") != seen


def test_snapshot_restore_and_digest():
    fsm = CacheStateMachine()
    apply(fsm, w(b"bagadd", b"k", *(b"%d" % i for i in range(50))), c.Set(b"s", b"v"), c.Expire(b"k", 5_000))
    apply(fsm, w(b"bagpop", b"k"), w(b"bagpop", b"k"))
    other = CacheStateMachine()
    other.restore(fsm.snapshot_sections(chunk=1))
    assert other.digest() == fsm.digest()
    assert other.read(c.DataRead((b"bagitems", b"k"))) == fsm.read(c.DataRead((b"bagitems", b"k")))
    assert other.read(c.Ttl(b"k", True)) == fsm.read(c.Ttl(b"k", True))
    # the generator's state travels too: both pop the same member next
    assert apply(other, w(b"bagpop", b"k")) == apply(fsm, w(b"bagpop", b"k"))
    assert other.digest() == fsm.digest()
    apply(other, w(b"bagadd", b"k", b"new"))
    assert other.digest() != fsm.digest()


def test_replicated_randomness_is_identical_on_every_replica():
    a, b = CacheStateMachine(), CacheStateMachine()
    batch = [w(b"bagadd", b"k", *(b"%d" % i for i in range(100)))] + [w(b"bagpop", b"k")] * 20
    popped_a, popped_b = apply(a, *batch), apply(b, *batch)
    assert popped_a == popped_b
    assert len(set(popped_a[1:])) == 20  # and they are not all the same member
    assert a.digest() == b.digest()


def test_plain_reads_do_not_advance_the_replicated_generator():
    fsm = CacheStateMachine()
    apply(fsm, w(b"bagadd", b"k", b"x"))
    before = fsm.digest()
    for _ in range(5):
        fsm.draw(10)  # outside apply: the node-local generator
    assert fsm.digest() == before


def test_rng_is_splitmix64():
    # Reference values of SplitMix64 seeded with 0 (the algorithm's published test vector).
    rng = Rng(0)
    assert [rng.next64() for _ in range(3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    with pytest.raises(ValueError):
        rng.below(0)


def test_scan_order_returns_every_stable_member_once_despite_changes():
    bag = Bag([b"m%d" % i for i in range(1000)])
    order = ScanOrder()
    seen: list[bytes] = []
    cursor, rounds = 0, 0
    while True:
        cursor, page = order.page(bag, lambda: list(bag.items), lambda m: m, cursor, 37)
        seen += page
        rounds += 1
        bag.items.append(b"new%d" % rounds)  # grows meanwhile
        bag.mod_rev += 1
        if cursor == 0:
            break
    stable = {b"m%d" % i for i in range(1000)}
    assert stable <= set(seen)
    assert len([m for m in seen if m in stable]) == 1000  # none twice
    assert all(1 <= element_hash(m) <= 2**63 for m in (b"", b"x"))


def test_opcodes_round_trip_through_the_log():
    batch = c.encode_batch(5, [(None, c.DataWrite((b"bagadd", b"k", b"x"))),
                               (None, c.Exec((c.DataRead((b"bagitems", b"k")), c.DataWrite((b"bagpop", b"k")))))])
    decoded = c.decode_batch(batch)
    assert decoded.commands[0][1] == c.DataWrite((b"bagadd", b"k", b"x"))
    assert decoded.commands[1][1].ops == (c.DataRead((b"bagitems", b"k")), c.DataWrite((b"bagpop", b"k")))


def test_map_results_survive_the_session_table_in_snapshots():
    from raftcache.resp import Map

    fsm = CacheStateMachine()
    fsm.apply(c.Batch(1_000, [(c.SessionTag(7, 1, 1), c.Set(b"k", b"v"))]))
    fsm._sessions[7].remember(2, [Map({b"f": b"v"}), c.SimpleString("OK")])  # as an EXEC with HGETALL leaves it
    packer = c.packer()
    data = b"".join(packer.pack([name, payload]) for name, payload in fsm.snapshot_sections())
    unpacker = c.unpacker()
    unpacker.feed(data)  # as a snapshot file goes through msgpack
    other = CacheStateMachine()
    other.restore((name, payload) for name, payload in unpacker)
    stored = other._sessions[7].results[2]
    assert type(stored[0]) is Map and stored[0] == {b"f": b"v"}
    assert type(stored[1]) is c.SimpleString


@pytest.mark.parametrize("raw, cursor", [(b"0", 0), (b"", 0), (b"+5", 5), (b"-1", 2**64 - 1), (b"18446744073709551615", 2**64 - 1)])
def test_scan_cursors_parse_as_redis(raw, cursor):
    from raftcache.datatypes.base import parse_cursor

    assert parse_cursor(raw) == cursor


@pytest.mark.parametrize("raw", [b" 1", b"1x", b"18446744073709551616", b"0x10", b"--1"])
def test_bad_scan_cursors_are_refused(raw):
    from raftcache.datatypes.base import parse_cursor
    from raftcache.errors import CommandError

    with pytest.raises(CommandError, match="invalid cursor"):
        parse_cursor(raw)
