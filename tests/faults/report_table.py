"""Turn fault-suite reports (JSON lines) into the markdown table of docs/reliability.md.

    RAFTCACHE_FAULT_REPORTS=/tmp/r.jsonl python -m pytest tests/faults   # repeat for more runs
    python -m tests.faults.report_table /tmp/r.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    runs: dict[str, list[dict]] = defaultdict(list)
    with open(path) as f:
        for line in f:
            report = json.loads(line)
            runs[report["scenario"]].append(report)
    print("| scenario | runs | duration | ops ok / failed / unknown | availability | longest write gap | "
          "linearizability violations | lost writes | duplicated writes | converged |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for scenario, reports in runs.items():
        def span(key: str, fmt: str = "{:.0f}") -> str:
            values = [r[key] for r in reports]
            low, high = min(values), max(values)
            return fmt.format(low) if low == high else f"{fmt.format(low)}-{fmt.format(high)}"

        ok = sum(r["ok"] for r in reports)
        failed = sum(r["failed"] for r in reports)
        unknown = sum(r["unknown"] for r in reports)
        # the bank's atomicity problems are linearizability violations of the bank as one object
        violations = sum(len(r["linearizability_violations"]) + len(r["undecided_keys"])
                         + len(r.get("atomicity_problems", [])) for r in reports)
        lost = sum(len(r["lost_writes"]) for r in reports)
        duplicated = sum(len(r["duplicated_writes"]) + len(r["counter_problems"]) for r in reports)
        converged = all(r["converged"] for r in reports)
        print(f"| {scenario} | {len(reports)} | {span('seconds')} s | {ok} / {failed} / {unknown} | "
              f"{span('availability', '{:.1%}')} | {span('longest_write_gap_s', '{:.1f}')} s | {violations} | {lost} | "
              f"{duplicated} | {'yes' if converged else 'NO'} |")


if __name__ == "__main__":
    main(sys.argv[1])
