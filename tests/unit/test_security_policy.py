"""Secret strength, password checks and the AUTH slow-down: pure functions and the I/O-free
connection, no sockets."""

from __future__ import annotations

import pytest

from raftcache import auth, cluster_secret
from raftcache.auth import Authenticator, AuthThrottle
from raftcache.connection import NEED_DATA, Command, Connection
from raftcache.consensus.types import DEV_SECRET, RaftSettings, check_member_address, check_settings
from raftcache.errors import ConfigError
from raftcache.resp import encode_command

PUBLIC = ("10.1.2.3:7101", "10.1.2.4:7101")
LOOPBACK = ("127.0.0.1:7101", "127.0.0.1:7102")
STRONG = "Zq8vN2xL5pR7tK1wY4mB9cH3jF6dG0sA"  # 32 characters, all distinct


@pytest.mark.parametrize(
    "secret, why",
    [
        ("change-me", "known placeholder"),
        ("CHANGE-ME", "known placeholder"),
        (DEV_SECRET, "known placeholder"),
        ("please-change-me-before-production-use", "known placeholder"),
        ("a long random string", "known placeholder"),
        ("Zq8vN2xL5pR7tK1wY4mB9cH3jF6dG0s", "shorter than 32"),  # 31 characters
        ("ab" * 20, "fewer than 10 distinct"),
        ("0" * 64, "fewer than 10 distinct"),
        ("abcdefghij" * 4, "short string repeated"),
    ],
)
def test_weak_secrets_are_named(secret, why):
    assert why in cluster_secret.weakness(secret)


def test_generated_and_hex_secrets_pass():
    for _ in range(200):
        assert cluster_secret.weakness(cluster_secret.generate()) is None
    assert cluster_secret.weakness("3f9a0c4e7b1d8e2f6a5c9b0d4e1f7a3c8b2d6e0f4a9c1b5d7e3f0a8c2b6d4e1f") is None
    assert cluster_secret.weakness(STRONG) is None


def test_weak_secret_refused_only_when_raft_traffic_leaves_the_host():
    assert cluster_secret.problem("change-me", LOOPBACK) is None
    assert cluster_secret.problem("", LOOPBACK) is None
    problem = cluster_secret.problem("change-me", ("127.0.0.1:7101", "10.1.2.4:7101"))  # a peer off loopback is enough
    assert "known placeholder" in problem and "'10.1.2.4:7101' is not loopback" in problem
    assert problem.endswith(cluster_secret.HOW_TO_MAKE_ONE) and "\n" not in problem
    assert "is not set" in cluster_secret.problem("", PUBLIC)
    assert cluster_secret.problem(STRONG, PUBLIC) is None


def test_consensus_settings_apply_the_same_rule():
    with pytest.raises(ConfigError, match="shorter than 32"):
        check_settings(RaftSettings(address=PUBLIC[0], peers=PUBLIC[1:], secret="short-but-not-empty"))
    check_settings(RaftSettings(address=PUBLIC[0], peers=PUBLIC[1:], secret=STRONG))
    check_settings(RaftSettings(address=LOOPBACK[0], peers=LOOPBACK[1:], secret="change-me"))
    with pytest.raises(ConfigError, match="known placeholder"):  # adding a member off loopback
        check_member_address("10.9.9.9:7101", RaftSettings(address=LOOPBACK[0], peers=(), secret="change-me"))


# ------------------------------------------------------------------- passwords
def test_authenticator_knows_the_default_user_only():
    users = Authenticator("pw")
    assert users.default_user_has_password and users.has_passwords
    assert users.check("default", b"pw")
    assert not users.check("default", b"pw2") and not users.check("default", b"") and not users.check("alice", b"pw")
    nobody = Authenticator("")
    assert not nobody.default_user_has_password and not nobody.has_passwords


def test_password_compared_in_constant_time(monkeypatch):
    calls = []
    real = auth.hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    users = Authenticator("a-password")
    assert not users.check("default", b"x" * 1000)
    assert users.check("default", b"a-password")
    assert calls == [(32, 32), (32, 32)]  # digests: the length of the guess is not compared either


def test_throttle_delays_grow_after_the_free_attempts():
    t = AuthThrottle(free_failures=3, base_s=0.1, max_s=1.0)
    assert [t.delay_after(n) for n in range(1, 9)] == [0, 0, 0, 0.1, 0.2, 0.4, 0.8, 1.0]


def _drain(conn: Connection) -> list[Command]:
    out = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def test_connection_held_after_repeated_failures_then_released():
    failures = []
    conn = Connection(requirepass="right", throttle=AuthThrottle(free_failures=2, base_s=0.5, max_s=4.0),
                      on_auth_failure=lambda: failures.append(1))
    conn.receive_data(encode_command(b"AUTH", b"wrong") * 2)
    assert _drain(conn) == [] and conn.hold_seconds == 0  # two free failures: answered at once
    conn.receive_data(encode_command(b"AUTH", b"wrong") + encode_command(b"AUTH", b"right") + encode_command(b"GET", b"k"))
    assert _drain(conn) == []
    assert conn.hold_seconds == 0.5 and conn.reading_paused()  # held: the pipelined AUTH waits
    assert conn.data_to_send().count(b"-WRONGPASS") == 3 and len(failures) == 3
    assert not conn.authenticated
    conn.release()
    (get,) = _drain(conn)
    assert get.spec.name == "get" and conn.authenticated and conn.auth_failures == 0
    assert conn.data_to_send() == b"+OK\r\n" and not conn.reading_paused()


def test_hello_auth_failures_count_too():
    failures = []
    conn = Connection(requirepass="right", on_auth_failure=lambda: failures.append(1))
    conn.receive_data(encode_command(b"HELLO", b"3", b"AUTH", b"default", b"nope"))
    assert _drain(conn) == []
    assert conn.data_to_send().startswith(b"-WRONGPASS") and failures == [1]


def test_protected_mode_judges_the_peer_address_as_redis_does():
    from raftcache.server import _is_local_peer

    assert _is_local_peer("127.0.0.1") and _is_local_peer("127.8.9.10") and _is_local_peer("::1")
    assert _is_local_peer("::ffff:127.0.0.1")  # IPv4-mapped, from a dual-stack socket
    assert not _is_local_peer("10.0.0.1") and not _is_local_peer("::ffff:10.0.0.1") and not _is_local_peer("fe80::1")


@pytest.mark.parametrize(
    "server, warning",
    [
        ("", "protected mode refuses clients not on loopback"),
        ("protected_mode = false", "anyone who reaches it can read and write every key"),
        ('requirepass = "pw"', "passwords and data cross the network in clear text"),
    ],
)
def test_client_port_off_loopback_starts_with_a_warning(tmp_path, caplog, server, warning):
    from raftcache.config import load_config
    from raftcache.node import check_security

    path = tmp_path / "cluster.toml"
    path.write_text(f'[cluster]\nsecret = "{STRONG}"\n[server]\n{server}\n[[nodes]]\nid = "n1"\nraft = "10.0.0.1:7101"\nclient = "10.0.0.1:7001"\n')
    with caplog.at_level("WARNING", logger="raftcache.node"):
        assert check_security(load_config(str(path)), "n1") is None  # allowed (no TLS context), as Redis
    assert warning in caplog.text


def test_loopback_client_port_and_strong_secret_start_silently(tmp_path, caplog):
    from raftcache.config import load_config
    from raftcache.node import check_security

    path = tmp_path / "cluster.toml"
    path.write_text(f'[cluster]\nsecret = "{STRONG}"\n[[nodes]]\nid = "n1"\nraft = "10.0.0.1:7101"\nclient = "127.0.0.1:7001"\n')
    with caplog.at_level("WARNING", logger="raftcache.node"):
        check_security(load_config(str(path)), "n1")
    assert caplog.text == ""
