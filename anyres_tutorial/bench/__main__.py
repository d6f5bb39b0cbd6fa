"""``python -m anyres_tutorial.bench``: run, print the tables, say where the files went (``--help``)."""

from __future__ import annotations

import sys

from .results import results_table, summary_table
from .runner import run
from .timing import BenchCheckError


def main(argv: list[str] | None = None) -> int:
    """Run, print the tables and where the files went; exit 1 when a check fails."""
    try:
        data = run(argv)
    except BenchCheckError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(results_table(data))
    if any(r["sweep"] == "train" for r in data["results"]):
        print(results_table(data, "train"))
    for p in data["planning"]:
        print(f"planning {p['method']:>13}: {p['plans_per_s']:>10,.0f} plans/s")
    print("wrote", data["meta"]["out"], *data["plots"], sep="\n  ")
    if data["meta"].get("costs_saved_to"):
        print("cost model for 'auto' saved to", data["meta"]["costs_saved_to"])
    print("\nsummary\n" + summary_table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
