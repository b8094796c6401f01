"""ACL users: a practical subset of Redis 6/7 ACLs, with Redis's rule syntax and errors.

A user is built by applying rules in order, exactly as ``ACL SETUSER`` does: ``on``/``off``,
``#<sha256>``/``>password``/``!``/``<`` (remove), ``nopass``, ``resetpass``, ``~pattern``,
``%R~``/``%W~``/``%RW~pattern``, ``allkeys``, ``resetkeys``, ``&channel``, ``allchannels``,
``resetchannels``, ``+command``, ``-command``, ``+command|sub``, ``+@category``,
``-@category``, ``allcommands``, ``nocommands``, ``reset``. Selectors ``(...)`` are not.

Permissions are kept per *unit*: a command name, or ``name|sub`` for the container commands
whose subcommands Redis gives categories of their own (ACL, CONFIG, CLIENT, SCRIPT,
RAFTCACHE). Categories come from the command table (``redis_commands.Spec``: kind, group,
flags) through ``_derived`` plus the small ``_OVERRIDES`` table for commands Redis files
elsewhere, so commands added to the table (hashes, lists, sets, sorted sets) get theirs
without being listed here.

``User.check(spec, args)`` answers None or a ``Denial`` (reason ``command`` or ``key``); the
connection turns it into Redis 7.0's ``-NOPERM`` text, scripts into the script form. Which
arguments are keys, and whether each is read or written, is ``keyspecs.py``'s table.
``AclLog`` is ``ACL LOG``: recent denials and failed AUTHs, grouped as Redis groups them.

Pure: no I/O, no clock (``AclLog`` is handed the time), so the checker also runs inside the
state machine (a script's ``redis.call``), the same on every replica.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .keyspecs import READ, WRITE, find_keys
from .redis_commands import COMMANDS, Kind, Spec, lookup
from .redis_semantics import compile_glob

__all__ = [
    "CATEGORIES",
    "AclLog",
    "Denial",
    "RuleError",
    "User",
    "categories_of",
    "default_user",
    "parse_user",
    "script_acl",
    "user_from_script_acl",
]

# Redis's category list, in Redis's order (ACL CAT; ACL LIST's category fitting).
CATEGORIES = (
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap", "hyperloglog",
    "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous", "connection",
    "transaction", "scripting",
)

# --------------------------------------------------------------------------- categories
_GROUP_CATEGORIES: dict[str, tuple[str, ...]] = {
    "string": ("string",),
    "generic": ("keyspace",),
    "hash": ("hash",),
    "list": ("list",),
    "set": ("set",),
    "sorted_set": ("sortedset",),
    "pubsub": ("pubsub",),
    "scripting": ("scripting",),
    "connection": ("connection",),
    "transactions": ("transaction",),
    "server": ("admin", "dangerous"),
}
_ADMIN = frozenset({"admin", "slow", "dangerous"})
_SLOW = frozenset({"slow"})
# Commands Redis files elsewhere than their table entry suggests (Redis 7.0's categories).
_OVERRIDES: dict[str, frozenset[str]] = {
    "time": frozenset({"fast"}),
    "dbsize": frozenset({"keyspace", "read", "fast"}),
    "keys": frozenset({"keyspace", "read", "slow", "dangerous"}),
    "flushall": frozenset({"keyspace", "write", "slow", "dangerous"}),
    "flushdb": frozenset({"keyspace", "write", "slow", "dangerous"}),
    "info": frozenset({"slow", "dangerous"}),
    "command": frozenset({"slow", "connection"}),
    "readonly": frozenset({"fast", "connection"}),
    "readwrite": frozenset({"fast", "connection"}),
    "exec": frozenset({"slow", "transaction"}),
    "randomkey": frozenset({"keyspace", "read", "slow"}),
    "publish": frozenset({"pubsub", "fast"}),
    "spublish": frozenset({"pubsub", "fast"}),
    "reset": frozenset({"fast", "connection"}),
}
_CLIENT_CONN = frozenset({"slow", "connection"})
_CLIENT_ADMIN = _ADMIN | {"connection"}
_SCRIPT = frozenset({"slow", "scripting"})
# Container commands: subcommand -> categories. A bare `+config` covers every subcommand.
SUBCOMMANDS: dict[str, dict[str, frozenset[str]]] = {
    "acl": {"cat": _SLOW, "whoami": _SLOW, "help": _SLOW, "list": _ADMIN, "users": _ADMIN, "getuser": _ADMIN,
            "log": _ADMIN, "setuser": _ADMIN, "deluser": _ADMIN},
    "config": {"get": _ADMIN, "set": _ADMIN, "resetstat": _ADMIN, "rewrite": _ADMIN, "help": _SLOW},
    "client": {"id": _CLIENT_CONN, "getname": _CLIENT_CONN, "setname": _CLIENT_CONN, "info": _CLIENT_CONN,
               "setinfo": _CLIENT_CONN, "help": _CLIENT_CONN, "list": _CLIENT_ADMIN, "kill": _CLIENT_ADMIN},
    "pubsub": {sub: frozenset({"pubsub", "slow"}) for sub in ("channels", "numpat", "numsub", "shardchannels", "shardnumsub", "help")},
    "script": {"load": _SCRIPT, "exists": _SCRIPT, "flush": _SCRIPT, "kill": _SCRIPT, "help": _SCRIPT},
    # RAFTCACHE ONCE is transparent: the command it wraps is checked instead.
    "raftcache": {"index": frozenset({"keyspace", "read", "fast"}), "watched": frozenset({"fast", "transaction"}),
                  "digest": frozenset({"admin", "slow"}), "members": frozenset({"admin", "slow"}),
                  "member": _ADMIN, "transfer": _ADMIN, "backup": _ADMIN, "compact": _ADMIN, "debug": _ADMIN},
}


def categories_of(spec: Spec) -> frozenset[str]:
    """The ACL categories of a command (of its bare unit, for a container)."""
    override = _OVERRIDES.get(spec.name)
    if override is not None:
        return override
    cats = set(_GROUP_CATEGORIES.get(spec.group, ()))
    if spec.group != "scripting":  # EVAL & co. are neither @read nor @write in Redis
        if spec.kind is Kind.WRITE:
            cats.add("write")
        elif spec.kind is Kind.READ:
            cats.add("read")
    cats.add("fast" if "fast" in spec.flags else "slow")
    if "blocking" in spec.flags:
        cats.add("blocking")
    return frozenset(cats)


def _units() -> dict[str, frozenset[str]]:
    units: dict[str, frozenset[str]] = {}
    for spec in COMMANDS.values():
        subs = SUBCOMMANDS.get(spec.name)
        units[spec.name] = _ADMIN if subs else categories_of(spec)  # bare unit: unknown subcommands
        for sub, cats in (subs or {}).items():
            units[f"{spec.name}|{sub}"] = cats
    return units


UNITS: dict[str, frozenset[str]] = _units()  # every permission unit -> its categories
_IN_CATEGORY: dict[str, tuple[str, ...]] = {
    cat: tuple(u for u in sorted(UNITS) if cat in UNITS[u]) for cat in CATEGORIES
}


def category_members(category: str) -> tuple[str, ...]:
    """ACL CAT <category>: its units (KeyError if the category is unknown)."""
    return _IN_CATEGORY[category]


# ---------------------------------------------------------------------------- key access
def keys_of(unit: str, spec: Spec, args: list[bytes]) -> list[tuple[int, int]]:
    """(position, READ|WRITE access) of every key the command touches (keyspecs.py). A
    command the key table does not know falls back to COMMAND's (first, last, step), each
    key needing both permissions: refusing too much beats letting a key through."""
    found = find_keys(unit, args)
    if found is not None:
        return found
    if not spec.first_key:
        return []
    last = len(args) - 1 if spec.last_key < 0 else min(spec.last_key, len(args) - 1)
    return [(i, READ | WRITE) for i in range(spec.first_key, last + 1, spec.step or 1)]


def key_positions(unit: str, spec: Spec, args: list[bytes]) -> list[int]:
    """The positions of the command's keys (CLIENT TRACKING remembers what a read reads)."""
    return [i for i, _ in keys_of(unit, spec, args)]


# ------------------------------------------------------------------------------- users
class RuleError(ValueError):
    """A rule ACL SETUSER would refuse; the message is Redis's."""

    def __init__(self, rule: str, problem: str) -> None:
        self.rule = rule
        self.problem = problem
        super().__init__(f"Error in ACL SETUSER modifier '{rule}': {problem}")


@dataclass(frozen=True, slots=True)
class Denial:
    reason: str  # "command" or "key" (ACL LOG's reason)
    object: str  # the command's full name or the key


_FLAG_NAMES = {READ: "%R~", WRITE: "%W~", READ | WRITE: "~"}


@dataclass
class User:
    """One ACL user: what `parse_user` builds from rules (mutable only while building)."""

    name: str
    enabled: bool = False
    nopass: bool = False
    passwords: list[str] = field(default_factory=list)  # SHA-256 hex, in the order given
    allowed: set[str] = field(default_factory=set)  # permitted units
    all_commands: bool = False  # +@all in force: Redis's "can run future commands" bit
    allkeys: bool = False
    key_patterns: list[tuple[bytes, int]] = field(default_factory=list)  # (glob, READ|WRITE flags)
    allchannels: bool = False
    channels: list[bytes] = field(default_factory=list)
    sanitize_payload: str = ""  # "sanitize-payload" / "skip-sanitize-payload": shown, not acted on
    script_rules: list[str] = field(default_factory=list)  # the command and key rules, for scripts
    cleartext: bool = False  # a >password rule was used (the node warns)

    # ------------------------------------------------------------------ the checks
    @property
    def unrestricted(self) -> bool:
        return self.allkeys and self.allchannels and len(self.allowed) == len(UNITS)

    def check(self, spec: Spec, args: list[bytes]) -> Denial | None:
        """None if this user may run the command (with these arguments), else why not."""
        if self.unrestricted:
            return None
        if spec.name == "raftcache" and len(args) > 5 and args[1].upper() == b"ONCE":
            inner = lookup(args[5])
            return None if inner is None or not inner.arity_ok(len(args) - 5) else self.check(inner, args[5:])
        unit = unit_of(spec, args)
        if unit not in self.allowed and "no_auth" not in spec.flags:
            return Denial("command", unit)
        if not self.allkeys:
            for i, access in keys_of(unit, spec, args):
                if not self.key_allowed(args[i], access):
                    return Denial("key", args[i].decode("utf-8", "replace"))
        if not self.allchannels and spec.name in _CHANNEL_ARGS:
            literal, last = _CHANNEL_ARGS[spec.name]
            for channel in args[1:last]:
                if not self.channel_allowed(channel, literal):
                    return Denial("channel", channel.decode("utf-8", "replace"))
        return None

    def channel_allowed(self, channel: bytes, literal: bool = False) -> bool:
        """Redis 7.0's ACLCheckChannelAgainstList: a channel must match one of the user's
        channel patterns; a PSUBSCRIBE pattern must equal one of them."""
        if self.allchannels:
            return True
        if literal:
            return channel in self.channels
        return any(compile_glob(pattern)(channel) for pattern in self.channels)

    def key_allowed(self, key: bytes, needed: int) -> bool:
        if self.allkeys:
            return True
        # One pattern must grant every permission the access needs (as Redis).
        for pattern, flags in self.key_patterns:
            if flags & needed == needed and compile_glob(pattern)(key):
                return True
        return False

    # ---------------------------------------------------------------- description
    def describe(self) -> str:
        """ACL LIST's line for this user (Redis 7.0's layout)."""
        parts = ["user", self.name, "on" if self.enabled else "off"]
        if self.nopass:
            parts.append("nopass")
        if self.sanitize_payload:
            parts.append(self.sanitize_payload)
        parts += ["#" + p for p in self.passwords]
        parts += self.key_rules()
        parts += ["&*"] if self.allchannels else ["resetchannels", *("&" + c.decode("utf-8", "replace") for c in self.channels)]
        parts.append(describe_commands(self.allowed, self.all_commands))
        return " ".join(parts)

    def key_rules(self) -> list[str]:
        if self.allkeys:
            return ["~*"]
        return [_FLAG_NAMES[flags] + p.decode("utf-8", "replace") for p, flags in self.key_patterns]

    def getuser(self) -> list[Any]:
        """ACL GETUSER's reply (RESP2 flat map)."""
        flags = ["on" if self.enabled else "off"] + (["nopass"] if self.nopass else [])
        flags += [self.sanitize_payload] if self.sanitize_payload else []
        channels = "&*" if self.allchannels else " ".join("&" + c.decode("utf-8", "replace") for c in self.channels)
        return [
            b"flags", [f.encode() for f in flags],
            b"passwords", [p.encode() for p in self.passwords],
            b"commands", describe_commands(self.allowed, self.all_commands).encode(),
            b"keys", " ".join(self.key_rules()).encode(),
            b"channels", channels.encode(),
            b"selectors", [],
        ]


def unit_of(spec: Spec, args: list[bytes]) -> str:
    """The permission unit a command is checked against: ``config|get`` or ``get``."""
    subs = SUBCOMMANDS.get(spec.name)
    if subs is not None and len(args) > 1:
        sub = args[1].lower().decode("utf-8", "replace")
        if sub in subs:
            return f"{spec.name}|{sub}"
    return spec.name


# ------------------------------------------------------------------------------- rules
_PASSWORD_RULES = ("on", "off", "nopass", "resetpass", "sanitize-payload", "skip-sanitize-payload")


def _is_hash(text: str) -> bool:
    return len(text) == 64 and all(ch in "0123456789abcdef" for ch in text)


def _units_for(word: str, rule: str) -> Iterable[str]:
    """The units `+word` / `-word` names (a command, command|sub or @category)."""
    if word.startswith("@"):
        cat = word[1:]
        if cat == "all":
            return UNITS
        if cat not in _IN_CATEGORY:
            raise RuleError(rule, "Unknown command or category name in ACL")
        return _IN_CATEGORY[cat]
    name, bar, sub = word.partition("|")
    if name not in UNITS or (bar and f"{name}|{sub}" not in UNITS):
        raise RuleError(rule, "Unknown command or category name in ACL")
    if bar:
        return (word,)
    subs = SUBCOMMANDS.get(name)
    return (name, *(f"{name}|{s}" for s in subs)) if subs else (name,)


def _key_rule(user: User, rule: str, flags: int, pattern: str) -> None:
    if user.allkeys:
        raise RuleError(rule, "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have "
                        "any effect. Try 'resetkeys' to start with an empty list of patterns")
    if pattern == "*" and flags == READ | WRITE:
        user.allkeys, user.key_patterns = True, []
    else:
        user.key_patterns.append((pattern.encode(), flags))


def _selector_flags(rule: str) -> tuple[int, str]:
    """`%R~pat` -> (READ, "pat")."""
    head, tilde, pattern = rule[1:].partition("~")
    flags = 0
    for ch in head.upper():
        if ch not in "RW":
            raise RuleError(rule, "Syntax error")
        flags |= READ if ch == "R" else WRITE
    if not tilde or not flags:
        raise RuleError(rule, "Syntax error")
    return flags, pattern


def apply_rule(user: User, rule: str) -> None:
    """Apply one ACL SETUSER rule to `user` (raises RuleError with Redis's message)."""
    low = rule.lower()
    if low == "on":
        user.enabled = True
    elif low == "off":
        user.enabled = False
    elif low == "nopass":
        user.nopass, user.passwords = True, []
    elif low == "resetpass":
        user.nopass, user.passwords = False, []
    elif low in ("sanitize-payload", "skip-sanitize-payload"):
        user.sanitize_payload = low
    elif rule.startswith((">", "#")):
        digest = hashlib.sha256(rule[1:].encode()).hexdigest() if rule[0] == ">" else rule[1:]
        if rule[0] == "#" and not _is_hash(digest):
            raise RuleError(rule, "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")
        user.cleartext |= rule[0] == ">"
        if digest not in user.passwords:
            user.passwords.append(digest)
        user.nopass = False
    elif rule.startswith(("<", "!")):
        digest = hashlib.sha256(rule[1:].encode()).hexdigest() if rule[0] == "<" else rule[1:]
        if rule[0] == "!" and not _is_hash(digest):
            raise RuleError(rule, "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")
        if digest not in user.passwords:
            raise RuleError(rule, "The password you are trying to remove from the user does not exist")
        user.passwords.remove(digest)
    elif low == "reset":
        user.script_rules = []
        for each in ("resetpass", "resetkeys", "resetchannels", "off", "-@all"):
            apply_rule(user, each)
        user.sanitize_payload = "sanitize-payload"
    else:
        _permission_rule(user, rule, low)


def _permission_rule(user: User, rule: str, low: str) -> None:
    """Key, channel and command rules: the ones a script's caller carries (script_rules)."""
    if low in ("allkeys", "resetkeys") or rule.startswith(("~", "%")):
        if low == "resetkeys":
            user.allkeys, user.key_patterns = False, []
        elif low == "allkeys":
            _key_rule(user, rule, READ | WRITE, "*")
        elif rule.startswith("~"):
            _key_rule(user, rule, READ | WRITE, rule[1:])
        else:
            _key_rule(user, rule, *_selector_flags(rule))
    elif low in ("allchannels", "resetchannels") or rule.startswith("&"):
        if low == "resetchannels":
            user.allchannels, user.channels = False, []
        elif user.allchannels:
            raise RuleError(rule, "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not "
                            "have any effect. Try 'resetchannels' to start with an empty list of channels")
        elif low == "allchannels" or rule == "&*":
            user.allchannels, user.channels = True, []
        else:
            user.channels.append(rule[1:].encode())
    elif low in ("allcommands", "nocommands") or rule[:1] in ("+", "-"):
        allow = low == "allcommands" or rule[0] == "+"
        word = "@all" if low in ("allcommands", "nocommands") else low[1:]
        units = _units_for(word, rule)
        if allow:
            user.allowed.update(units)
        else:
            user.allowed.difference_update(units)
        if word == "@all":
            user.all_commands = allow
    elif rule.startswith("(") or low == "clearselectors":
        raise RuleError(rule, "selectors are not supported by raftcache")
    else:
        raise RuleError(rule, "Syntax error")
    user.script_rules.append(rule)


def parse_user(name: str, rules: Iterable[str]) -> User:
    """A user built from a blank one (off, no password, no keys, no channels, no commands),
    as Redis builds a configured user."""
    user = User(name)
    for rule in rules:
        apply_rule(user, rule)
    return user


def default_user(requirepass: str = "") -> User:
    """The `default` user when the config has none: `on nopass ~* &* +@all`, or with
    `requirepass` its hash instead of nopass (what Redis's requirepass does)."""
    password = [">" + requirepass] if requirepass else ["nopass"]
    user = parse_user("default", ["on", *password, "~*", "&*", "+@all"])
    user.cleartext = False  # requirepass is clear text by nature; its own warning applies
    return user


# ---------------------------------------------------------------- scripts' permissions
def script_acl(user: User) -> str | None:
    """What an Eval log entry carries for its caller: None when unrestricted, else the
    caller's key, channel and command rules (no passwords), which every replica parses
    (``user_from_script_acl``) into the same checker."""
    return None if user.unrestricted else " ".join(user.script_rules)


@lru_cache(maxsize=256)
def user_from_script_acl(rules: str) -> User:
    user = User("script")
    for rule in rules.split():
        try:
            apply_rule(user, rule)
        except RuleError:  # a rule this version no longer knows: deny what it would have granted
            continue
    return user


SCRIPT_DENIALS = {
    "command": "The user executing the script can't run this command or subcommand",
    "key": "The user executing the script can't access at least one of the keys mentioned in the command arguments",
    "channel": "The user executing the script can't publish to the channel mentioned in the command",
}
# Commands whose arguments are channels: name -> (patterns compared literally, end of the
# channel arguments: None = all the rest). UNSUBSCRIBE and PUBSUB are not checked (Redis).
_CHANNEL_ARGS: dict[str, tuple[bool, int | None]] = {
    "subscribe": (False, None), "ssubscribe": (False, None), "psubscribe": (True, None),
    "publish": (False, 2), "spublish": (False, 2),
}

NOPERM = {
    "channel": "this user has no permissions to access one of the channels used as arguments",
    "command": "this user has no permissions to run the '{}' command",
    "key": "this user has no permissions to access one of the keys used as arguments",
}


# ------------------------------------------------------------------- ACL LIST's command part
def describe_commands(allowed: set[str], all_commands: bool) -> str:
    """Redis 7.0's rendering: start from +@all or -@all, fit categories greedily, then fix
    single units (in name order; Redis's order is its hash table's)."""
    additive = not all_commands
    rules = ["-@all" if additive else "+@all"]
    fake = set() if additive else set(UNITS)
    temp = set(allowed)
    applied: set[str] = set()
    while True:
        best, mindiff, maxsame = None, 1 << 30, 0
        for cat in CATEGORIES:
            if cat in applied:
                continue
            members = _IN_CATEGORY[cat]
            on = sum(1 for u in members if u in temp)
            off = len(members) - on
            diff, same = (off, on) if additive else (on, off)
            if same > diff and (diff < mindiff or (diff == mindiff and same > maxsame)):
                best, mindiff, maxsame = cat, diff, same
        if best is None:
            break
        members = _IN_CATEGORY[best]
        if additive:
            fake.update(members)
            temp.difference_update(members)
        else:
            fake.difference_update(members)
            temp.update(members)
        rules.append(("+@" if additive else "-@") + best)
        applied.add(best)
    for name in sorted(n for n in UNITS if "|" not in n):
        group = [name, *(f"{name}|{s}" for s in SUBCOMMANDS.get(name, ()))]
        want = [u in allowed for u in group]
        have = [u in fake for u in group]
        if want == have:
            continue
        if all(w == want[0] for w in want):  # the whole command one way: say it once
            rules.append(("+" if want[0] else "-") + name)
            continue
        for unit, w, h in zip(group, want, have):
            if w != h:
                rules.append(("+" if w else "-") + unit)
    return " ".join(rules)


# ----------------------------------------------------------------------------- ACL LOG
class AclLog:
    """ACL LOG: recent denials and failed AUTHs, newest first; an entry like a recent one
    (same reason, context, object, user, within 60 s) counts up instead (as Redis)."""

    GROUP_S = 60.0

    def __init__(self, max_len: int = 128) -> None:
        self.max_len = max_len
        self.entries: list[dict[str, Any]] = []

    def add(self, now: float, reason: str, context: str, obj: str, username: str, client_info: bytes) -> None:
        for i, entry in enumerate(self.entries):
            if (entry["reason"], entry["context"], entry["object"], entry["username"]) == (reason, context, obj, username) \
                    and now - entry["updated"] < self.GROUP_S:
                entry["count"] += 1
                entry["updated"] = now
                entry["client-info"] = client_info
                self.entries.insert(0, self.entries.pop(i))
                return
        self.entries.insert(0, {"count": 1, "reason": reason, "context": context, "object": obj, "username": username,
                                "created": now, "updated": now, "client-info": client_info})
        del self.entries[self.max_len:]

    def reply(self, now: float, count: int | None = None) -> list[Any]:
        out = []
        for entry in self.entries[:count]:
            out.append([
                b"count", entry["count"],
                b"reason", entry["reason"].encode(),
                b"context", entry["context"].encode(),
                b"object", entry["object"].encode(),
                b"username", entry["username"].encode(),
                b"age-seconds", b"%.17g" % (now - entry["created"]),
                b"client-info", entry["client-info"],
            ])
        return out

    def reset(self) -> None:
        self.entries.clear()
