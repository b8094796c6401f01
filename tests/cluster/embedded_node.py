"""A process that embeds one `raftcache.Cache` replica and obeys JSON lines on stdin.

Each request line is ``{"id": n, "op": "<Cache method>", "args": [...], "kwargs": {...}}``;
bytes travel as ``{"b64": "..."}``. Each reply line is ``{"id": n, "ok": value}`` or
``{"id": n, "error": "<ExceptionClass>", "message": "..."}``. Requests run on a thread
pool, so one slow call (waiting for a quorum) does not block others.

Run: python -m tests.cluster.embedded_node --address A --peer B --peer C [--data-dir D]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from raftcache import Cache
from raftcache import commands as c
from raftcache.commands import SessionTag


def encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if dataclasses.is_dataclass(value):
        return {k: encode(v) for k, v in dataclasses.asdict(value).items()}
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--peer", action="append", default=[])
    parser.add_argument("--data-dir")
    parser.add_argument("--secret", default="test-secret")
    parser.add_argument("--fsync", default="always")
    parser.add_argument("--request-timeout", type=float, default=5.0)
    parser.add_argument("--snapshot-min-entries", type=int, default=20000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    cache = Cache(
        args.address,
        args.peer,
        data_dir=args.data_dir,
        secret=args.secret,
        fsync=args.fsync,
        request_timeout=args.request_timeout,
        raft={"snapshot_min_entries": args.snapshot_min_entries},
    )
    out_lock = threading.Lock()

    def reply(message: dict[str, Any]) -> None:
        line = json.dumps(message)
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def submit_tagged(command_name: str, fields: list[Any], tag: list[int]) -> Any:
        """Submit a write with an explicit exactly-once tag (what a retrying client sends)."""
        command = getattr(c, command_name)(*(f.encode() if isinstance(f, str) else f for f in fields))
        done = threading.Event()
        box: list[Any] = []
        cache.replica.submit(command, lambda r: (box.append(r), done.set()), tag=SessionTag(*tag))
        done.wait(30)
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def run(request: dict[str, Any]) -> None:
        rid = request.get("id")
        try:
            op = request["op"]
            call_args = decode(request.get("args", []))
            kwargs = {k: decode(v) for k, v in request.get("kwargs", {}).items()}
            if op == "submit_tagged":
                result = submit_tagged(*call_args)
            elif op == "force_snapshot":
                cache.replica.force_snapshot()
                result = True
            elif op == "pid":
                result = os.getpid()
            else:
                result = getattr(cache, op)(*call_args, **kwargs)
            reply({"id": rid, "ok": encode(result)})
        except BaseException as exc:  # the test decides what an error means
            reply({"id": rid, "error": type(exc).__name__, "message": str(exc)})

    pool = ThreadPoolExecutor(max_workers=32)
    reply({"id": 0, "ok": "started"})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        request = json.loads(line)
        if request.get("op") == "close":
            cache.close()
            reply({"id": request.get("id"), "ok": True})
            break
        pool.submit(run, request)
    pool.shutdown(wait=False, cancel_futures=True)
    os._exit(0)


if __name__ == "__main__":
    main()
