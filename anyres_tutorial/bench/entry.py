"""The console entry point of ``python -m anyres_tutorial.bench``: run, print the tables, say where the files
went. Taught in `timing`."""

from __future__ import annotations

import sys

from .report import results_table
from .runner import BenchCheckError, run
from .summary import summary_table


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run, print a table and where the files went. Exit 1 when a check fails."""
    try:
        data = run(argv)
    except BenchCheckError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(results_table(data))
    if any(r["sweep"] == "train" for r in data["results"]):
        print(results_table(data, "train"))
    for u in data["unavailable"]:
        print(f"unavailable: {u['config']}: {u['reason']}")
    for p in data["planning"]:
        print(f"planning {p['method']:>13}: {p['plans_per_s']:>10,.0f} plans/s")
    print("wrote", data["meta"]["out"], *data["plots"], sep="\n  ")
    print("\nsummary\n" + summary_table(data))
    return 0
