"""The end of a delivery burst (RespServer._write_completed), without sockets: every marked
connection is written once, in order; one that raises is logged and skipped."""

from __future__ import annotations

from types import SimpleNamespace

from raftcache.server import RespServer


def test_a_connection_whose_write_fails_does_not_hold_the_others_replies():
    """The end of a delivery burst writes every marked connection; one that raises is
    logged and skipped, as one failing receiver of a burst always was."""
    written = []

    class Conn:
        closing = False
        peer = "127.0.0.1:1"

        def __init__(self, name: str) -> None:
            self.name = name

        def _flush(self) -> None:
            if self.name == "broken":
                raise OSError("the transport is gone")
            written.append(self.name)

        def _update_reading(self) -> None:
            pass

    closed = Conn("closed")
    closed.closing = True
    server = SimpleNamespace(completed={Conn("a"): None, Conn("broken"): None, closed: None, Conn("b"): None})
    RespServer._write_completed(server)
    assert written == ["a", "b"] and server.completed == {}
