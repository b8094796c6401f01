"""`raftcache bench`: a load generator against the leader (SET/GET over raw pipelined RESP
connections), with a progress bar and a latency summary."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import Any

import click

from ..resp import ErrorReply, ReplyParser, encode_command
from .common import Target, cluster_options


def _percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else 0.0


async def _run(endpoint: str, auth: tuple[str, ...], clients: int, ops: int, value_size: int, read_ratio: float,
               pipeline: int, keyspace: int, bar: object, tls: Any = None) -> tuple[list[float], int, int, float]:
    host, port = endpoint.rsplit(":", 1)
    host = host.strip("[]")
    tls_options = {"ssl": tls, "server_hostname": host} if tls is not None else {}
    value = b"x" * value_size
    latencies: list[float] = []
    errors = 0
    done = 0
    per_client = [ops // clients + (1 if i < ops % clients else 0) for i in range(clients)]

    async def client(count: int, seed: int) -> None:
        nonlocal errors, done
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection(host, int(port), **tls_options)
        parser = ReplyParser()

        async def replies(n: int) -> list[object]:
            return await parser.read_replies_async(n, lambda: reader.read(1 << 16))

        if auth:
            writer.write(encode_command(b"AUTH", *auth))
            await replies(1)
        remaining = count
        while remaining:
            batch = min(pipeline, remaining)
            payload = []
            for _ in range(batch):
                key = b"bench:%d" % rng.randrange(keyspace)
                payload.append(encode_command(b"GET", key) if rng.random() < read_ratio else encode_command(b"SET", key, value))
            start = time.perf_counter()
            writer.write(b"".join(payload))
            answers = await replies(batch)
            elapsed = time.perf_counter() - start
            latencies.extend([elapsed] * batch)
            errors += sum(isinstance(a, ErrorReply) for a in answers)
            remaining -= batch
            done += batch
        writer.close()

    async def progress() -> None:
        shown = 0
        while True:
            await asyncio.sleep(0.2)
            bar.update(done - shown)  # type: ignore[attr-defined]
            shown = done

    ticker = asyncio.create_task(progress())
    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(n, i) for i, n in enumerate(per_client) if n))
    finally:
        ticker.cancel()
    elapsed = time.perf_counter() - started
    bar.update(done - getattr(bar, "pos", 0))  # type: ignore[attr-defined]
    return latencies, errors, done, elapsed


@click.command()
@cluster_options
@click.option("--clients", default=50, show_default=True, help="concurrent connections")
@click.option("--ops", default=100_000, show_default=True, help="total operations")
@click.option("--value-size", default=16, show_default=True, help="bytes per SET value")
@click.option("--read-ratio", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="fraction of GETs")
@click.option("--pipeline", default=1, show_default=True, type=click.IntRange(1, 10_000), help="commands per round trip")
@click.option("--keyspace", default=100_000, show_default=True, help="distinct keys used")
def bench(target: Target, clients: int, ops: int, value_size: int, read_ratio: float, pipeline: int, keyspace: int) -> None:
    """Load the cluster (through the leader) and summarise throughput and latency."""
    leader = target.leader()
    click.echo(f"bench: {ops} ops, {clients} clients, pipeline {pipeline}, {value_size} B values, "
               f"{read_ratio:.0%} GET, against the leader {leader}", err=True)
    with click.progressbar(length=ops, label="ops", file=sys.stderr) as bar:
        latencies, errors, done, elapsed = asyncio.run(
            _run(leader, target.auth, clients, ops, value_size, read_ratio, pipeline, keyspace, bar, target.tls)
        )
    ms = 1000
    click.echo(f"ops:        {done} in {elapsed:.2f}s")
    click.echo(f"throughput: {done / elapsed:,.0f} ops/s")
    click.echo(
        f"latency:    p50 {_percentile(latencies, 50) * ms:.2f} ms, p95 {_percentile(latencies, 95) * ms:.2f} ms, "
        f"p99 {_percentile(latencies, 99) * ms:.2f} ms (per round trip)"
    )
    click.echo(f"errors:     {errors}")
    if errors:
        raise SystemExit(1)


COMMANDS = [bench]
