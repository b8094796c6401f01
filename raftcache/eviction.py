"""maxmemory: what counts as memory, the cluster-wide settings, and eviction that is
identical on every replica.

Everything here runs inside the state machine, on replicated state only:

* **Accounting** (``CacheStateMachine._charge``): the dataset as the state machine holds it, in bytes:
  per key ``KEY_OVERHEAD`` + key + value (+ ``EXPIRY_OVERHEAD`` with a TTL); a collection
  counts ``ELEMENT_OVERHEAD[type]`` per element plus its elements' average bytes, re-measured
  when its length has doubled or halved since the last measurement (amortised O(1) per
  change, at the same points on every replica; the measurement travels in snapshots). The overheads approximate what CPython spends (dict
  slots, object headers), so ``used_memory`` tracks the RSS the data costs; it is not the
  process RSS, which differs per replica.
* **Settings** (``MemorySettings``): ``maxmemory``, ``maxmemory-policy``,
  ``maxmemory-samples`` are replicated (``commands.SetConfig``), kept in snapshots.
* **Eviction** (``Evictor``): before a command that may grow the dataset, while
  ``used > maxmemory``, sample ``maxmemory-samples`` candidates with the replicated generator
  and evict the best by the policy (Redis's approximated LRU/LFU/TTL/random); the best
  candidates seen within one log entry stay in a small pool (Redis's eviction pool), which is
  emptied between entries so no unreplicated state outlives an entry.
* **Access** (``AccessTable``): LRU times and LFU counters per key (only while an LRU/LFU
  policy is set). Writes touch their keys while applied; reads are recorded by the node that
  served them and proposed as ``commands.Access`` entries (bounded), so a key read often
  outlives one that is never read, on every replica alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .errors import CommandError
from .pubsub import parse_notify_setting

# Bytes the state machine charges per key / element beyond the bytes themselves (see the
# module docstring): estimates from CPython's object sizes (dict slot, bytes header, the
# 12-byte revision header); the per-type figures follow the type modules' tracemalloc
# measurements at 100K elements (hash ~140 B, set ~133 B, zset ~186 B per element with bytes).
KEY_OVERHEAD = 140
EXPIRY_OVERHEAD = 140
COLLECTION_OVERHEAD = 200
# (lists pack their elements into chunks, like Redis's quicklist: a few bytes each)
ELEMENT_OVERHEAD: dict[str, int] = {"hash": 112, "list": 4, "set": 120, "zset": 170}
DEFAULT_ELEMENT_OVERHEAD = 100

# Redis's LFU constants (its defaults: lfu-log-factor 10, lfu-decay-time 1 minute).
LFU_INIT_VAL = 5
LFU_LOG_FACTOR = 10
LFU_DECAY_MS = 60_000

MAX_ACCESS_RECORD = 256  # keys per Access entry: bounds the extra log bytes per entry
EVICTION_POOL = 16  # Redis's EVPOOL_SIZE


# ------------------------------------------------------------------------------ settings
class Policy(NamedTuple):
    volatile: bool  # candidates: only keys with an expiry
    order: str  # "lru", "lfu", "ttl", "random"


POLICIES: dict[str, Policy] = {
    "volatile-lru": Policy(True, "lru"),
    "volatile-lfu": Policy(True, "lfu"),
    "volatile-random": Policy(True, "random"),
    "volatile-ttl": Policy(True, "ttl"),
    "allkeys-lru": Policy(False, "lru"),
    "allkeys-lfu": Policy(False, "lfu"),
    "allkeys-random": Policy(False, "random"),
    "noeviction": Policy(False, ""),
}

_MEMORY_RE = re.compile(rb"([0-9]+)(b|k|kb|m|mb|g|gb)?\Z", re.IGNORECASE)
_UNITS = {b"": 1, b"b": 1, b"k": 1000, b"kb": 1024, b"m": 1000**2, b"mb": 1024**2, b"g": 1000**3, b"gb": 1024**3}


def _config_error(name: str, why: str) -> CommandError:
    return CommandError(f"CONFIG SET failed (possibly related to argument '{name}') - {why}")


def parse_memory(text: bytes) -> int | None:
    """Redis's memtoull: digits with an optional unit (k=1000, kb=1024, ...); None if invalid."""
    match = _MEMORY_RE.match(text)
    if match is None:
        return None
    value = int(match.group(1)) * _UNITS[(match.group(2) or b"").lower()]
    return value if value < 2**64 else None


def _parse_maxmemory(value: bytes) -> int:
    parsed = parse_memory(value)
    if parsed is None:
        raise _config_error("maxmemory", "argument must be a memory value")
    return parsed


def _parse_policy(value: bytes) -> str:
    name = value.decode("utf-8", "replace").lower()
    if name not in POLICIES:
        raise _config_error("maxmemory-policy", "argument(s) must be one of the following: " + ", ".join(POLICIES))
    return name


def _parse_samples(value: bytes) -> int:
    if not re.fullmatch(rb"-?[0-9]+", value):
        raise _config_error("maxmemory-samples", "argument couldn't be parsed into an integer")
    number = int(value)
    if not 1 <= number <= 2**31 - 1:
        raise _config_error("maxmemory-samples", "argument must be between 1 and 2147483647 inclusive")
    return number


# Replicated settings: CONFIG name -> (parser to the stored value, default).
SETTINGS: dict[str, tuple[Callable[[bytes], Any], Any]] = {
    "maxmemory": (_parse_maxmemory, 0),
    "maxmemory-policy": (_parse_policy, "noeviction"),
    "maxmemory-samples": (_parse_samples, 5),
    # not memory, but replicated the same way (pubsub.py: keyspace notifications' classes)
    "notify-keyspace-events": (parse_notify_setting, ""),
}


def parse_setting(name: str, value: bytes) -> Any:
    """The stored form of a replicated setting, or CommandError with Redis's text."""
    parser, _ = SETTINGS[name]
    return parser(value)


def setting_text(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else b"%d" % value


class MemorySettings:
    """The replicated memory settings (only the ones ever set are stored: defaults otherwise)."""

    __slots__ = ("maxmemory", "policy", "samples", "stored", "tracks_access")

    def __init__(self) -> None:
        self.stored: dict[str, Any] = {}
        self._refresh()

    def set(self, name: str, value: Any) -> None:
        self.stored[name] = value
        self._refresh()

    def load(self, stored: dict[str, Any]) -> None:
        self.stored = {name: value for name, value in stored.items() if name in SETTINGS}
        self._refresh()

    def get(self, name: str) -> Any:
        return self.stored.get(name, SETTINGS[name][1])

    def _refresh(self) -> None:
        self.maxmemory = self.get("maxmemory")
        self.policy = POLICIES[self.get("maxmemory-policy")]
        self.samples = self.get("maxmemory-samples")
        # read on every key access and deletion: an attribute, not a property
        self.tracks_access: bool = self.policy.order in ("lru", "lfu")


# ------------------------------------------------------------------------------ accounting
def string_bytes(key: bytes, value_len: int) -> int:
    return KEY_OVERHEAD + len(key) + value_len


def measure_collection(value: Any) -> tuple[int, int]:
    """(elements, bytes per element) measured over the whole collection (its dump)."""
    elements = len(value)
    items = value.dump()
    strings = [item for item in items if type(item) is bytes]
    payload = sum(map(len, strings)) + 8 * (len(items) - len(strings))
    per = ELEMENT_OVERHEAD.get(value.TYPE, DEFAULT_ELEMENT_OVERHEAD) + (payload // elements if elements else 0)
    return elements, per


# ------------------------------------------------------------------------------ access
class AccessTable:
    """LRU times and LFU counters of keys (replicated state, only while a policy needs it).

    A key missing from the table counts as last used when the policy was set, with Redis's
    initial LFU counter (5): so switching a policy on costs nothing until keys are used."""

    __slots__ = ("lfu", "lru", "since")

    def __init__(self, since: int = 0) -> None:
        self.lru: dict[bytes, int] = {}  # key -> last access (replicated ms)
        self.lfu: dict[bytes, int] = {}  # key -> (decay time ms // LFU_DECAY_MS) << 8 | counter
        self.since = since

    def touch(self, key: bytes, now: int, order: str, draw: Callable[[int], int]) -> None:
        if order == "lru":
            self.lru[key] = now
        elif order == "lfu":
            counter = self._decayed(key, now)
            if counter < 255:
                base = max(0, counter - LFU_INIT_VAL)
                if draw(base * LFU_LOG_FACTOR + 1) == 0:  # probability 1 / (base * factor + 1)
                    counter += 1
            self.lfu[key] = ((now // LFU_DECAY_MS) << 8) | counter

    def _decayed(self, key: bytes, now: int) -> int:
        """The counter minus one per minute since it was last decayed (Redis's LFUDecrAndReturn)."""
        packed = self.lfu.get(key, ((self.since // LFU_DECAY_MS) << 8) | LFU_INIT_VAL)
        periods = now // LFU_DECAY_MS - (packed >> 8)
        return max(0, (packed & 0xFF) - max(0, periods))

    def idle(self, key: bytes, now: int) -> int:
        return now - self.lru.get(key, self.since)

    def frequency(self, key: bytes, now: int) -> int:
        return self._decayed(key, now)

    def forget(self, key: bytes) -> None:
        self.lru.pop(key, None)
        self.lfu.pop(key, None)

    def dump(self) -> dict[str, Any]:
        lru: list[Any] = []
        for key, when in self.lru.items():
            lru.extend((key, when))
        lfu: list[Any] = []
        for key, packed in self.lfu.items():
            lfu.extend((key, packed))
        return {"since": self.since, "lru": lru, "lfu": lfu}

    @classmethod
    def load(cls, payload: dict[str, Any]) -> AccessTable:
        table = cls(payload["since"])
        rows = payload["lru"]
        table.lru = {rows[i]: rows[i + 1] for i in range(0, len(rows), 2)}
        rows = payload["lfu"]
        table.lfu = {rows[i]: rows[i + 1] for i in range(0, len(rows), 2)}
        return table

    def digest_rows(self) -> Iterable[bytes]:
        yield b"since:%d" % self.since
        for key, when in self.lru.items():
            yield b"lru:%s:%d" % (key, when)
        for key, packed in self.lfu.items():
            yield b"lfu:%s:%d" % (key, packed)


# ------------------------------------------------------------------------------ eviction
class Candidate(NamedTuple):
    score: int  # lower is evicted first
    key: bytes


class Evictor:
    """Chooses keys to evict; `sample_keys(n, volatile)` draws candidate keys from the
    keyspace with the replicated generator. The pool lives for one log entry."""

    def __init__(self) -> None:
        self.pool: list[Candidate] = []

    def reset(self) -> None:
        self.pool.clear()

    def choose(self, settings: MemorySettings, access: AccessTable, now: int,
               sample: Callable[[int, bool], list[bytes]], expiry: Callable[[bytes], int | None],
               live: Callable[[bytes], bool]) -> bytes | None:
        policy = settings.policy
        keys = sample(settings.samples, policy.volatile)
        if policy.order == "random":
            return keys[0] if keys else None
        score = _SCORES[policy.order]
        pool = [c for c in self.pool if live(c.key)]
        known = {c.key for c in pool}
        for key in keys:
            if key not in known:
                pool.append(Candidate(score(key, now, access, expiry), key))
                known.add(key)
        pool.sort()
        if not pool:
            self.pool = []
            return None
        victim = pool[0].key
        self.pool = pool[1:EVICTION_POOL + 1]
        return victim


def _lru_score(key: bytes, now: int, access: AccessTable, expiry: Callable[[bytes], int | None]) -> int:
    return -access.idle(key, now)  # the longest idle goes first


def _lfu_score(key: bytes, now: int, access: AccessTable, expiry: Callable[[bytes], int | None]) -> int:
    return access.frequency(key, now)


def _ttl_score(key: bytes, now: int, access: AccessTable, expiry: Callable[[bytes], int | None]) -> int:
    when = expiry(key)
    return when if when is not None else 2**63


_SCORES: dict[str, Callable[[bytes, int, AccessTable, Callable[[bytes], int | None]], int]] = {
    "lru": _lru_score,
    "lfu": _lfu_score,
    "ttl": _ttl_score,
}


def format_bytes(n: int) -> str:
    """Redis's bytesToHuman (used_memory_human, maxmemory_human)."""
    for unit, size in (("P", 1024**5), ("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n}B"
