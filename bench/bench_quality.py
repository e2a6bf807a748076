"""Benchmark the quality gate in a catch-up: a month of pending days per dataset, validated the
old way (one GX validation per partition) and the new way (``validate_many``: chunks sharing
one validation, each partition's result attributed back), amortised per partition, and the
Data Docs build for the catch-up. Both ways include the gate's set-up (context, suite), not
GX's import, which is measured on its own.

Run: .venv/bin/python bench/bench_quality.py [days]   (single process; numbers depend on machine load)
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta


def main(days: int = 31) -> int:
    t0 = time.perf_counter()
    import great_expectations  # noqa: F401 - the cost being measured

    import_s = time.perf_counter() - t0

    from contrail import nycflights
    from contrail.quality import QualityGate

    catch_up = [nycflights.FIRST_DAY + timedelta(days=i) for i in range(days)]
    print(f"import great_expectations                 {import_s:6.2f} s")
    for dataset in ("flights", "weather"):
        suite = f"{dataset}_raw"
        partitions = [(nycflights.day(dataset, d), d, 1) for d in catch_up]

        t0 = time.perf_counter()
        old_gate = QualityGate()
        old = [old_gate.validate(df, suite=suite, dataset=dataset, dt=d, version=v) for df, d, v in partitions]
        old_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        new_gate = QualityGate()
        new = new_gate.validate_many(partitions, suite=suite, dataset=dataset)
        new_s = time.perf_counter() - t0
        if [r.as_dict() | {"result_json": None} for r in new] != [r.as_dict() | {"result_json": None} for r in old]:
            raise SystemExit(f"{dataset}: the batched verdicts differ from one validation per partition")

        t0 = time.perf_counter()
        new_gate.build_data_docs()
        docs_s = time.perf_counter() - t0

        passed = sum(r.passed for r in new)
        print(f"{dataset:<8} catch-up of {days} days ({passed}/{days} passed):")
        print(f"  one validation per partition   {old_s:7.2f} s  {old_s / days:5.2f} s per partition")
        print(f"  batched (validate_many)        {new_s:7.2f} s  {new_s / days:5.2f} s per partition"
              f"  ({old_s / new_s:.1f}x faster)")
        print(f"  Data Docs build, {days} pages      {docs_s:7.2f} s  {docs_s / days:5.2f} s per partition")
    return 0


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:])))
