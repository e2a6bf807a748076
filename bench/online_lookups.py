"""The hot tier measured against the S3 look-ups it replaced, in one run, on loopback (a moto
server, as the local stack's emulator): micro-batch freshness with each source, the online
store's size for a year of features, and look-ups per second. Called by
``bench_freshness.py --paths lookups`` (no Airflow stack needed).

A year of look-up inputs is computed in pandas from the real 2013 flights and weather with the
batch job's definitions of the columns the look-ups read (``dt``, keys, ``label`` — 1 if
``arr_delay >= 15``, null when cancelled or diverted — and the origin weather at ``time_hour``),
published as one partition a day, and the store refreshed from them by the feature stage's code.
"""

from __future__ import annotations

import io
import json
import math
import socket
import statistics
import time
from datetime import date, datetime, timedelta

BUCKET_S3, BUCKET_STORE, TABLE, FEATURE_SET = "bench-s3-lookups", "bench-online-store", "bench-online", "flights_v1"


def year_rows():
    import numpy as np
    import pandas as pd

    from contrail import nycflights
    from contrail_spark import transforms

    flights, weather = nycflights.load("flights"), nycflights.load("weather")
    rows = pd.DataFrame({
        "dt": pd.to_datetime(flights[["year", "month", "day"]]).dt.strftime("%Y-%m-%d"),
        "carrier": flights["carrier"], "origin": flights["origin"],
        "route": flights["origin"] + "-" + flights["dest"],
        "time_hour": pd.to_datetime(flights["time_hour"], utc=True),
    })
    arrived = flights["arr_delay"].notna() & flights["dep_time"].notna()
    rows["label"] = pd.array(np.where(arrived, (flights["arr_delay"] >= 15).astype(int), 0), dtype="Int64")
    rows.loc[~arrived.to_numpy(), "label"] = pd.NA
    cols = list(transforms.WEATHER_VALUE_COLUMNS)
    obs = weather[["origin", "time_hour", *cols]].copy()
    obs["time_hour"] = pd.to_datetime(obs["time_hour"], utc=True)
    obs = obs.sort_values(["origin", "time_hour", *cols], na_position="last").drop_duplicates(["origin", "time_hour"])
    return rows.merge(obs, on=["origin", "time_hour"], how="left")


def item_bytes(item: dict) -> int:
    """An item's size by DynamoDB's rules: attribute names + values (numbers ~1 byte per 2 digits + 1)."""
    def value(v: dict) -> int:
        (kind, x), = v.items()
        if kind == "S":
            return len(x.encode())
        if kind == "N":
            digits = len(x.replace("-", "").replace(".", "").lstrip("0").split("e")[0].split("E")[0]) or 1
            return math.ceil(digits / 2) + 1
        if kind == "L":
            return 3 + sum(value(e) + 1 for e in x)
        raise ValueError(kind)
    return sum(len(name.encode()) + value(v) for name, v in item.items())


def _pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Model:
    """Deterministic stand-in champion (the model's cost is the same for both sources)."""

    def predict_proba(self, x):
        import numpy as np

        p = np.clip((1 - x["carrier_ontime_7d"].fillna(0.5)) * 0.6 + x["temp"].fillna(40.0) / 1000.0, 0, 1)
        return np.column_stack([1 - p.to_numpy(), p.to_numpy()])


def run(day: date, hours: tuple[int, int] = (6, 12), every_min: int = 5) -> None:
    import boto3
    import pandas as pd
    from moto.server import ThreadedMotoServer

    from contrail import catalog, nycflights, online_store
    from contrail.simulate import encode_event, schedule_events
    from contrail.stream import ledger, lookups

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the moto server logs every request
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    kw = {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1",
          "aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
    s3, dynamodb = boto3.client("s3", **kw), boto3.client("dynamodb", **kw)
    try:
        for bucket in (BUCKET_S3, BUCKET_STORE):
            s3.create_bucket(Bucket=bucket)
        online_store.ensure_table(dynamodb, TABLE)
        rows = year_rows()
        t0 = time.monotonic()
        for dt, part in rows.groupby("dt"):
            partition = catalog.features_partition(FEATURE_SET, dt)
            buf = io.BytesIO()
            part.to_parquet(buf, index=False)
            key = catalog.build_prefix(partition, "b1") + catalog.part_name(0)
            s3.put_object(Bucket=BUCKET_S3, Key=key, Body=buf.getvalue())
            catalog.publish_partition(s3, BUCKET_S3, partition, {"dt": dt, "build": "b1", "parts": [key]})
        days = sorted(date.fromisoformat(d) for d in rows["dt"].unique())
        print(f"published {len(days)} daily partitions of look-up inputs ({len(rows)} flights): "
              f"{time.monotonic() - t0:.0f} s")
        t0 = time.monotonic()
        summary = online_store.refresh(s3, dynamodb, BUCKET_S3, table=TABLE, feature_set=FEATURE_SET,
                                       changed=days, ttl_days=45)
        print(f"online store refresh for the year: {summary['asof_days']} as-of days, {summary['items']} items, "
              f"{time.monotonic() - t0:.0f} s")
        n_items, n_bytes, markers = 0, 0, 0
        for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE):
            for item in page["Items"]:
                n_items += 1
                n_bytes += item_bytes(item)
                markers += item[online_store.ONLINE_ENTITY]["S"] == online_store.ONLINE_MARKER
        print(f"online store for a year: {n_items} items ({markers} as-of markers), {n_bytes / 1e6:.1f} MB "
              f"by DynamoDB's item-size rules, {n_bytes / max(n_items, 1):.0f} B/item, "
              f"{(n_items - markers) / max(markers, 1):.0f} entities per as-of day")

        spark = lookups.local_spark()
        scorer = ledger.Scorer(model=_Model(), model_name="bench", model_version="1", run_id="r", threshold=0.5)
        start, end = datetime.combine(day, datetime.min.time()) + timedelta(hours=hours[0]), \
            datetime.combine(day, datetime.min.time()) + timedelta(hours=hours[1])
        events = list(schedule_events(nycflights.load("flights"), start, end))
        groups: dict[datetime, list] = {}
        for e in events:
            when = datetime.fromisoformat(e["event_time"])
            groups.setdefault(when.replace(minute=when.minute - when.minute % every_min), []).append(e)
        # warm the Spark session once, so neither source pays the JVM's first job
        lookups.schedule_frame(events[:5], spark)
        fresh = {"store": [], "s3": []}
        join_s = {"store": [], "s3": []}
        calls = []
        for i, (when, batch) in enumerate(sorted(groups.items())):
            body = b"".join(encode_event(e) for e in batch)
            key = f"stream/flights/{when:%Y/%m/%d/%H}/bench-{when:%H%M}"
            order = ("store", "s3") if i % 2 == 0 else ("s3", "store")
            for source in order:
                bucket = BUCKET_STORE if source == "store" else BUCKET_S3
                put = time.monotonic()
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                # a new look-up source per micro-batch, as each stream run builds its own
                if source == "store":
                    source_obj = online_store.OnlineFeatures(dynamodb, TABLE)
                else:
                    source_obj = lookups.BatchFeatures(s3, BUCKET_S3, FEATURE_SET)
                timed = _Timed(source_obj)
                ledger.process_keys(s3, bucket, [key], scorer=scorer, lookups=timed,
                                    processed_time="2026-12-02T00:00:00.000+00:00", spark=spark)
                fresh[source].append(time.monotonic() - put)
                join_s[source].append(timed.seconds)
                if source == "store":
                    calls.append(source_obj.calls)
        n = sum(len(b) for b in groups.values())
        print(f"micro-batches: {len(groups)} objects ({every_min}-min buffers), {n} events of {day} "
              f"{hours[0]:02d}:00-{hours[1]:02d}:00, each scored once per source")
        for source, label in (("store", "online store (DynamoDB BatchGetItem)"), ("s3", "S3 look-ups (Parquet partitions)")):
            f, j = fresh[source], join_s[source]
            print(f"freshness, object put -> predictions written, {label}: p50={_pct(f, .5):.2f} s "
                  f"p95={_pct(f, .95):.2f} s; look-up step p50={_pct(j, .5) * 1000:.0f} ms p95={_pct(j, .95) * 1000:.0f} ms")
        print(f"DynamoDB requests per micro-batch: max {max(calls)}, mean {statistics.fmean(calls):.2f}")
        a = ledger.read_predictions(s3, BUCKET_STORE, "bench").sort_values("event_id").reset_index(drop=True)
        b = ledger.read_predictions(s3, BUCKET_S3, "bench").sort_values("event_id").reset_index(drop=True)
        same = a[["event_id", "probability", "features_dt"]].equals(b[["event_id", "probability", "features_dt"]])
        print(f"predictions equal across sources: {same} ({len(a)} vs {len(b)} rows)")

        # look-ups per second: a whole day's events (about 1,000) in one join, repeated
        schedule = lookups.schedule_frame(list(schedule_events(nycflights.load("flights"),
                                                               datetime.combine(day, datetime.min.time()),
                                                               datetime.combine(day + timedelta(days=1), datetime.min.time()))), spark)
        for label, make in (("online store", lambda: online_store.OnlineFeatures(dynamodb, TABLE)),
                            ("S3 look-ups", lambda: lookups.BatchFeatures(s3, BUCKET_S3, FEATURE_SET))):
            times = []
            for _ in range(5):
                src = make()
                t0 = time.monotonic()
                src.join(schedule)
                times.append(time.monotonic() - t0)
            best = statistics.median(times)
            extra = ""
            if label == "online store":
                keys = sum(len(online_store.OnlineFeatures._entities(r)) + 1 for _, r in schedule.groupby("dt"))
                extra = f", {keys / best:.0f} keys/s ({keys} keys in {math.ceil(keys / online_store.KEY_BATCH)} BatchGetItem calls)"
            print(f"look-ups per second, {label}: {len(schedule) / best:.0f} events/s "
                  f"(a day's {len(schedule)} events in {best * 1000:.0f} ms, median of 5){extra}")
        spark.stop()
    finally:
        server.stop()


class _Timed:
    """Wraps a look-up source, timing its join (the only step that differs between sources)."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0

    def join(self, schedule):
        t0 = time.monotonic()
        try:
            return self.inner.join(schedule)
        finally:
            self.seconds += time.monotonic() - t0
