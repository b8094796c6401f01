"""Where the CPU went during one benchmark run: per server process, its busiest thread, and the
whole machine, from /proc (Linux), read before and after the run.

    probe = CpuProbe({"leader": pid1, "n2": pid2})
    ... the run ...
    usage = probe.stop()   # {"wall_s", "machine_busy_pct", "procs": {name: {"cpu_pct", "busiest_thread_pct"}}}

Percentages are of one core over the wall time (a process using two full cores shows 200%);
`machine_busy_pct` is of all cores together (100% = every core busy, whoever used it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def _ticks(stat_path: Path) -> int:
    """utime + stime of a /proc/.../stat file (fields 14 and 15; comm may hold spaces)."""
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _threads(pid: int) -> dict[int, int]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = _ticks(task / "stat")
        except (OSError, IndexError, ValueError):  # a thread that just ended
            pass
    return out


def _machine() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat's first line."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return total - idle, total


class CpuProbe:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.machine0 = _machine()
        self.before = {name: (_ticks(Path(f"/proc/{pid}/stat")), _threads(pid)) for name, pid in pids.items()}

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        busy1, total1 = _machine()
        busy0, total0 = self.machine0
        procs = {}
        for name, pid in self.pids.items():
            try:
                total_ticks = _ticks(Path(f"/proc/{pid}/stat"))
                threads = _threads(pid)
            except OSError:  # the process died during the run
                procs[name] = {"cpu_pct": None, "busiest_thread_pct": None}
                continue
            ticks0, threads0 = self.before[name]
            busiest = max((t - threads0.get(tid, 0) for tid, t in threads.items()), default=0)
            procs[name] = {"cpu_pct": 100 * (total_ticks - ticks0) / TICK / wall,
                           "busiest_thread_pct": 100 * busiest / TICK / wall}
        return {"wall_s": wall, "machine_busy_pct": 100 * (busy1 - busy0) / max(total1 - total0, 1), "procs": procs}
