"""The replicated cache: a deterministic state machine (no I/O, no clock, no Raft).

Contract (after hashicorp/raft's FSM): ``apply(batch)`` mutates, ``read(command)`` never
does, ``snapshot_sections()``/``restore()`` move the whole state. Every replica that applies
the same batches ends in the same state, which ``digest()`` summarises.

Determinism rules kept here:

* Time only enters through ``batch.time_ms``: the replicated clock is
  ``now = max(now, time_ms)``; expiry is judged against it, so all replicas expire alike.
* Reads hide expired keys but never delete them; the leader proposes ``Sweep`` batches that
  delete them (``_sweep`` picks keys in ``(expiry, key)`` order, identical on every replica).
  Nothing here needs entries to arrive while the cluster is idle: TTLs and session expiry
  are judged against each batch's time when it applies, and ``next_expiry_ms()`` tells the
  leader when a Sweep falls due.
* No platform floats: INCRBYFLOAT computes in exact integer arithmetic (``redis_float``),
  so replicas on different CPUs store identical bytes.
* Handlers validate before they mutate, so a rejected command leaves no trace; errors are
  ``CommandError`` results, never exceptions escaping ``apply``.
* Exactly-once: a tagged write (client id, seq, ack) whose result is still in the session
  table is answered from there instead of being applied twice.

Storage layout, chosen for memory per key: ``_values`` maps key -> 12-byte header + value,
the header holding the key's modification revision and creation revision (6 bytes each);
``_expires`` holds absolute expiry (ms) only for keys that have one. SCAN cursors are
creation revisions, so a key present for a whole scan is returned at least once.

Transactions (``Exec``, MULTI/EXEC): the queued commands apply in one go, inside one batch
row, so no other command interleaves. WATCH is optimistic: ``watch_index(key)`` is even for
a live key (2 x its modification revision, which every change restamps, expiry changes
included) and odd for an absent one (2 x the revision of its deletion + 1). Deletions are
remembered in a bounded tombstone table; when the oldest tombstones are dropped the
*watch floor* rises to their revision and stands in for every key without one, so a
watched missing key may abort falsely but never misses a change. FLUSHALL raises the floor.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
from array import array
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import commands as c
from .datatypes import COLLECTION_TYPES, READ_HANDLERS, WRITE_HANDLERS, Collection
from .datatypes.base import C, Rng, ScanOrder
from .datatypes.blocking import BLOCKING
from .errors import (
    CommandError,
    IntegerOverflowError,
    InvalidExpireError,
    NotIntegerError,
    OutOfMemoryError,
    SessionExpiredError,
    ValueTooLargeError,
    WrongTypeError,
)
from .eviction import (
    COLLECTION_OVERHEAD,
    EXPIRY_OVERHEAD,
    KEY_OVERHEAD,
    MAX_ACCESS_RECORD,
    AccessTable,
    Evictor,
    MemorySettings,
    measure_collection,
    parse_setting,
)
from .feed import STORE_COMMANDS, FeedItem, KeyEvent, Message, data_events
from .redis_float import incr_by_float
from .redis_semantics import INT64_MAX, INT64_MIN, compile_glob, parse_int64

log = logging.getLogger(__name__)

# Fixed (not configurable) because every replica must apply identical rules.
MAX_STRING_BYTES = 512 * 1024 * 1024  # Redis's proto-max-bulk-len
EMBSTR_MAX_BYTES = 44  # Redis's OBJ_ENCODING_EMBSTR_SIZE_LIMIT
SESSION_TTL_MS = 60 * 60 * 1000  # forget a client session after an hour without writes
MAX_SESSIONS = 100_000
MAX_RESULTS_PER_SESSION = 100_000
MAX_TOMBSTONES = 65_536  # deletion revisions kept for WATCH (older ones fold into the floor)
_HEADER = 12
_REV_BYTES = 6
_ORDER_COMPACT_MIN = 1024
_COMPACT_SLICE = 8192  # creation-index entries compacted per applied entry (a few ms)

_MISSING = object()


class _Session:
    __slots__ = ("floor", "last_ms", "order", "results")

    def __init__(self, floor: int, last_ms: int) -> None:
        self.floor = floor  # every seq below has been answered to the client
        self.last_ms = last_ms
        self.results: dict[int, Any] = {}
        self.order: deque[int] = deque()  # seqs in arrival order, to drop old results cheaply

    def remember(self, seq: int, result: Any) -> None:
        self.results[seq] = result
        self.order.append(seq)


def _header(mod_rev: int, create_rev: int) -> bytes:
    return mod_rev.to_bytes(_REV_BYTES, "big") + create_rev.to_bytes(_REV_BYTES, "big")


def _create_rev(packed: bytes | Collection) -> int:
    if type(packed) is bytes:
        return int.from_bytes(packed[_REV_BYTES:_HEADER], "big")
    return packed.create_rev  # type: ignore[union-attr]


def _mod_rev(packed: bytes | Collection) -> int:
    if type(packed) is bytes:
        return int.from_bytes(packed[:_REV_BYTES], "big")
    return packed.mod_rev  # type: ignore[union-attr]


def _type_name(packed: bytes | Collection | None) -> str:
    if packed is None:
        return "none"
    return "string" if type(packed) is bytes else packed.TYPE  # type: ignore[union-attr]


def _string(packed: bytes | Collection | None) -> bytes | None:
    """A live value that must be a string (GET, APPEND, INCR, ...): WRONGTYPE otherwise."""
    if packed is None or type(packed) is bytes:
        return packed  # type: ignore[return-value]
    raise WrongTypeError()


class CacheStateMachine:
    """The cache map with replicated time, expiry and exactly-once sessions."""

    def __init__(self) -> None:
        self._writers: dict[type, Callable[[Any], Any]] = {
            c.Set: self._set,
            c.Delete: self._delete,
            c.GetDel: self._getdel,
            c.MSet: self._mset,
            c.IncrBy: self._incrby,
            c.Append: self._append,
            c.Expire: self._expire,
            c.Persist: self._persist,
            c.Cas: self._cas,
            c.FlushAll: self._flushall,
            c.Sweep: self._sweep,
            c.SetMember: self._set_member,
            c.RemoveMember: self._remove_member,
            c.GetEx: self._getex,
            c.IncrByFloat: self._incrbyfloat,
            c.SetRange: self._setrange,
            c.MSetNx: self._msetnx,
            c.Rename: self._rename,
            c.Copy: self._copy,
            c.Exec: self._exec,
            c.DataWrite: self._data_write,
            c.SetConfig: self._set_config,
            c.Access: self._record_access,
            c.Publish: self._publish,
        }
        self._readers: dict[type, Callable[[Any], Any]] = {
            c.Get: self._get,
            c.MGet: self._mget,
            c.Exists: self._exists,
            c.Strlen: self._strlen,
            c.Ttl: self._ttl,
            c.Keys: self._keys,
            c.Scan: self._scan,
            c.DbSize: self._dbsize,
            c.Type: self._type,
            c.Barrier: lambda cmd: None,
            c.Members: lambda cmd: dict(self._members),
            c.GetRange: self._getrange,
            c.ObjectEncoding: self._object_encoding,
            c.WatchIndex: lambda cmd: [self.watch_index(key) for key in cmd.keys],
            c.DataRead: self._data_read,
        }
        self.key_listener: Callable[[bytes], None] | None = None  # see _touched
        # The change feed (feed.py): items are built only while `recording` (a Feed has a
        # listener), values only while `record_values`; node-local flags, read per entry.
        self.recording = False
        self.record_values = False
        self._items: list[FeedItem] | None = None  # this entry's items, while recording
        self._origin: tuple[int, int] | None = None  # the tag of the command being applied
        self._data_args: tuple[bytes, ...] = ()  # the data-type command being applied (its events)
        self.evicted_keys = 0  # node-local statistics (INFO stats), not replicated state
        self.expired_keys = 0
        self.keyspace_hits = 0
        self.keyspace_misses = 0
        self._read_accesses: list[bytes] = []  # keys reads touched here, for the next Access entry
        self._read_access_count = 0
        self._evictor = Evictor()
        self.scan_order = ScanOrder()  # node-local cache for HSCAN/SSCAN/ZSCAN (derived data)
        self._applying = False  # True inside apply(): draws come from the replicated generator
        self._local_rng = Rng(int.from_bytes(os.urandom(8), "big"))  # plain reads only
        self._reset()
        self._install_scripting()

    def _reset(self) -> None:
        self._values: dict[bytes, bytes | Collection] = {}  # strings: header + bytes
        self._expires: dict[bytes, int] = {}
        self._expiry_heap: list[tuple[int, bytes]] = []
        self._order_keys: list[bytes] = []  # keys by creation revision (with stale entries)
        self._order_revs = array("Q")
        self._order_head = 0  # entries before it are stale (eviction sampling skips them once)
        self._compact_at: int | None = None  # where the running compaction pass is (None: none)
        self._now = 0
        self._revision = 0
        self._seq = 0  # the feed's item counter: replicated (snapshots, digest), see feed.py
        self._sessions: OrderedDict[int, _Session] = OrderedDict()
        self._members: dict[str, tuple[str, str]] = {}  # raft address -> (id, client address)
        self._tombstones: OrderedDict[bytes, int] = OrderedDict()  # key -> deletion revision, oldest first
        self._watch_floor = 0  # stands in for the deletion revision of keys without a tombstone
        self._rng = Rng(0)  # replicated randomness (SPOP, SRANDMEMBER, ...): in snapshots and the digest
        self._used = 0  # accounted dataset bytes (eviction.py)
        self._memory = MemorySettings()  # maxmemory & co: replicated settings
        self._access = AccessTable()  # LRU/LFU state, while a policy needs it
        if hasattr(self, "_scripts"):
            self._scripts.clear()  # the same dict the script host holds
        else:
            self._scripts: dict[str, bytes] = {}  # the script cache: sha1 hex -> body

    def _install_scripting(self) -> None:
        """EVAL, EVALSHA, EVAL_RO, SCRIPT: run scripts against these handler tables."""
        # Imported here: scripting parses through redis_commands, which imports this module.
        from .scripting import ScriptHost

        host = ScriptHost(self._scripts, self._writers, self._readers, lambda: (self._now, self._revision))
        self._writers.update({c.Eval: host.eval, c.ScriptLoad: host.load, c.ScriptFlush: host.flush})
        self._readers.update({c.EvalRo: host.eval, c.ScriptExists: host.exists})

    @property
    def script_count(self) -> int:
        return len(self._scripts)

    # ------------------------------------------------------------------ public surface
    @property
    def now_ms(self) -> int:
        """Replicated time: the largest proposer timestamp applied so far."""
        return self._now

    @property
    def revision(self) -> int:
        """Count of state-changing commands applied (etcd's 'revision')."""
        return self._revision

    def __len__(self) -> int:
        return len(self._values)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def volatile_keys(self) -> int:
        """How many keys carry an expiry (INFO keyspace's ``expires``)."""
        return len(self._expires)

    def apply(self, batch: c.Batch) -> list[Any]:
        """Apply one replicated batch; one result (value or CommandError) per command."""
        self._now = max(self._now, batch.time_ms)
        self._expire_sessions()
        self._items = [] if self.recording else None
        self._applying = True
        self._evictor.reset()  # the eviction pool never outlives an entry (not in snapshots)
        try:
            return [self._apply_tagged(tag, command) for tag, command in batch.commands]
        finally:
            self._applying = False
            if self._compact_at is not None:
                self._compact_some()

    def take_items(self) -> list[FeedItem]:
        """The feed items of the entry just applied (empty unless recording); once."""
        items, self._items = self._items, None
        return items or []

    @property
    def feed_seq(self) -> int:
        """The seq of the last feed item applied (replicated: the same on every replica)."""
        return self._seq

    def read(self, command: Any) -> Any:
        """Answer a read command from the current state; raises CommandError."""
        return self._readers[type(command)](command)

    def read_at(self, command: Any, now_ms: int) -> Any:
        """Answer a read as if replicated time were ``max(now_ms, now)``, leaving replicated
        time as it was: a read that rides no entry (ReadIndex) judges TTLs by the leader's
        clock, as the entry it no longer rides would have moved the time (replica.py)."""
        saved = self._now
        self._now = max(saved, now_ms)
        try:
            return self._readers[type(command)](command)
        finally:
            self._now = saved

    def next_expiry_ms(self) -> int | None:
        """The earliest expiry (replicated ms) of any key, None if no key has one: when the
        leader next needs to propose a Sweep. Replicated state, so any new leader knows it."""
        heap, expires = self._expiry_heap, self._expires
        while heap:
            when, key = heap[0]
            if expires.get(key) == when:
                return when
            heapq.heappop(heap)  # stale entry: dropping it changes no observable state
        return None

    def next_expiry_due(self) -> bool:
        """True when some key's expiry has passed by replicated time."""
        when = self.next_expiry_ms()
        return when is not None and when <= self._now

    def key_info(self, key: bytes) -> tuple[int, int, int | None] | None:
        """(modification revision, creation revision, expiry ms) of a live key."""
        packed = self._live(key)
        if packed is None:
            return None
        return (_mod_rev(packed), _create_rev(packed), self._expires.get(key))

    # ------------------------------------------------------------------ transactions
    def watch_index(self, key: bytes) -> int:
        """WATCH's index of a key: changes whenever the key does (value, expiry, deletion,
        expiry passing, sweep, FLUSHALL). Even while live, odd while absent (see module doc)."""
        packed = self._values.get(key)
        if packed is None:
            return 2 * self._tombstones.get(key, self._watch_floor) + 1
        rev = _mod_rev(packed)
        when = self._expires.get(key)
        return 2 * rev + 1 if when is not None and when <= self._now else 2 * rev

    def _exec(self, cmd: c.Exec) -> list[Any] | None:
        """MULTI/EXEC: None (aborted, nothing applied) if a watched key moved, else one
        result per op; a failing op answers its error in place and the others still run."""
        index = self.watch_index
        if any(index(key) != seen for key, seen in cmd.watches):
            return None
        results = []
        for op in cmd.ops:
            kind = type(op)
            if kind not in c.EXEC_OP_TYPES:
                results.append(CommandError("Command not allowed inside a transaction"))
            elif kind in c.WRITE_TYPES:
                results.append(self._apply_one(op))
            else:
                try:
                    results.append(self._readers[kind](op))
                except CommandError as err:
                    results.append(err)
        return results

    # ---------------------------------------------------------------- exactly-once
    def _apply_tagged(self, tag: c.SessionTag | None, command: Any) -> Any:
        if tag is None:
            self._origin = None
            return self._apply_checked(command)
        client_id, seq, ack = tag
        self._origin = (client_id, seq)
        session = self._sessions.get(client_id)
        if session is None:
            if ack > 1:
                # The client had answers from a session we no longer hold: this write may be
                # a retry of one we applied and forgot, so applying it could double it.
                return SessionExpiredError()
            session = self._new_session(client_id)
        else:
            self._sessions.move_to_end(client_id)
        session.last_ms = self._now
        if seq < session.floor:
            return SessionExpiredError("duplicate of an already answered request")
        result = session.results.get(seq, _MISSING)
        if result is _MISSING:
            result = self._apply_checked(command)
            if result is not None or not _is_blocking_attempt(command):
                session.remember(seq, result)  # an unserved BLPOP is not an answer: it may be retried
        if ack > session.floor:
            self._advance_floor(session, ack)
        return result

    def _new_session(self, client_id: int) -> _Session:
        if len(self._sessions) >= MAX_SESSIONS:
            self._sessions.popitem(last=False)
        session = self._sessions[client_id] = _Session(0, self._now)
        return session

    @staticmethod
    def _advance_floor(session: _Session, ack: int) -> None:
        session.floor = ack
        results, order = session.results, session.order
        # Seqs mostly arrive in order, so the answered ones sit at the front.
        while order and order[0] < ack:
            results.pop(order.popleft(), None)
        if len(order) > MAX_RESULTS_PER_SESSION:  # a client that never acks: keep the newest
            keep = sorted(results)[-MAX_RESULTS_PER_SESSION:]
            session.results = {seq: results[seq] for seq in keep}
            session.order = deque(keep)

    def _expire_sessions(self) -> None:
        sessions = self._sessions
        horizon = self._now - SESSION_TTL_MS
        while sessions:
            client_id, session = next(iter(sessions.items()))
            if session.last_ms >= horizon:
                break
            del sessions[client_id]

    def _apply_checked(self, command: Any) -> Any:
        """A client's command: over maxmemory, one that may grow the dataset first makes room
        by the policy, or is refused with OOM (Redis checks once per command, EXEC included)."""
        limit = self._memory.maxmemory
        if limit and self._used > limit and _may_grow(command) and not self._make_room(limit):
            return OutOfMemoryError()
        return self._apply_one(command)

    def _apply_one(self, command: Any) -> Any:
        try:
            return self._writers[type(command)](command)
        except CommandError as err:
            return err
        except Exception as exc:  # a bug: every replica hits it alike; keep them in step
            log.exception("state machine failed on %r", command)
            return CommandError(f"internal error applying command: {type(exc).__name__}")

    # ------------------------------------------------------------------- change feed
    def _note(self, event: str, key: bytes | None) -> None:
        """One key change for the feed (feed.py): the next seq always (replicated state,
        so it cannot depend on who listens here), an item only while recording."""
        self._seq += 1
        if self._items is not None:
            self._record(event, key, self._origin)

    def _note_unowned(self, event: str, key: bytes) -> None:
        """A change no client asked for (expiry, eviction): origin None."""
        self._seq += 1
        if self._items is not None:
            self._record(event, key, None)

    def _record(self, event: str, key: bytes | None, origin: tuple[int, int] | None) -> None:
        value = None
        if self.record_values and key is not None:
            packed = self._values.get(key)
            if type(packed) is bytes:
                value = packed[_HEADER:]
        self._items.append(KeyEvent(self._seq, event, key, origin, value))  # type: ignore[union-attr]

    def _note_data(self, key: bytes) -> None:
        """The events of the data-type command being applied, for one of its keys."""
        for event in data_events(self._data_args, key):
            self._note(event, key)

    def _publish(self, cmd: c.Publish) -> int:
        """PUBLISH / SPUBLISH: nothing is stored; the message is only a feed item, delivered
        by every node to its own subscribers when it applies the entry (one order for all).
        0 here (MULTI, scripts): the server answers a plain PUBLISH with its local receivers."""
        self._seq += 1
        if self._items is not None:
            self._items.append(Message(self._seq, cmd.channel, cmd.message, self._origin, cmd.shard))
        return 0

    def _remove_expired(self, key: bytes) -> None:
        """Drop what is left at `key` (an expired key not swept yet): Redis's lazy expiry, so
        the feed says ``expired``, once (the sweep will not meet it again)."""
        if self._remove(key):
            self._note_unowned("expired", key)

    # ------------------------------------------------------------------- key helpers
    def _live(self, key: bytes) -> bytes | Collection | None:
        """The packed value of a key, treating expired keys as absent (no mutation). Counts
        as an access for LRU/LFU: applied now for writes, recorded for the log for reads."""
        packed = self._values.get(key)
        if packed is not None:
            when = self._expires.get(key)
            if when is not None and when <= self._now:
                packed = None
        if self._memory.tracks_access:
            self._accessed(key, packed is not None)
        elif not self._applying:
            if packed is None:
                self.keyspace_misses += 1
            else:
                self.keyspace_hits += 1
        return packed

    def _accessed(self, key: bytes, hit: bool) -> None:
        if self._applying:
            if hit:
                self._access.touch(key, self._now, self._memory.policy.order, self._rng.below)
            return
        if hit:
            self.keyspace_hits += 1
        else:
            self.keyspace_misses += 1
            return
        # A read: keep a uniform sample of at most MAX_ACCESS_RECORD keys (reservoir; a hot
        # key appears several times), proposed in the next entry (take_read_accesses).
        self._read_access_count += 1
        record = self._read_accesses
        if len(record) < MAX_ACCESS_RECORD:
            record.append(key)
        else:
            slot = self._local_rng.below(self._read_access_count)
            if slot < MAX_ACCESS_RECORD:
                record[slot] = key

    def take_read_accesses(self) -> tuple[bytes, ...]:
        """The keys reads touched since the last call (for an Access entry), or ()."""
        if not self._read_accesses:
            return ()
        record, self._read_accesses = self._read_accesses, []
        self._read_access_count = 0
        return tuple(record)

    # ---------------------------------------------------------------------- maxmemory
    @property
    def used_memory(self) -> int:
        """The dataset's bytes as accounted (eviction.py), identical on every replica."""
        return self._used

    @property
    def memory_settings(self) -> MemorySettings:
        return self._memory

    def _set_config(self, cmd: c.SetConfig) -> bool:
        value = parse_setting(cmd.name, cmd.value)  # the server checked it too: same errors
        old_policy = self._memory.get("maxmemory-policy")
        self._memory.set(cmd.name, value)
        if self._memory.get("maxmemory-policy") != old_policy:
            self._access = AccessTable(self._now)  # a new policy starts from "all used now"
        return True

    def _record_access(self, cmd: c.Access) -> None:
        if not self._memory.tracks_access:
            return
        values, order, touch, now, draw = self._values, self._memory.policy.order, self._access.touch, self._now, self._rng.below
        for key in cmd.keys:
            if key in values:
                touch(key, now, order, draw)
        return

    def _make_room(self, limit: int) -> bool:
        """Evict by the policy until the dataset fits; False if it cannot (noeviction, nothing left)."""
        settings = self._memory
        if not settings.policy.order:
            return False
        while self._used > limit:
            key = self._evictor.choose(settings, self._access, self._now, self._sample_keys, self._expires.get,
                                       self._values.__contains__)
            if key is None:
                return False
            self._remove(key)
            self._revision += 1
            self.evicted_keys += 1
            self._note_unowned("evicted", key)
        return True

    def _sample_keys(self, count: int, volatile: bool) -> list[bytes]:
        """`count` keys drawn with the replicated generator, by creation revision: the draw
        depends only on the live keys, never on how this replica's indexes are laid out
        (a replica restored from a snapshot has them laid out differently)."""
        values, expires = self._values, self._expires
        if not values or (volatile and not expires):
            return []
        i = self._first_live_from(0)  # (first: it may compact, replacing the index lists)
        low = self._order_revs[i]
        last = len(self._order_revs) - 1
        while not self._live_entry(last):
            last -= 1
        span = self._order_revs[last] - low + 1
        found: list[bytes] = []
        for _ in range(8 * count):
            i = self._first_live_from(low + self._rng.below(span))
            key = self._order_keys[i]
            if not volatile or key in expires:
                found.append(key)
                if len(found) >= count:
                    break
        if not found and volatile:  # few keys have a TTL: the earliest to expire is a fine candidate
            heap = self._expiry_heap
            while heap and expires.get(heap[0][1]) != heap[0][0]:
                heapq.heappop(heap)
            if heap:
                found.append(heap[0][1])
        return found

    def _live_entry(self, i: int) -> bool:
        """Whether entry `i` of the creation-order index is a live key's (not a leftover)."""
        packed = self._values.get(self._order_keys[i])
        return packed is not None and _create_rev(packed) == self._order_revs[i]

    def _first_live_from(self, rev: int) -> int:
        """Index of the first live entry created at or after `rev` (one exists: the caller
        bounds `rev` by the newest live key). A long run of leftovers met on the way is
        compacted away first (the answer is the same; only the walk gets shorter)."""
        i = bisect_left(self._order_revs, rev, self._order_head)
        start = i
        while not self._live_entry(i):
            i += 1
            if i - start > 256:  # drop this run of leftovers now (and look again: same answer)
                self._compact_slice(start, min(len(self._order_revs), start + _COMPACT_SLICE))
                return self._first_live_from(rev)
        if start == self._order_head:
            self._order_head = i  # entries before it are all leftovers
        return i

    @staticmethod
    def _charge(value: Collection) -> int:
        """Re-account a collection's elements (re-measured when its length has doubled or
        halved since the last measurement: amortised O(1), at the same points on every
        replica; in between, new elements count at the measured average); returns the
        change in its charged bytes, which the value carries."""
        elements = len(value)
        acct = value.acct
        if acct is None or not (acct[0] // 2 - 8 <= elements <= acct[0] * 2 + 8):
            measured, per = measure_collection(value)
        else:
            measured, per = acct[0], acct[1]
        charged = COLLECTION_OVERHEAD + elements * per
        value.acct = (measured, per, charged)
        return charged - (0 if acct is None else acct[2])

    def _store(self, key: bytes, value: bytes, old_packed: bytes | Collection | None) -> None:
        """Write a string, keeping the creation revision of a string key that still exists
        (a key holding another type is replaced whole: a new key for SCAN)."""
        if len(value) > MAX_STRING_BYTES:
            raise ValueTooLargeError()
        self._revision += 1
        rev = self._revision
        new = old_packed is None
        if old_packed is not None and type(old_packed) is not bytes:
            self._remove(key)
            old_packed = None
        if old_packed is None:
            if new and key in self._values:  # expired but not yet swept: this is a new key
                self._remove_expired(key)
            self._order_keys.append(key)
            self._order_revs.append(rev)
            self._values[key] = _header(rev, rev) + value
            self._used += KEY_OVERHEAD + len(key) + len(value)
            if new:
                self._note("new", key)
        else:
            self._values[key] = rev.to_bytes(_REV_BYTES, "big") + old_packed[_REV_BYTES:_HEADER] + value
            self._used += len(value) + _HEADER - len(old_packed)

    def _remove(self, key: bytes) -> bool:
        """Physically delete a key (live or expired). True if it was present."""
        packed = self._values.pop(key, None)
        if packed is None:
            return False
        if type(packed) is bytes:
            self._used -= KEY_OVERHEAD + len(key) + len(packed) - _HEADER
        else:
            self._used -= KEY_OVERHEAD + len(key) + packed.acct[2]  # type: ignore[union-attr,index]
        if self._expires.pop(key, None) is not None:
            self._used -= EXPIRY_OVERHEAD
        if self._memory.tracks_access:
            self._access.forget(key)
        self._tombstone(key)
        if len(self._order_keys) > 2 * len(self._values) + _ORDER_COMPACT_MIN:
            self._compact_order()
        return True

    def _tombstone(self, key: bytes) -> None:
        """Remember when a key was deleted, for WATCH (bounded: the oldest fold into the floor)."""
        tombstones = self._tombstones
        tombstones.pop(key, None)  # re-inserted at the end: the table stays in revision order
        tombstones[key] = self._revision
        if len(tombstones) > MAX_TOMBSTONES:
            _, dropped = tombstones.popitem(last=False)
            self._watch_floor = max(self._watch_floor, dropped)

    def _restamp(self, key: bytes) -> None:
        """A change that leaves the value alone (expiry): new modification revision, for WATCH."""
        packed = self._values[key]
        if type(packed) is bytes:
            self._values[key] = self._revision.to_bytes(_REV_BYTES, "big") + packed[_REV_BYTES:]
        else:
            packed.mod_rev = self._revision  # type: ignore[union-attr]

    def _delete_live(self, key: bytes) -> bool:
        """Delete a key; True only if it was live (expired keys are removed silently)."""
        live = self._live(key) is not None
        if self._remove(key):
            if live:
                self._revision += 1
            else:
                self._note_unowned("expired", key)
        return live

    def _set_expiry(self, key: bytes, when: int | None) -> None:
        if when is None:
            if self._expires.pop(key, None) is not None:
                self._used -= EXPIRY_OVERHEAD
            return
        if key not in self._expires:
            self._used += EXPIRY_OVERHEAD
        self._expires[key] = when
        heapq.heappush(self._expiry_heap, (when, key))
        if len(self._expiry_heap) > 2 * len(self._expires) + _ORDER_COMPACT_MIN:
            self._expiry_heap = [(w, k) for k, w in self._expires.items()]
            heapq.heapify(self._expiry_heap)

    def _compact_order(self) -> None:
        """Start dropping the creation index's leftovers (deleted or re-created keys' old
        entries). The work is done in bounded slices after each applied entry
        (`_compact_some`), so a mass deletion never costs one long O(n) pass; only the
        index's layout changes, never what SCAN or eviction sampling answer."""
        if self._compact_at is None:
            self._compact_at = 0

    def _compact_some(self, budget: int = _COMPACT_SLICE) -> None:
        """One bounded slice of the compaction pass started by `_compact_order`."""
        at = self._compact_at
        assert at is not None
        end = min(len(self._order_keys), at + budget)
        kept = self._compact_slice(at, end)
        self._compact_at = None if at + kept >= len(self._order_keys) else at + kept

    def _compact_slice(self, start: int, end: int) -> int:
        """Drop the leftovers among entries [start, end); returns how many entries were kept."""
        keys, revs, values = self._order_keys, self._order_revs, self._values
        kept_keys: list[bytes] = []
        kept_revs = array("Q")
        for i in range(start, end):
            key, rev = keys[i], revs[i]
            packed = values.get(key)
            if packed is not None and _create_rev(packed) == rev:
                kept_keys.append(key)
                kept_revs.append(rev)
        removed = (end - start) - len(kept_keys)
        if removed:
            keys[start:end] = kept_keys
            revs[start:end] = kept_revs
            self._order_head = _shifted(self._order_head, start, end, removed)
            if self._compact_at is not None:
                self._compact_at = _shifted(self._compact_at, start, end, removed)
        return len(kept_keys)

    def _absolute(self, ttl_ms: int | None, at_ms: int | None, command: str) -> int | None:
        if ttl_ms is not None:
            when = self._now + ttl_ms
        elif at_ms is not None:
            when = at_ms
        else:
            return None
        if when > INT64_MAX or when < INT64_MIN:
            raise InvalidExpireError(f"invalid expire time in '{command}' command")
        return when

    # ------------------------------------------- hashes, lists, sets, sorted sets (datatypes)
    # The ``datatypes.base.Keyspace`` interface: what a data-type command may use.
    def get_collection(self, key: bytes, cls: type[C]) -> C | None:
        packed = self._live(key)
        if packed is None or type(packed) is cls:
            return packed  # type: ignore[return-value]
        raise WrongTypeError()

    def collection_for_write(self, key: bytes, cls: type[C]) -> C:
        found = self.get_collection(key, cls)
        return cls() if found is None else found

    def changed(self, key: bytes, value: Collection) -> None:
        self._revision += 1
        if self._values.get(key) is not value:  # new: not stored yet (or an expired one is)
            if not len(value):
                return
            self._remove_expired(key)
            self._insert(key, value)
        elif not len(value):
            self._remove(key)  # Redis deletes a collection that became empty
            self._note_data(key)
            self._note("del", key)
            return
        else:
            self._used += self._charge(value)
        value.mod_rev = self._revision
        self._touched(key)
        self._note_data(key)

    def replace(self, key: bytes, value: Collection | None) -> None:
        existed = self._delete_live(key)
        self._remove(key)
        self._revision += 1
        if value is not None and len(value):
            self._insert(key, value, announce=not existed)
            self._touched(key)
            self._note_data(key)
        elif existed:
            self._note("del", key)

    def delete(self, key: bytes) -> bool:
        live = self._delete_live(key)
        if live:  # a command emptied it (SPOP count >= size: "spop", "del") or stored nothing
            if self._data_args[:1] and self._data_args[0] not in STORE_COMMANDS:
                self._note_data(key)
            self._note("del", key)
        return live

    def draw(self, bound: int) -> int:
        return (self._rng if self._applying else self._local_rng).below(bound)

    def random_key(self) -> bytes | None:
        """A live key drawn with ``draw`` (RANDOMKEY), or None: a creation revision drawn
        between the oldest and the newest key's, then the first key created at or after it
        that has not expired (walking on, and around, past expired ones). Like eviction's
        sampling, the draw depends only on the live keys, never on this replica's leftover
        index entries, so RANDOMKEY inside a script or EXEC answers alike on every replica."""
        values = self._values
        if not values:
            return None
        i = self._first_live_from(0)  # (first: it may compact, replacing the index lists)
        low = self._order_revs[i]
        last = len(self._order_revs) - 1
        while not self._live_entry(last):
            last -= 1
        high = self._order_revs[last]
        rev = low + self.draw(high - low + 1)
        for _ in range(len(values)):
            i = self._first_live_from(rev)
            key = self._order_keys[i]
            if self._live(key) is not None:
                return key
            rev = self._order_revs[i] + 1  # expired (not swept yet): the next one
            if rev > high:
                rev = low
        return None

    def _insert(self, key: bytes, value: Collection, *, announce: bool = True) -> None:
        """Store a collection under a key that holds nothing (a new key for SCAN); `announce`:
        the feed's ``new`` event (Redis's dbAdd; a STORE overwriting a key has none)."""
        rev = self._revision
        value.mod_rev = value.create_rev = rev
        value.acct = None  # measured afresh (a renamed value was charged under its old key)
        self._used += KEY_OVERHEAD + len(key) + self._charge(value)
        self._values[key] = value
        self._order_keys.append(key)
        self._order_revs.append(rev)
        if announce:
            self._note("new", key)

    def _touched(self, key: bytes) -> None:
        """A key's collection gained or changed elements (blocking pops wake on this)."""
        listener = self.key_listener
        if listener is not None:
            listener(key)

    def _data_write(self, cmd: c.DataWrite) -> Any:
        args = cmd.args
        handler = WRITE_HANDLERS.get(args[0])
        if handler is None:
            raise CommandError(f"unknown command '{args[0].decode('utf-8', 'replace')}'")
        self._data_args = args  # names the events of the keys the handler changes
        try:
            return handler(self, args)
        finally:
            self._data_args = ()

    def _data_read(self, cmd: c.DataRead) -> Any:
        args = cmd.args
        handler = READ_HANDLERS.get(args[0])
        if handler is None:
            raise CommandError(f"unknown command '{args[0].decode('utf-8', 'replace')}'")
        return handler(self, args)

    # ------------------------------------------------------------------------ writes
    def _set(self, cmd: c.Set) -> Any:
        if cmd.ttl_ms is not None and cmd.ttl_ms <= 0:
            raise InvalidExpireError("invalid expire time in 'set' command")
        when = self._absolute(cmd.ttl_ms, cmd.at_ms, "set")
        old = self._live(cmd.key)
        if cmd.get:
            _string(old)  # SET ... GET on another type: WRONGTYPE, nothing set
        if (cmd.cond == c.COND_NX and old is not None) or (cmd.cond == c.COND_XX and old is None):
            return old[_HEADER:] if (cmd.get and old is not None) else (None if cmd.get else False)
        keep = self._expires.get(cmd.key) if (cmd.keepttl and old is not None) else None
        if when is not None and when <= self._now:
            # An absolute expiry already in the past: Redis stores and expires at once.
            self._delete_live(cmd.key)
            self._revision += 1
            if old is None:
                self._note("new", cmd.key)
            self._note("set", cmd.key)
            self._note("expire", cmd.key)
            self._note_unowned("expired", cmd.key)
        else:
            self._store(cmd.key, cmd.value, old)
            self._set_expiry(cmd.key, when if when is not None else keep)
            self._note("set", cmd.key)
            if when is not None:
                self._note("expire", cmd.key)
        if cmd.get:
            return None if old is None else old[_HEADER:]
        return True

    def _delete(self, cmd: c.Delete) -> int:
        deleted = 0
        for key in cmd.keys:
            if self._delete_live(key):
                deleted += 1
                self._note("del", key)
        return deleted

    def _getdel(self, cmd: c.GetDel) -> bytes | None:
        old = _string(self._live(cmd.key))
        if self._delete_live(cmd.key):
            self._note("del", cmd.key)
        return None if old is None else old[_HEADER:]

    def _mset(self, cmd: c.MSet) -> bool:
        pairs = cmd.pairs
        if len(pairs) % 2:
            raise CommandError("wrong number of arguments for 'mset' command")
        if any(len(pairs[i]) > MAX_STRING_BYTES for i in range(1, len(pairs), 2)):
            raise ValueTooLargeError()
        for i in range(0, len(pairs), 2):
            key = pairs[i]
            self._store(key, pairs[i + 1], self._live(key))
            self._set_expiry(key, None)
            self._note("set", key)
        return True

    def _incrby(self, cmd: c.IncrBy) -> int:
        old = _string(self._live(cmd.key))
        current = 0 if old is None else parse_int64(old[_HEADER:])
        result = current + cmd.delta
        if result > INT64_MAX or result < INT64_MIN:
            raise IntegerOverflowError()
        self._store(cmd.key, b"%d" % result, old)
        self._note("incrby", cmd.key)
        return result

    def _append(self, cmd: c.Append) -> int:
        old = _string(self._live(cmd.key))
        value = cmd.value if old is None else old[_HEADER:] + cmd.value
        self._store(cmd.key, value, old)
        self._note("append", cmd.key)
        return len(value)

    def _expire(self, cmd: c.Expire) -> int:
        when = self._absolute(None if cmd.absolute else cmd.when_ms, cmd.when_ms if cmd.absolute else None, "expire")
        assert when is not None
        if self._live(cmd.key) is None:
            return 0
        current = self._expires.get(cmd.key)  # None means "never", i.e. +infinity
        cond = cmd.cond  # flags may combine as in Redis: "xx" with "gt" or "lt"
        if (
            (c.COND_NX in cond and current is not None)
            or (c.COND_XX in cond and current is None)
            or (c.COND_GT in cond and (current is None or when <= current))
            or (c.COND_LT in cond and current is not None and when >= current)
        ):
            return 0
        if when <= self._now:
            self._delete_live(cmd.key)
            self._note("del", cmd.key)
            return 1
        self._revision += 1
        self._set_expiry(cmd.key, when)
        self._restamp(cmd.key)
        self._note("expire", cmd.key)
        return 1

    def _persist(self, cmd: c.Persist) -> int:
        if self._live(cmd.key) is None or cmd.key not in self._expires:
            return 0
        self._revision += 1
        self._set_expiry(cmd.key, None)
        self._restamp(cmd.key)
        self._note("persist", cmd.key)
        return 1

    def _cas(self, cmd: c.Cas) -> bool:
        if cmd.ttl_ms is not None and cmd.ttl_ms <= 0:
            raise InvalidExpireError("invalid expire time in 'cas' command")
        old = _string(self._live(cmd.key))
        if old is None or old[_HEADER:] != cmd.expected:
            return False
        self._store(cmd.key, cmd.new, old)
        self._note("set", cmd.key)
        if cmd.ttl_ms is not None:
            self._set_expiry(cmd.key, self._absolute(cmd.ttl_ms, None, "cas"))
            self._note("expire", cmd.key)
        return True

    def _flushall(self, cmd: c.FlushAll) -> bool:
        self._revision += 1
        self._values.clear()
        self._expires.clear()
        self._expiry_heap.clear()
        self._order_keys.clear()
        self._order_revs = array("Q")
        self._order_head = 0
        self._compact_at = None
        self._tombstones.clear()  # every key is now absent since this revision
        self._watch_floor = self._revision
        self._used = 0
        self._access = AccessTable(self._now)
        self._note("flushall", None)
        return True

    def _getex(self, cmd: c.GetEx) -> bytes | None:
        old = _string(self._live(cmd.key))
        if old is None:
            return None  # Redis looks the key up before it judges the amount
        if cmd.amount is not None:
            when = self._getex_when(cmd.amount, cmd)
            if cmd.absolute and when <= self._now:
                self._delete_live(cmd.key)
                self._note("del", cmd.key)
            else:
                self._revision += 1
                self._set_expiry(cmd.key, when)
                self._restamp(cmd.key)
                self._note("expire", cmd.key)
        elif cmd.persist and cmd.key in self._expires:
            self._revision += 1
            self._set_expiry(cmd.key, None)
            self._restamp(cmd.key)
            self._note("persist", cmd.key)
        return old[_HEADER:]

    def _getex_when(self, amount_text: bytes, cmd: c.GetEx) -> int:
        amount = parse_int64(amount_text)
        invalid = InvalidExpireError("invalid expire time in 'getex' command")
        if amount <= 0 or amount > INT64_MAX // cmd.unit_ms:
            raise invalid
        when = amount * cmd.unit_ms + (0 if cmd.absolute else self._now)
        if when > INT64_MAX:
            raise invalid
        return when

    def _incrbyfloat(self, cmd: c.IncrByFloat) -> bytes:
        old = _string(self._live(cmd.key))
        value = incr_by_float(None if old is None else old[_HEADER:], cmd.increment)
        self._store(cmd.key, value, old)  # keeps the expiry, as Redis's dbOverwrite
        self._note("incrbyfloat", cmd.key)
        return value

    def _setrange(self, cmd: c.SetRange) -> int:
        if cmd.offset < 0:
            raise CommandError("offset is out of range")
        old = _string(self._live(cmd.key))
        current = b"" if old is None else old[_HEADER:]
        if not cmd.value:
            return len(current)  # nothing written, nothing created
        end = cmd.offset + len(cmd.value)
        if end > MAX_STRING_BYTES:
            raise ValueTooLargeError("string exceeds maximum allowed size (proto-max-bulk-len)")
        padded = current.ljust(cmd.offset, b"\x00")
        value = padded[: cmd.offset] + cmd.value + padded[end:]
        self._store(cmd.key, value, old)
        self._note("setrange", cmd.key)
        return len(value)

    def _msetnx(self, cmd: c.MSetNx) -> bool:
        pairs = cmd.pairs
        if len(pairs) % 2:
            raise CommandError("wrong number of arguments for 'msetnx' command")
        if any(len(pairs[i]) > MAX_STRING_BYTES for i in range(1, len(pairs), 2)):
            raise ValueTooLargeError()
        if any(self._live(pairs[i]) is not None for i in range(0, len(pairs), 2)):
            return False
        for i in range(0, len(pairs), 2):
            key = pairs[i]
            self._store(key, pairs[i + 1], self._live(key))  # a key named twice: the last value wins
            self._set_expiry(key, None)
            self._note("set", key)
        return True

    def _rename(self, cmd: c.Rename) -> bool:
        old = self._live(cmd.src)
        if old is None:
            raise CommandError("no such key")
        if cmd.src == cmd.dst:
            return not cmd.nx
        if cmd.nx and self._live(cmd.dst) is not None:
            return False
        self._move_value(old, cmd.src, cmd.dst, copy=False)
        self._delete_live(cmd.src)
        self._note("rename_from", cmd.src)
        self._note("rename_to", cmd.dst)
        return True

    def _copy(self, cmd: c.Copy) -> bool:
        if cmd.src == cmd.dst:
            raise CommandError("source and destination objects are the same")
        old = self._live(cmd.src)
        if old is None or (not cmd.replace and self._live(cmd.dst) is not None):
            return False
        self._move_value(old, cmd.src, cmd.dst, copy=True)
        self._note("copy_to", cmd.dst)
        return True

    def _move_value(self, packed: bytes | Collection, src: bytes, dst: bytes, *, copy: bool) -> None:
        """Write src's value and expiry to dst as a new key (RENAME and COPY replace dst whole)."""
        when = self._expires.get(src)
        self._delete_live(dst)
        if type(packed) is bytes:
            self._store(dst, packed[_HEADER:], None)
        else:
            self._remove(dst)  # expired but not swept
            self._insert(dst, packed.copy() if copy else packed)  # type: ignore[union-attr]
            self._touched(dst)
        self._set_expiry(dst, when)

    def _set_member(self, cmd: c.SetMember) -> bool:
        for raft, (node_id, _) in self._members.items():
            if node_id == cmd.id and raft != cmd.raft:
                raise CommandError(f"member id {cmd.id!r} is already used by {raft}")
        self._members[cmd.raft] = (cmd.id, cmd.client)
        return True

    def _remove_member(self, cmd: c.RemoveMember) -> bool:
        return self._members.pop(cmd.raft, None) is not None

    def _sweep(self, cmd: c.Sweep) -> int:
        """Delete expired keys in (expiry, key) order, at most `limit` of them."""
        heap, expires, now = self._expiry_heap, self._expires, self._now
        removed = 0
        while heap and removed < cmd.limit and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            if expires.get(key) == when:
                self._remove(key)
                removed += 1
                self._note_unowned("expired", key)
        self.expired_keys += removed
        if removed:
            self._revision += 1
        return removed

    # ------------------------------------------------------------------------- reads
    def _get(self, cmd: c.Get) -> bytes | None:
        packed = _string(self._live(cmd.key))
        return None if packed is None else packed[_HEADER:]

    def _mget(self, cmd: c.MGet) -> list[bytes | None]:
        live = self._live
        return [p[_HEADER:] if type(p := live(key)) is bytes else None for key in cmd.keys]

    def _exists(self, cmd: c.Exists) -> int:
        return sum(self._live(key) is not None for key in cmd.keys)

    def _strlen(self, cmd: c.Strlen) -> int:
        packed = _string(self._live(cmd.key))
        return 0 if packed is None else len(packed) - _HEADER

    def _ttl(self, cmd: c.Ttl) -> int:
        if self._live(cmd.key) is None:
            return -2
        when = self._expires.get(cmd.key)
        if when is None:
            return -1
        remaining = max(0, when - self._now)
        return remaining if cmd.ms else (remaining + 500) // 1000

    def _keys(self, cmd: c.Keys) -> list[bytes]:
        matches = compile_glob(cmd.pattern)
        expires, now = self._expires, self._now
        return [
            key
            for key in self._values
            if matches(key) and not ((w := expires.get(key)) is not None and w <= now)
        ]

    def _scan(self, cmd: c.Scan) -> tuple[int, list[bytes]]:
        keys, revs = self._order_keys, self._order_revs
        start = bisect_left(revs, cmd.cursor)
        stop = min(len(keys), start + max(1, cmd.count))
        matches = compile_glob(cmd.match) if cmd.match is not None else None
        values = self._values
        found = []
        for i in range(start, stop):
            key = keys[i]
            packed = values.get(key)
            if packed is None or _create_rev(packed) != revs[i]:
                continue  # deleted or re-created since: its live entry sits later
            live = self._live(key)
            if live is None or (matches is not None and not matches(key)):
                continue
            if cmd.only_type is not None and _type_name(live) != cmd.only_type:
                continue
            found.append(key)
        cursor = 0 if stop >= len(keys) else revs[stop]
        return cursor, found

    def _getrange(self, cmd: c.GetRange) -> bytes:
        """Redis 7.0's GETRANGE index rules, byte for byte (including its quirks)."""
        packed = _string(self._live(cmd.key))
        value = b"" if packed is None else packed[_HEADER:]
        start, end, length = cmd.start, cmd.end, len(value)
        if start < 0 and end < 0 and start > end:
            return b""
        if start < 0:
            start = max(0, length + start)
        if end < 0:
            end = max(0, length + end)
        end = min(end, length - 1)
        if start > end or length == 0:
            return b""
        return value[start : end + 1]

    def _object_encoding(self, cmd: c.ObjectEncoding) -> str | None:
        """What Redis would answer for a value written by SET: judged from the bytes alone."""
        packed = self._live(cmd.key)
        if packed is None:
            return None
        if type(packed) is not bytes:
            return packed.encoding()  # type: ignore[union-attr]
        value = packed[_HEADER:]
        if len(value) <= 20:
            try:
                parse_int64(value)
                return "int"
            except NotIntegerError:
                pass
        return "embstr" if len(value) <= EMBSTR_MAX_BYTES else "raw"

    def _dbsize(self, cmd: c.DbSize) -> int:
        return len(self._values)

    def _type(self, cmd: c.Type) -> str:
        return _type_name(self._live(cmd.key))

    # ------------------------------------------------------------- snapshot / restore
    def snapshot_sections(self, chunk: int = 8192, *, data_only: bool = False) -> Iterator[tuple[str, Any]]:
        """The whole state as (section, payload) pairs; payloads are msgpack-able.

        Keys come out in creation order, so a restore rebuilds the same SCAN order.
        ``data_only`` leaves out what belongs to this cluster rather than to the data (client
        sessions, the member registry): what a backup for another cluster needs.
        """
        state = {"now": self._now, "revision": self._revision, "keys": len(self._values)}
        if self._rng.state:  # absent before data types: such snapshots still load
            state["rng"] = self._rng.state
        if self._seq:  # (absent before the change feed)
            state["seq"] = self._seq
        yield "state", state
        if self._members and not data_only:
            yield "members", [[raft, node_id, client] for raft, (node_id, client) in self._members.items()]
        if self._scripts:  # absent in snapshots taken before scripting: they still load
            yield "scripts", list(self._scripts.values())
        if self._memory.stored:  # (absent before maxmemory)
            yield "memory", dict(self._memory.stored)
        if self._memory.tracks_access:
            yield "access", self._access.dump()
        expires = self._expires
        rows: list[Any] = []
        for key, packed in self._values.items():
            if type(packed) is not bytes:  # a collection: [type, mod rev, create rev, elements, accounting]
                acct = packed.acct  # type: ignore[union-attr]
                packed = [packed.TYPE, packed.mod_rev, packed.create_rev, packed.dump(),  # type: ignore[union-attr]
                          None if acct is None else list(acct)]
            rows.extend((key, packed, expires.get(key)))
            if len(rows) >= 3 * chunk:
                yield "data", rows
                rows = []
        if rows:
            yield "data", rows
        if self._tombstones or self._watch_floor:  # absent from snapshots of older versions
            tombstones: list[Any] = []
            for key, rev in self._tombstones.items():
                tombstones.extend((key, rev))
            yield "watch", {"floor": self._watch_floor, "tombstones": tombstones}
        if data_only:
            return
        tag = c.tag_simple_strings  # script replies may hold status replies (a str subclass)
        sessions = [
            (cid, s.floor, s.last_ms, [(seq, tag(r)) for seq, r in s.results.items()]) for cid, s in self._sessions.items()
        ]
        for i in range(0, len(sessions), chunk):
            yield "sessions", sessions[i : i + chunk]

    def restore(self, sections: Iterable[tuple[str, Any]]) -> None:
        """Replace the whole state with a snapshot's sections (discards what was here)."""
        self._reset()
        values, expires, order_keys, order_revs = self._values, self._expires, self._order_keys, self._order_revs
        for name, payload in sections:
            if name == "state":
                self._now = payload["now"]
                self._revision = payload["revision"]
                self._rng = Rng(payload.get("rng", 0))
                self._seq = payload.get("seq", 0)
            elif name == "data":
                for i in range(0, len(payload), 3):
                    key, packed, when = payload[i], payload[i + 1], payload[i + 2]
                    if type(packed) is not bytes:
                        packed = _load_collection(packed)
                    values[key] = packed
                    order_keys.append(key)
                    order_revs.append(_create_rev(packed))
                    if when is not None:
                        expires[key] = when
            elif name == "watch":
                self._watch_floor = payload["floor"]
                rows = payload["tombstones"]
                for i in range(0, len(rows), 2):
                    self._tombstones[rows[i]] = rows[i + 1]
            elif name == "members":
                self._members = {raft: (node_id, client) for raft, node_id, client in payload}
            elif name == "memory":
                self._memory.load(payload)
            elif name == "access":
                self._access = AccessTable.load(payload)
            elif name == "scripts":
                for body in payload:
                    self._scripts[hashlib.sha1(body).hexdigest()] = body
            elif name == "sessions":
                for cid, floor, last_ms, results in payload:
                    session = self._sessions[cid] = _Session(floor, last_ms)
                    for seq, result in sorted(results, key=lambda row: row[0]):
                        session.remember(seq, result)
            else:
                raise ValueError(f"unknown snapshot section {name!r}")
        # Creation order is already ascending; keep the index sorted even if a writer wasn't.
        if any(order_revs[i] > order_revs[i + 1] for i in range(len(order_revs) - 1)):
            pairs = sorted(zip(order_revs, order_keys))
            self._order_revs = array("Q", (r for r, _ in pairs))
            self._order_keys = [k for _, k in pairs]
        self._expiry_heap = [(w, k) for k, w in expires.items()]
        heapq.heapify(self._expiry_heap)
        self._used = self._account_all()

    def _account_all(self) -> int:
        """The accounted bytes of the whole dataset, from scratch (after a restore)."""
        used = EXPIRY_OVERHEAD * len(self._expires)
        for key, packed in self._values.items():
            if type(packed) is bytes:
                used += KEY_OVERHEAD + len(key) + len(packed) - _HEADER
            else:  # the charge travels in the snapshot: a restored replica accounts exactly as the others
                used += KEY_OVERHEAD + len(key) + (packed.acct[2] if packed.acct else self._charge(packed))  # type: ignore[union-attr,arg-type]
        return used

    def digest(self) -> str:
        """Order-independent hash of the replicated state (data, clock, sessions)."""
        total = 0
        expires = self._expires
        blake = hashlib.blake2b
        pack = c.packer().pack
        for key, packed in self._values.items():
            h = blake(key, digest_size=16)
            h.update(b"\x00")
            if type(packed) is bytes:
                h.update(packed)
            else:  # a collection: its type, revisions and elements in their own order
                h.update(pack([packed.TYPE, packed.mod_rev, packed.create_rev, packed.dump()]))  # type: ignore[union-attr]
            h.update(b"%d" % expires.get(key, -1))
            total = (total + int.from_bytes(h.digest(), "big")) & ((1 << 128) - 1)
        h = blake(b"%d:%d:%d" % (total, self._now, self._revision), digest_size=16)
        if self._rng.state:  # (no effect on states from before data types)
            h.update(b"rng:%d" % self._rng.state)
        if self._seq:  # (no effect on states from before the change feed)
            h.update(b"seq:%d" % self._seq)
        if self._memory.stored:  # (no effect on states from before maxmemory)
            h.update(b"memory:%r:%d" % (sorted(self._memory.stored.items()), self._used))
        if self._memory.tracks_access:
            for row in self._access.digest_rows():
                h.update(row)
        h.update(repr(sorted(self._members.items())).encode())
        if self._tombstones or self._watch_floor:  # states of older versions keep their digest
            h.update(b"watch:%d:%r" % (self._watch_floor, list(self._tombstones.items())))
        if self._scripts:  # (no effect on the digest of a state without scripts)
            h.update(repr(sorted(self._scripts)).encode())
        for cid, s in self._sessions.items():
            h.update(b"%d:%d:%d:%r" % (cid, s.floor, s.last_ms, sorted(s.results.items(), key=lambda r: r[0])))
        return h.hexdigest()


def _is_blocking_attempt(command: Any) -> bool:
    return type(command) is c.DataWrite and command.args[0] in BLOCKING


def _load_collection(row: list[Any]) -> Collection:
    kind, mod_rev, create_rev, elements = row[:4]
    cls = COLLECTION_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown value type {kind!r} in snapshot")
    value = cls.load(elements)
    value.mod_rev, value.create_rev = mod_rev, create_rev
    if len(row) > 4 and row[4] is not None:
        value.acct = tuple(row[4])  # type: ignore[assignment]
    return value


# Commands that never grow the dataset: allowed over maxmemory (Redis: no `denyoom` flag).
_NEVER_GROW: frozenset[type] = frozenset({
    c.Delete, c.GetDel, c.Expire, c.Persist, c.FlushAll, c.Sweep, c.SetMember, c.RemoveMember, c.ScriptFlush,
    c.SetConfig, c.Access, c.Rename, c.Publish,
})
# Data-type commands that only remove elements.
_SHRINKING = frozenset({
    b"hdel", b"lpop", b"rpop", b"lrem", b"ltrim", b"lmpop", b"srem", b"spop", b"zrem", b"zpopmin", b"zpopmax", b"zmpop",
    b"zremrangebyscore", b"zremrangebyrank", b"zremrangebylex", b"blpop", b"brpop", b"blmpop", b"bzpopmin",
    b"bzpopmax", b"bzmpop",
})


def _may_grow(command: Any) -> bool:
    kind = type(command)
    if kind in _NEVER_GROW:
        return False
    if kind is c.DataWrite:
        return command.args[0] not in _SHRINKING
    if kind is c.Exec:
        return any(_may_grow(op) for op in command.ops if type(op) in c.WRITE_TYPES)
    return kind in c.WRITE_TYPES


def _shifted(index: int, start: int, end: int, removed: int) -> int:
    """Where an index into the creation-order lists points once `removed` entries of
    [start, end) are gone: past the slice it moves back; inside it, to the slice's start
    (conservative: the entries from there are looked at again)."""
    if index >= end:
        return index - removed
    return min(index, start)
