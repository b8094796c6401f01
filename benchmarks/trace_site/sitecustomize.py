"""Stage stamps for `write_trace.py`, loaded by node processes started with this directory
on PYTHONPATH and RAFTCACHE_WRITE_TRACE=<dir>: each stage of a write appends one line
``<perf_counter_ns> <tag> <detail>`` to <dir>/<pid>.trace (and once, ``RAFT_TID <native id>``:
the Raft thread's id, for ``write_trace.py --load``'s scheduler figures). perf_counter is CLOCK_MONOTONIC
on Linux, so stamps of different processes compare. Wraps a few raftcache internals by
name; a rename makes it write one PATCH-FAILED line instead of stamps (write_trace.py then
says so). Without the variable this module does nothing."""

from __future__ import annotations

import os
import threading
import time

_DIR = os.environ.get("RAFTCACHE_WRITE_TRACE")


def _install(directory: str) -> None:
    fd = os.open(os.path.join(directory, f"{os.getpid()}.trace"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    now = time.perf_counter_ns

    def stamp(tag: str, detail: str = "") -> None:
        os.write(fd, f"{now()} {tag} {detail}\n".encode())

    def wrap(owner: object, name: str, tag: str, detail=None, end: bool = False) -> None:
        """Stamp `tag` on every call of owner.name (a class or a module); `detail(*args)`
        gives the stamp's detail, or None for a call not worth a stamp."""
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            text = detail(*args) if detail else ""
            if text is not None:
                stamp(tag, text)
            result = original(*args, **kwargs)
            if end:
                stamp(tag + "_END")
            return result

        setattr(owner, name, wrapped)

    try:
        from raftcache import pubsub, replica, server
        from raftcache.consensus import pysyncobj_backend as backend
        from raftcache.consensus import wire

        def kind(message: object) -> str:
            return str(message.get("type")) if isinstance(message, dict) else "?"

        wrap(server._Connection, "data_received", "RECV", lambda conn, data: str(len(data)))
        wrap(replica.Replica, "submit", "SUBMIT")
        wrap(backend.PysyncobjNode, "propose", "PROPOSE")
        wrap(backend._Journal, "add", "APPEND", lambda journal, command, index, term: str(index))
        wrap(backend._GuardedTransport, "send", "SEND", lambda transport, node, message: kind(message))
        wrap(backend.PysyncobjNode, "_filter_incoming", "RECEIVE", lambda node, peer, message: kind(message))
        wrap(wire.WireSession, "receive", "WIRE_IN", lambda session, data: str(len(data)))
        # module-level: the wire's send looks it up per call; empty writes are not messages
        wrap(backend, "_write", "WIRE_OUT", lambda conn, data: str(len(data)) if data else None, end=True)
        wrap(backend.PysyncobjNode, "_apply", "APPLY", end=True)
        wrap(pubsub.PubSubHub, "_drain", "DELIVER", end=True)
        original_sync = backend._Journal.sync

        raft_thread: list[int] = []

        def sync(journal: backend._Journal) -> None:
            if not raft_thread:  # the journal syncs on the Raft thread only: name it once
                raft_thread.append(threading.get_native_id())
                stamp("RAFT_TID", str(raft_thread[0]))
            dirty = journal._file is not None and journal._file.dirty
            if dirty:
                stamp("FSYNC")
            original_sync(journal)
            if dirty:
                stamp("FSYNC_END")

        backend._Journal.sync = sync  # type: ignore[method-assign]
    except Exception as exc:  # noqa: BLE001 - reported by write_trace.py, never fatal to the node
        stamp("PATCH-FAILED", repr(exc).replace("\n", " "))


if _DIR:
    _install(_DIR)
