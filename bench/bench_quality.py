"""Benchmark the quality gate: GX import, per-partition validation, a 30-partition catch-up.

Run: .venv/bin/python bench/bench_quality.py   (single process; numbers depend on machine load)
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import timedelta


def main() -> int:
    t0 = time.perf_counter()
    import great_expectations  # noqa: F401 - the cost being measured

    import_s = time.perf_counter() - t0

    from contrail import nycflights
    from contrail.quality import QualityGate

    days = [nycflights.FIRST_DAY + timedelta(days=i) for i in range(0, 300, 30)]  # 10 days across the year
    frames = {ds: {d: nycflights.day(ds, d) for d in days} for ds in ("flights", "weather")}

    t0 = time.perf_counter()
    gate = QualityGate()
    gate.validate(frames["flights"][days[0]], suite="flights_raw", dataset="flights", dt=days[0], version=1)
    first_s = time.perf_counter() - t0

    per: dict[str, list[float]] = {"flights_raw": [], "weather_raw": []}
    for suite, ds in (("flights_raw", "flights"), ("weather_raw", "weather")):
        for d in days:
            t0 = time.perf_counter()
            gate.validate(frames[ds][d], suite=suite, dataset=ds, dt=d, version=1)
            per[suite].append(time.perf_counter() - t0)

    catch_up_days = [nycflights.FIRST_DAY + timedelta(days=i) for i in range(30)]
    catch_up_frames = [(d, nycflights.day("flights", d)) for d in catch_up_days]
    t0 = time.perf_counter()
    catch_gate = QualityGate()
    reports = [catch_gate.validate(df, suite="flights_raw", dataset="flights", dt=d, version=1)
               for d, df in catch_up_frames]
    catch_up_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    site = catch_gate.build_data_docs()
    docs_s = time.perf_counter() - t0

    print(f"import great_expectations          {import_s:6.2f} s")
    print(f"first validation (context + suite) {first_s:6.2f} s")
    for suite, times in per.items():
        print(f"{suite:<12} median of {len(times):2d} days   {statistics.median(times):6.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f})")
    passed = sum(r.passed for r in reports)
    print(f"catch-up: 30 flights partitions in one gate {catch_up_s:6.2f} s "
          f"({catch_up_s / 30:.2f} s each, {passed}/30 passed, incl. context set-up)")
    print(f"Data Docs build for 30 results       {docs_s:6.2f} s -> {site / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
