"""raftcache.acl: the rule parser, the checker, ACL LIST's rendering, ACL LOG, and their use
by the connection (AUTH user pass, NOPERM, MULTI, ACL ...), the config loader ([[users]]) and
scripts (a redis.call checked against the caller's rules carried in the Eval entry).
No sockets: the cluster side is tests/cluster/test_acl.py."""

from __future__ import annotations

import hashlib

import msgpack
import pytest

from raftcache import acl
from raftcache import commands as c
from raftcache.auth import Authenticator
from raftcache.config import config_from_mapping
from raftcache.connection import Connection
from raftcache.errors import CommandError, ConfigError
from raftcache.redis_commands import COMMANDS, Limits, build_command, lookup
from raftcache.resp import encode_reply
from raftcache.statemachine import CacheStateMachine
from tests.unit.test_connection import Driver

PW = "alice-pw"
PW_HASH = hashlib.sha256(PW.encode()).hexdigest()


def user(*rules: str, name: str = "u") -> acl.User:
    return acl.parse_user(name, rules)


def words(*ws: str) -> tuple:
    args = [w.encode() for w in ws]
    return lookup(args[0]), args


def allowed(u: acl.User, *ws: str) -> bool:
    spec, args = words(*ws)
    return u.check(spec, args) is None


def denial(u: acl.User, *ws: str) -> acl.Denial | None:
    spec, args = words(*ws)
    return u.check(spec, args)


# ------------------------------------------------------------------------ categories
def test_categories_derive_from_the_command_table():
    assert acl.UNITS["get"] == {"read", "string", "fast"}
    assert acl.UNITS["set"] == {"write", "string", "slow"}
    assert acl.UNITS["del"] == {"write", "keyspace", "slow"}
    assert acl.UNITS["exists"] == {"read", "keyspace", "fast"}
    assert acl.UNITS["eval"] == {"scripting", "slow"}  # neither @read nor @write, as Redis
    assert acl.UNITS["flushall"] >= {"dangerous", "write", "keyspace"}
    assert acl.UNITS["keys"] >= {"dangerous", "read"}
    assert acl.UNITS["multi"] == {"transaction", "fast"}
    assert acl.UNITS["exec"] == {"transaction", "slow"}
    assert acl.UNITS["acl|whoami"] == {"slow"} and "dangerous" in acl.UNITS["acl|list"]
    assert "dangerous" in acl.UNITS["config|get"] and "dangerous" in acl.UNITS["info"]
    assert acl.UNITS["client|id"] == {"slow", "connection"}
    # every command in the table has a unit, so new data-type commands are covered
    assert {spec.name for spec in COMMANDS.values()} <= set(acl.UNITS)


def test_data_type_commands_get_their_group_category():
    spec = COMMANDS[b"get"]
    for group, cat in (("hash", "hash"), ("list", "list"), ("set", "set"), ("sorted_set", "sortedset")):
        for kind in ("write", "read"):
            fake = type(spec)(f"x{group}", 2, spec.kind if kind == "read" else COMMANDS[b"set"].kind, group, "")
            assert acl.categories_of(fake) == {cat, kind, "slow"}
    blocking = type(spec)("blpop", -3, COMMANDS[b"set"].kind, "list", "", flags=("write", "blocking"))
    assert acl.categories_of(blocking) == {"list", "write", "slow", "blocking"}


# ---------------------------------------------------------------------- the rules
def test_a_new_user_is_off_and_may_do_nothing():
    u = user()
    assert not u.enabled and not u.nopass and not u.passwords
    assert not allowed(u, "get", "k") and not allowed(u, "ping")
    assert u.describe() == "user u off resetchannels -@all"


def test_on_off_nopass_and_passwords():
    u = user("on", "#" + PW_HASH, ">other")
    assert u.enabled and u.passwords == [PW_HASH, hashlib.sha256(b"other").hexdigest()] and u.cleartext
    apply = acl.apply_rule
    apply(u, "<other")
    assert u.passwords == [PW_HASH]
    apply(u, "!" + PW_HASH)
    assert u.passwords == []
    apply(u, "nopass")
    assert u.nopass
    apply(u, "#" + PW_HASH)
    assert not u.nopass  # a password ends nopass
    apply(u, "resetpass")
    assert not u.nopass and not u.passwords
    apply(u, "off")
    assert not u.enabled


@pytest.mark.parametrize(("rule", "problem"), [
    ("#abc", "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"),
    ("#" + PW_HASH.upper(), "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"),
    ("!abc", "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"),
    ("<nothere", "The password you are trying to remove from the user does not exist"),
    ("+nosuch", "Unknown command or category name in ACL"),
    ("+@nosuch", "Unknown command or category name in ACL"),
    ("-get|x", "Unknown command or category name in ACL"),
    ("bogus", "Syntax error"),
    ("%X~a", "Syntax error"),
    ("%R", "Syntax error"),
    ("(~x +get)", "selectors are not supported by raftcache"),
])
def test_bad_rules_are_refused_with_redis_words(rule, problem):
    with pytest.raises(acl.RuleError) as exc:
        user(rule)
    assert exc.value.problem == problem
    assert str(exc.value) == f"Error in ACL SETUSER modifier '{rule}': {problem}"


def test_patterns_after_a_star_are_refused_as_redis_does():
    with pytest.raises(acl.RuleError, match="Adding a pattern after the \\* pattern \\(or the 'allkeys' flag\\)"):
        user("allkeys", "~foo")
    with pytest.raises(acl.RuleError, match="'allchannels' flag"):
        user("allchannels", "&x")
    assert user("allkeys", "resetkeys", "~foo").key_patterns == [(b"foo", acl.READ | acl.WRITE)]


def test_command_rules_allow_and_deny():
    u = user("on", "allkeys", "+get")
    assert allowed(u, "get", "k") and not allowed(u, "set", "k", "v")
    u = user("on", "allkeys", "+@read")
    assert allowed(u, "get", "k") and allowed(u, "mget", "a", "b") and allowed(u, "ttl", "k")
    assert not allowed(u, "set", "k", "v") and not allowed(u, "del", "k")
    u = user("on", "allkeys", "+@all", "-@dangerous")
    assert allowed(u, "set", "k", "v") and allowed(u, "acl", "whoami")
    assert not allowed(u, "flushall") and not allowed(u, "keys", "*") and not allowed(u, "config", "get", "x")
    u = user("on", "allkeys", "allcommands", "-set")
    assert allowed(u, "get", "k") and not allowed(u, "set", "k", "v")
    u = user("on", "allkeys", "allcommands", "nocommands", "+set")
    assert allowed(u, "set", "k", "v") and not allowed(u, "get", "k")
    u = user("on", "allkeys", "+@write", "-@string")
    assert allowed(u, "del", "k") and not allowed(u, "set", "k", "v")


def test_subcommand_rules():
    u = user("on", "allkeys", "+config|get", "+acl|whoami")
    assert allowed(u, "config", "get", "x") and not allowed(u, "config", "set", "x", "y")
    assert allowed(u, "acl", "whoami") and not allowed(u, "acl", "list")
    assert denial(u, "config", "set", "x", "y") == acl.Denial("command", "config|set")
    u = user("on", "allkeys", "+config", "-config|set")
    assert allowed(u, "config", "get", "x") and allowed(u, "config", "resetstat")
    assert not allowed(u, "config", "set", "x", "y")


def test_commands_without_auth_are_always_allowed():
    u = user("on", "nocommands")
    assert allowed(u, "auth", "a", "b") and allowed(u, "hello", "3") and allowed(u, "quit")
    assert not allowed(u, "ping")


def test_key_patterns_on_every_key_argument():
    u = user("on", "~config:*", "+@all")
    assert allowed(u, "get", "config:a") and not allowed(u, "get", "other")
    assert allowed(u, "mset", "config:a", "1", "config:b", "2")
    assert denial(u, "mset", "config:a", "1", "x", "2") == acl.Denial("key", "x")
    assert allowed(u, "mset", "config:a", "x", "config:b", "y")  # values are not keys
    assert not allowed(u, "del", "config:a", "x")
    assert not allowed(u, "rename", "config:a", "x") and allowed(u, "rename", "config:a", "config:b")
    assert allowed(u, "object", "encoding", "config:a") and not allowed(u, "object", "encoding", "x")
    assert allowed(u, "watch", "config:a") and not allowed(u, "watch", "config:a", "x")
    assert allowed(u, "ping") and allowed(u, "dbsize")  # no key arguments
    u = user("on", "~a", "~b?", "+@all")
    assert allowed(u, "get", "a") and allowed(u, "get", "bz") and not allowed(u, "get", "bzz")


def test_eval_keys_are_its_numkeys_keys():
    u = user("on", "~config:*", "+@all")
    assert allowed(u, "eval", "return 1", "1", "config:a", "other-is-an-arg")
    assert not allowed(u, "eval", "return 1", "1", "other")
    assert allowed(u, "eval", "return 1", "0", "other")
    assert not allowed(u, "evalsha_ro", "x" * 40, "2", "config:a", "other")
    assert allowed(u, "eval", "return 1", "notanumber")  # EVAL answers its own error


def test_read_and_write_key_permissions():
    u = user("on", "%R~r:*", "%W~w:*", "~rw:*", "+@all")
    assert allowed(u, "get", "r:1") and not allowed(u, "get", "w:1") and allowed(u, "get", "rw:1")
    assert allowed(u, "del", "w:1") and not allowed(u, "del", "r:1")  # DEL only writes
    assert allowed(u, "set", "w:1", "v") and not allowed(u, "set", "r:1", "v")  # SET only writes...
    assert not allowed(u, "set", "w:1", "v", "GET") and allowed(u, "set", "rw:1", "v", "get")  # ...unless GET
    assert allowed(u, "copy", "r:1", "w:1") and not allowed(u, "copy", "w:1", "r:1")
    assert allowed(u, "expire", "w:1", "10")
    assert user("on", "%RW~*", "+@all").allkeys


def test_raftcache_once_checks_the_command_it_wraps():
    u = user("on", "~config:*", "+@read")
    assert allowed(u, "raftcache", "once", "1", "1", "1", "get", "config:a")
    assert denial(u, "raftcache", "once", "1", "1", "1", "set", "config:a", "v") == acl.Denial("command", "set")
    assert denial(u, "raftcache", "once", "1", "1", "1", "get", "x") == acl.Denial("key", "x")
    assert not allowed(u, "raftcache", "digest")


def test_reset_and_channels():
    u = user("on", "nopass", "~*", "&*", "+@all", "reset")
    assert u.describe() == "user u off sanitize-payload resetchannels -@all"
    u = user("&ch:*", "&other")
    assert u.channels == [b"ch:*", b"other"]
    assert user("allchannels").allchannels and not user("allchannels", "resetchannels").allchannels


# ----------------------------------------------------------- ACL LIST (as Redis 7.0.15)
@pytest.mark.parametrize(("rules", "redis_line"), [
    # each line below is what redis-server 7.0.15 answered to ACL SETUSER u <rules>; ACL LIST
    ("on >alice-pw ~cached:* +get", f"user u on #{PW_HASH} ~cached:* resetchannels -@all +get"),
    ("on nopass %R~r:* %W~w:* %RW~b:* ~k* &ch:* +@read", "user u on nopass %R~r:* %W~w:* ~b:* ~k* resetchannels &ch:* -@all +@read"),
    ("%R~r:* allcommands -keys resetkeys ~x nocommands +get", "user u off ~x resetchannels -@all +get"),
    ("reset", "user u off sanitize-payload resetchannels -@all"),
    ("on nopass ~* &* +@all", "user u on nopass ~* &* +@all"),
])
def test_acl_list_lines_match_redis(rules, redis_line):
    assert user(*rules.split()).describe() == redis_line


def test_acl_list_of_subtractions_starts_from_all():
    line = user("on", "~*", "+@all", "-@dangerous").describe()
    assert line == "user u on ~* resetchannels +@all -@dangerous"
    line = user("on", "~*", "+@all", "-set").describe()
    assert line.endswith("+@all -set")


def test_describe_round_trips_the_permissions():
    for rules in ("+@all -@dangerous +flushall -set +@read -@read", "-@all +@read +set -get", "+config|get +@write",
                  "+@all -config|set", "+@string -@write +acl"):
        u = user(*rules.split())
        again = user(*acl.describe_commands(u.allowed, u.all_commands).split())
        assert again.allowed == u.allowed, rules


# --------------------------------------------------------------------- authenticator
def test_authenticator_with_users():
    users = Authenticator("", [user("on", "#" + PW_HASH, "+@all", name="alice"), user("on", "nopass", name="guest"),
                               user("off", ">pw", name="gone")])
    assert users.authenticate("alice", PW.encode()).name == "alice"
    assert users.authenticate("alice", b"nope") is None
    assert users.authenticate("guest", b"anything").name == "guest"  # nopass: any password
    assert users.authenticate("gone", b"pw") is None  # off
    assert users.authenticate("nobody", b"x") is None
    assert not users.default_user_has_password  # default still on nopass: protected mode applies
    closed = Authenticator("", [user("on", "#" + PW_HASH, "~*", "+@all", name="default")])
    assert closed.default_user_has_password and closed.authenticate("default", PW.encode())
    assert Authenticator("", [user("off", name="default")]).default_user_has_password
    assert Authenticator("pw").default.describe() == f"user default on #{hashlib.sha256(b'pw').hexdigest()} ~* &* +@all"


# -------------------------------------------------------------------- the connection
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def conn(**options) -> tuple[Driver, list[str]]:
    denied: list[str] = []
    users = Authenticator("", [
        user("on", "#" + PW_HASH, "~*", "+@read", "+@connection", "+acl", name="reader"),
        user("on", ">cfg-pw", "~config:*", "+@all", name="cfg"),
        user("on", ">nd-pw", "~*", "+@all", "-@dangerous", name="nd"),
        user("on", "#" + hashlib.sha256(b"dpw").hexdigest(), "~*", "&*", "+@all", name="default"),
    ])
    c_ = Connection(authenticator=users, on_acl_denied=denied.append, clock=Clock(), **options)
    return Driver(c_), denied


def resp(*ws: str) -> bytes:
    return encode_reply([w.encode() for w in ws], 2)


def test_auth_user_pass_then_noperm_texts():
    d, denied = conn()
    out = d.feed([resp("GET", "k")])
    assert out == b"-NOAUTH Authentication required.\r\n"
    out = d.feed([resp("AUTH", "reader", "bad") + resp("AUTH", "nobody", "x")])
    assert out.endswith(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n" * 2)
    d.out = b""
    out = d.feed([resp("AUTH", "reader", PW) + resp("GET", "k") + resp("SET", "k", "v") + resp("ACL", "WHOAMI")])
    assert out == b"+OK\r\n$1\r\nv\r\n-NOPERM this user has no permissions to run the 'set' command\r\n$6\r\nreader\r\n"
    assert [e.spec.name for e in d.handed] == ["get"]  # SET never left the connection
    assert denied == ["command"]
    d.out = b""
    d.feed([resp("AUTH", "cfg", "cfg-pw") + resp("MGET", "config:a", "x")])
    assert d.out == b"+OK\r\n-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
    assert denied == ["command", "key"]


def test_auth_with_a_user_while_the_default_user_has_no_password():
    """Redis 7.0.15: while `default` is nopass only the one-argument AUTH is refused;
    AUTH <user> <pass> logs in a defined user, and `default` with any password."""
    users = Authenticator("", [user("on", ">cfg-pw", "~config:*", "+@all", name="cfg")])
    d = Driver(Connection(authenticator=users, clock=Clock()))
    wrongpass = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    out = d.feed([resp("AUTH", "pw") + resp("AUTH", "cfg", "cfg-pw") + resp("ACL", "WHOAMI") + resp("AUTH", "cfg", "bad")
                  + resp("ACL", "WHOAMI") + resp("AUTH", "default", "anything") + resp("ACL", "WHOAMI")
                  + resp("AUTH", "nobody", "x")])
    assert out == (b"-ERR AUTH <password> called without any password configured for the default user. Are you sure "
                   b"your configuration is correct?\r\n+OK\r\n$3\r\ncfg\r\n" + wrongpass + b"$3\r\ncfg\r\n"
                   b"+OK\r\n$7\r\ndefault\r\n" + wrongpass)


def test_hello_auth_with_a_user():
    d, _ = conn()
    out = d.feed([resp("HELLO", "2", "AUTH", "nd", "nd-pw") + resp("ACL", "WHOAMI")])
    assert out.endswith(b"$2\r\nnd\r\n") and b"-" not in out.split(b"\r\n")[0]
    d, _ = conn()
    assert d.feed([resp("HELLO", "2", "AUTH", "nd", "bad")]).startswith(b"-WRONGPASS")


def test_a_denial_while_queuing_dooms_the_transaction():
    d, _ = conn()
    d.feed([resp("AUTH", "cfg", "cfg-pw")])
    d.out = b""
    out = d.feed([resp("MULTI") + resp("SET", "config:a", "1") + resp("SET", "other", "1") + resp("EXEC")])
    assert out == (b"+OK\r\n+QUEUED\r\n-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
                   b"-EXECABORT Transaction discarded because of previous errors.\r\n")
    assert not d.handed


def test_exec_denied_aborts_with_redis_words():
    d, _ = conn()
    d.feed([resp("AUTH", "reader", PW)])
    d.out = b""
    assert d.feed([resp("EXEC")]) == (b"-EXECABORT Transaction discarded because of: NOPERM this user has no "
                                      b"permissions to run the 'exec' command\r\n")


def test_acl_subcommands():
    d, _ = conn()
    d.feed([resp("AUTH", "dpw")])
    d.out = b""
    assert d.feed([resp("ACL", "USERS")]) == resp("cfg", "default", "nd", "reader")
    d.out = b""
    lines = d.feed([resp("ACL", "LIST")]).split(b"\r\n")
    reader = d.conn._auth_users.users["reader"]
    assert reader.describe().encode() in lines and lines[0] == b"*4"
    # (the order of the categories depends on how many commands each holds, as in Redis)
    assert reader.describe().startswith(f"user reader on #{PW_HASH} ~* resetchannels -@all +@")
    d.out = b""
    assert d.feed([resp("ACL", "CAT")]).startswith(b"*21\r\n$8\r\nkeyspace\r\n$4\r\nread\r\n")
    d.out = b""
    assert b"$3\r\nget\r\n" in d.feed([resp("ACL", "CAT", "read")])
    d.out = b""
    assert d.feed([resp("ACL", "CAT", "nosuch")]) == b"-ERR Unknown category 'nosuch'\r\n"
    d.out = b""
    assert d.feed([resp("ACL", "GETUSER", "nosuch")]) == b"$-1\r\n"
    d.out = b""
    assert d.feed([resp("ACL", "GETUSER", "cfg")]).startswith(b"*12\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n")
    d.out = b""
    assert d.feed([resp("ACL", "NOSUB")]) == b"-ERR unknown subcommand 'NOSUB'. Try ACL HELP.\r\n"
    d.out = b""
    assert d.feed([resp("ACL", "SETUSER")]) == b"-ERR wrong number of arguments for 'acl|setuser' command\r\n"
    d.out = b""
    assert d.feed([resp("ACL", "SETUSER", "x", "on")]).startswith(b"-ERR ACL SETUSER is not supported: users come from the [[users]]")
    d.out = b""
    assert d.feed([resp("ACL", "LOG", "x")]) == b"-ERR value is not an integer or out of range\r\n"


def test_acl_log_records_denials_and_failed_auth_grouped():
    d, _ = conn()
    d.feed([resp("AUTH", "nd", "bad") + resp("AUTH", "nd", "bad2") + resp("AUTH", "nd", "nd-pw") + resp("FLUSHALL")])
    d.conn.client_info = lambda: b"id=7 user=nd"
    d.feed([resp("KEYS", "*")])
    admin = Driver(Connection(authenticator=d.conn._auth_users, clock=d.conn._clock))  # the log is the node's
    admin.feed([resp("AUTH", "dpw")])
    admin.out = b""
    entries = parse_log(admin.feed([resp("ACL", "LOG")]))
    assert [(e[b"reason"], e[b"object"], e[b"count"], e[b"context"], e[b"username"]) for e in entries] == [
        (b"command", b"keys", 1, b"toplevel", b"nd"),
        (b"command", b"flushall", 1, b"toplevel", b"nd"),
        (b"auth", b"AUTH", 2, b"toplevel", b"nd"),
    ]
    assert entries[0][b"client-info"] == b"id=7 user=nd" and entries[0][b"age-seconds"] == b"0"
    admin.out = b""
    assert len(parse_log(admin.feed([resp("ACL", "LOG", "1")]))) == 1
    admin.out = b""
    assert admin.feed([resp("ACL", "LOG", "RESET") + resp("ACL", "LOG")]) == b"+OK\r\n*0\r\n"


def test_acl_log_groups_only_within_a_minute():
    log = acl.AclLog(max_len=3)
    log.add(0.0, "key", "toplevel", "x", "u", b"")
    log.add(30.0, "key", "toplevel", "x", "u", b"")
    log.add(100.0, "key", "toplevel", "x", "u", b"")
    assert [e["count"] for e in log.entries] == [1, 2]
    for i in range(5):
        log.add(200.0, "command", "toplevel", f"c{i}", "u", b"")
    assert len(log.entries) == 3  # bounded


def parse_log(data: bytes) -> list[dict[bytes, object]]:
    """ACL LOG's RESP2 reply (an array of flat maps) as dicts."""
    pos = 0

    def line() -> bytes:
        nonlocal pos
        end = data.index(b"\r\n", pos)
        out, pos = data[pos:end], end + 2
        return out

    def value() -> object:
        nonlocal pos
        head = line()
        if head[:1] == b"*":
            return [value() for _ in range(int(head[1:]))]
        if head[:1] == b":":
            return int(head[1:])
        if head[:1] == b"$":
            n = int(head[1:])
            out = data[pos:pos + n]
            pos += n + 2
            return out
        raise AssertionError(head)

    top = value()
    assert isinstance(top, list)
    return [dict(zip(e[::2], e[1::2], strict=True)) for e in top]


# ---------------------------------------------------------------------------- config
def cfg(users) -> dict:
    return {"nodes": [{"id": "n1", "raft": "127.0.0.1:7001"}], "users": users}


def test_config_users():
    config = config_from_mapping(cfg([{"name": "alice", "rules": f"on #{PW_HASH} ~app:* +@read"},
                                      {"name": "bob", "rules": ["on", "nopass", "~a b", "+get"]}]))
    alice, bob = config.users
    assert alice.name == "alice" and alice.enabled and alice.passwords == [PW_HASH]
    assert bob.key_patterns == [(b"a b", acl.READ | acl.WRITE)]
    assert config_from_mapping(cfg([])).users == ()


@pytest.mark.parametrize(("users", "message"), [
    ([{"name": "alice", "rules": "on +nosuch"}],
     "<config>: users[0].rules: user 'alice': rule '+nosuch': Unknown command or category name in ACL"),
    ([{"name": "alice", "rules": "on #abc"}],
     "<config>: users[0].rules: user 'alice': rule '#abc': The password hash must be exactly 64 characters"),
    ([{"name": "a", "rules": "on"}, {"name": "a", "rules": "off"}], "<config>: users[1].name: user 'a' is defined twice"),
    ([{"name": "", "rules": "on"}], "<config>: users[0].name: must be a non-empty name without spaces"),
    ([{"name": "a", "rules": 3}], "<config>: users[0].rules: must be a string of ACL rules"),
    ([{"name": "a", "rules": "on", "password": "x"}], "<config>: users[0].password: unknown key"),
    ({"name": "a"}, "<config>: users: must be [[users]] tables"),
])
def test_config_user_errors_are_one_line_naming_user_and_rule(users, message):
    with pytest.raises(ConfigError) as exc:
        config_from_mapping(cfg(users))
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


# --------------------------------------------------------------------------- scripts
def run_eval(sm: CacheStateMachine, script: str, keys: list[str], caller: acl.User | None, write: bool = True):
    args = [b"eval" if write else b"eval_ro", script.encode(), str(len(keys)).encode(), *(k.encode() for k in keys)]
    cmd = build_command(lookup(args[0]), args, Limits())
    cmd = cmd._replace(acl=None if caller is None else acl.script_acl(caller))
    if write:
        return sm.apply(c.Batch(1_700_000_000_000, [(None, cmd)]))[0]
    try:
        return sm.read(cmd)
    except CommandError as exc:  # the read path raises what apply returns
        return exc


def test_scripts_check_each_call_against_the_caller_with_redis_words():
    caller = user("on", "~config:*", "+@all", "-set")
    sm = CacheStateMachine()
    # (`local r = ...; return r`: a tail call loses the script's position, see test_scripting)
    err = run_eval(sm, "local r = redis.call('set', 'config:a', '1') return r", [], caller)
    assert err.message.startswith("The user executing the script can't run this command or subcommand script: ")
    err = run_eval(sm, "local r = redis.call('get', 'other') return r", [], caller)
    assert err.message.startswith("The user executing the script can't access at least one of the keys mentioned in "
                                  "the command arguments script: ")
    assert run_eval(sm, "return redis.pcall('get', 'other')", [], caller).message == (
        "The user executing the script can't access at least one of the keys mentioned in the command arguments")
    assert run_eval(sm, "return redis.call('incr', 'config:n')", [], caller) == 1
    assert run_eval(sm, "return redis.call('get', 'config:n')", [], caller, write=False) == b"1"
    assert isinstance(run_eval(sm, "return redis.call('get', 'other')", [], caller, write=False), Exception)
    assert run_eval(sm, "return redis.call('set', 'other', '1')", [], None) is not None  # unrestricted
    assert acl.script_acl(acl.default_user()) is None


def test_script_denials_are_the_same_on_every_replica():
    caller = user("on", "~a*", "+@all", "-del")
    script = "redis.call('set', 'a1', 'x'); pcall(redis.call, 'set', 'b1', 'y'); redis.call('del', 'a1')"
    machines = [CacheStateMachine(), CacheStateMachine()]
    results = [run_eval(sm, script, [], caller) for sm in machines]
    assert results[0] == results[1] and "can't run this command" in results[0].message
    assert machines[0].digest() == machines[1].digest()
    assert machines[0].read(c.Get(b"a1")) == b"x" and machines[0].read(c.Get(b"b1")) is None


def test_eval_entries_carry_the_acl_and_old_entries_still_decode():
    cmd = c.Eval("0" * 40, b"return 1", (), (), 1000, 10, 10, "~a* +@all -del")
    batch = c.decode_batch(c.encode_batch(5, [(None, cmd)]))
    assert batch.commands[0][1] == cmd
    old = msgpack.packb((c.FORMAT_VERSION, 5, [(40, None, 0, 0, "0" * 40, b"return 1", (), (), 1000, 10, 10)]), use_bin_type=True)
    decoded = c.decode_batch(old).commands[0][1]
    assert decoded.acl is None and decoded.body == b"return 1"
    inside = c.decode_batch(c.encode_batch(5, [(None, c.Exec((cmd,), ()))])).commands[0][1]
    assert inside.ops[0].acl == "~a* +@all -del"


def test_script_acl_leaves_passwords_out():
    u = user("on", ">secret", "#" + PW_HASH, "~k:*", "+@read", "nopass")
    carried = acl.script_acl(u)
    assert carried == "~k:* +@read" and "secret" not in carried and PW_HASH not in carried
    assert acl.user_from_script_acl(carried).allowed == u.allowed


def test_clear_text_passwords_and_a_replaced_requirepass_are_warned_about(caplog):
    from raftcache.node import _warn_about_users

    config = config_from_mapping({**cfg([{"name": "bob", "rules": "on >s3cr3t-value ~* +@all"},
                                         {"name": "default", "rules": f"on #{PW_HASH} ~* +@all"}]),
                                  "server": {"requirepass": "pw"}})
    with caplog.at_level("WARNING", logger="raftcache.node"):
        _warn_about_users(config)
    text = caplog.text
    assert "user 'bob' has a clear-text >password rule" in text and "s3cr3t-value" not in text
    assert "[server] requirepass is ignored: the [[users]] entry named default replaces it" in text
    assert Authenticator("pw", config.users).authenticate("default", PW.encode()) is not None
    assert Authenticator("pw", config.users).authenticate("default", b"pw") is None
