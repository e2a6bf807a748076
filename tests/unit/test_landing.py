"""The landing zone against in-process moto: versions, no-ops, the bad-drop corpus, immutability."""

from __future__ import annotations

import json
import pickle
from datetime import date
from typing import Any, Iterator

import pytest

from bad_drops import BadDrop, corpus, csv_text, good_body, good_key, gz
from contrail import catalog, contract, lake, landing
from contrail.landing import BadDropError, LandingResult, MissingDropError, RunInfo

BUCKET = "contrail-test-lake"
DT = date(2013, 1, 1)
DT2 = date(2013, 1, 2)
RUN = RunInfo(dag_id="land", run_id="manual__1", landed_at="2026-01-01T00:00:00+00:00")
RUN2 = RunInfo(dag_id="land", run_id="manual__2", landed_at="2026-01-02T00:00:00+00:00")


@pytest.fixture
def s3(moto_s3: Any) -> Iterator[Any]:
    moto_s3.create_bucket(Bucket=BUCKET)
    yield moto_s3


def drop(s3: Any, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def snapshot(s3: Any, prefix: str) -> dict[str, str]:
    return {o.key: o.etag for o in lake.list_objects(s3, BUCKET, prefix)}


# --------------------------------------------------------------------------- pure rules


def test_inspect_drop_counts_rows_and_fingerprints() -> None:
    body = good_body("flights", DT, rows=5)
    got = landing.inspect_drop(good_key("flights", DT), body, dataset="flights", dt=DT)
    assert got.rows == 5
    assert got.bytes == len(body)
    assert got.sha256 == lake.sha256_hex(body)
    assert got.header_fingerprint == lake.sha256_hex(b"year,month,day,dep_time,sched_dep_time,dep_delay,"
                                                     b"arr_time,sched_arr_time,arr_delay,carrier,flight,"
                                                     b"tailnum,origin,dest,air_time,distance,hour,minute,"
                                                     b"time_hour")


@pytest.mark.parametrize("key, problem", [
    ("/incoming/flights/2013-01-01/a.csv.gz", "absolute"),
    ("incoming/flights/2013-01-01/../2013-01-02/a.csv.gz", "'..'"),
    ("incoming/flights/2013-01-01/a b.csv.gz", "characters"),
    ("incoming/flights/2013-01-02/a.csv.gz", "not under incoming/flights/2013-01-01/"),
    ("incoming/weather/2013-01-01/a.csv.gz", "not under"),
    ("incoming/flights/2013-01-01/", "not under"),
    ("incoming/flights/2013-01-01//a.csv.gz", "empty or '.'"),
    ("incoming/flights/2013-01-01/./a.csv.gz", "empty or '.'"),
])
def test_unsafe_keys_are_refused(key: str, problem: str) -> None:
    with pytest.raises(BadDropError) as info:
        landing.inspect_drop(key, good_body("flights", DT), dataset="flights", dt=DT)
    assert info.value.reason == "unsafe_key"
    assert problem in str(info.value)


def test_safe_nested_key_is_accepted() -> None:
    key = "incoming/flights/2013-01-01/part=1/flights-00.csv.gz"
    assert landing.check_key(key, dataset="flights", dt=DT) is None


@pytest.mark.parametrize("case", corpus("flights", DT) + corpus("weather", DT), ids=lambda c: c.name)
def test_check_drop_names_the_broken_rule(case: BadDrop) -> None:
    dataset = case.bad_key.split("/")[1]
    check = landing.check_drop(case.objects, dataset=dataset, dt=DT)
    assert [(f.key, f.reason) for f in check.failures] == [(case.bad_key, case.reason)]
    assert [g.key for g in check.good] == sorted(set(case.objects) - {case.bad_key})


def test_content_fingerprint_ignores_names_and_order() -> None:
    assert landing.content_fingerprint(["b", "a"]) == landing.content_fingerprint(["a", "b"])
    assert landing.content_fingerprint(["a"]) != landing.content_fingerprint(["a", "b"])


def test_versions_in_sees_orphans_but_only_manifested_versions_are_visible() -> None:
    base = "landing/flights/dt=2013-01-01/"
    keys = [base + "v=0001/f.csv.gz", base + "v=0001/_manifest.json", base + "v=0002/f.csv.gz",
            "landing/flights/dt=2013-01-011/v=0009/_manifest.json"]
    assert landing.versions_in(keys, dataset="flights", dt=DT) == ([1], {1, 2})


def test_bad_drop_error_message_lists_every_failure() -> None:
    first = BadDropError("k1", dataset="flights", dt=DT, reason="empty_file", detail="0 bytes")
    second = BadDropError("k2", dataset="flights", dt=DT, reason="wrong_header")
    error = first.with_failures([first, second])
    assert (error.key, error.reason, error.failures) == ("k1", "empty_file", (first, second))
    assert str(error) == ("bad drop for flights dt=2013-01-01: 2 bad objects: "
                          "'k1': empty_file (0 bytes); 'k2': wrong_header")
    assert isinstance(error, ValueError)
    many = [BadDropError(f"k{i:02d}", dataset="flights", dt=DT, reason="empty_file") for i in range(30)]
    assert str(many[0].with_failures(many)).endswith("'k24': empty_file; and 5 more")
    copy = pickle.loads(pickle.dumps(error))  # executors may ship it across processes
    assert (str(copy), copy.key, [f.reason for f in copy.failures]) == (
        str(error), "k1", ["empty_file", "wrong_header"])


# --------------------------------------------------------------------------- S3 edges


def test_lands_two_dates_as_version_one(s3: Any) -> None:
    drop(s3, {good_key("flights", DT): good_body("flights", DT, rows=4),
              good_key("flights", DT2): good_body("flights", DT2, rows=2),
              good_key("weather", DT): good_body("weather", DT, rows=24)})

    first = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)
    second = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT2, run=RUN)
    weather = landing.land_partition(s3, BUCKET, dataset="weather", dt=DT, run=RUN)

    assert first == LandingResult("flights", DT, 1, f"s3://{BUCKET}/landing/flights/dt=2013-01-01/v=0001/"
                                  "_manifest.json", 4, True)
    assert (second.dt, second.version, second.rows) == (DT2, 1, 2)
    assert (weather.dataset, weather.rows) == ("weather", 24)
    manifest = landing.current_manifest(s3, BUCKET, "flights", DT)
    body = good_body("flights", DT, rows=4)
    assert manifest == {
        "manifest_format": 2, "dataset": "flights", "dt": "2013-01-01", "version": 1,
        "objects": [{"key": "landing/flights/dt=2013-01-01/v=0001/flights_2013-01-01.csv.gz",
                     "bytes": len(body), "sha256": lake.sha256_hex(body), "rows": 4,
                     "content_sha256": lake.sha256_hex(csv_text("flights", DT, 4).encode()),
                     "source_key": good_key("flights", DT)}],
        "rows": 4, "header_fingerprint": landing.header_fingerprint(contract.columns("flights")),
        "content_fingerprint": landing.content_fingerprint(
            [lake.sha256_hex(csv_text("flights", DT, 4).encode())]),
        "source_keys": [good_key("flights", DT)], "empty_source_keys": [],
        "dag_id": "land", "run_id": "manual__1",
        "landed_at": "2026-01-01T00:00:00+00:00", "previous_version": None,
    }
    assert lake.read_bytes(s3, BUCKET, manifest["objects"][0]["key"]) == body
    assert sorted(snapshot(s3, "landing/")) == sorted([
        "landing/flights/dt=2013-01-01/v=0001/_manifest.json",
        "landing/flights/dt=2013-01-01/v=0001/flights_2013-01-01.csv.gz",
        "landing/flights/dt=2013-01-02/v=0001/_manifest.json",
        "landing/flights/dt=2013-01-02/v=0001/flights_2013-01-02.csv.gz",
        "landing/weather/dt=2013-01-01/v=0001/_manifest.json",
        "landing/weather/dt=2013-01-01/v=0001/weather_2013-01-01.csv.gz",
    ])


def test_relanding_the_same_content_is_a_no_op(s3: Any) -> None:
    drop(s3, {good_key("flights", DT): good_body("flights", DT)})
    first = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)
    before = snapshot(s3, "landing/")
    manifest = landing.current_manifest(s3, BUCKET, "flights", DT)

    again = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN2)
    # upstream re-drops the same bytes under another name: still the same content
    s3.delete_object(Bucket=BUCKET, Key=good_key("flights", DT))
    drop(s3, {good_key("flights", DT, "renamed.csv.gz"): good_body("flights", DT)})
    renamed = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN2)

    assert first.created and not again.created and not renamed.created
    assert again == renamed == LandingResult("flights", DT, 1, first.manifest_uri, first.rows, False)
    assert snapshot(s3, "landing/") == before
    assert landing.current_manifest(s3, BUCKET, "flights", DT) == manifest
    assert manifest is not None and manifest["run_id"] == "manual__1"


def test_changed_redrop_becomes_version_two_beside_version_one(s3: Any) -> None:
    drop(s3, {good_key("flights", DT): good_body("flights", DT, rows=3)})
    landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)
    v1 = snapshot(s3, "landing/")
    drop(s3, {good_key("flights", DT): good_body("flights", DT, rows=5)})  # upstream corrects its export

    result = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN2)

    assert (result.version, result.rows, result.created) == (2, 5, True)
    assert result.manifest_uri.endswith("/dt=2013-01-01/v=0002/_manifest.json")
    history = landing.manifest_history(s3, BUCKET, "flights", DT)
    assert [(m["version"], m["rows"], m["previous_version"], m["run_id"]) for m in history] == [
        (1, 3, None, "manual__1"), (2, 5, 1, "manual__2")]
    assert landing.current_manifest(s3, BUCKET, "flights", DT) == history[-1]
    after = snapshot(s3, "landing/")
    assert {k: v for k, v in after.items() if k in v1} == v1  # version 1 untouched
    assert history[1]["objects"][0]["key"] == "landing/flights/dt=2013-01-01/v=0002/flights_2013-01-01.csv.gz"


def test_orphan_version_without_manifest_is_invisible_and_skipped(s3: Any) -> None:
    drop(s3, {good_key("flights", DT): good_body("flights", DT, rows=3)})
    landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)
    # a lander crashed after writing v=0002's data but before its manifest
    s3.put_object(Bucket=BUCKET, Key="landing/flights/dt=2013-01-01/v=0002/flights_2013-01-01.csv.gz",
                  Body=b"half a version")
    assert landing.current_manifest(s3, BUCKET, "flights", DT)["version"] == 1  # type: ignore[index]

    drop(s3, {good_key("flights", DT): good_body("flights", DT, rows=6)})
    result = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN2)

    assert (result.version, result.rows) == (3, 6)
    assert [(m["version"], m["previous_version"]) for m in
            landing.manifest_history(s3, BUCKET, "flights", DT)] == [(1, None), (3, 1)]
    assert lake.read_bytes(s3, BUCKET, "landing/flights/dt=2013-01-01/v=0002/flights_2013-01-01.csv.gz") \
        == b"half a version"


def test_losing_the_manifest_race_to_an_identical_drop_is_a_no_op(s3: Any) -> None:
    """Two landers of one partition: the one whose conditional write loses re-reads and no-ops."""
    drop(s3, {good_key("flights", DT): good_body("flights", DT)})

    class RivalLandsFirst:
        def __init__(self, inner: Any) -> None:
            self.inner, self.fired = inner, False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def put_object(self, **kwargs: Any) -> Any:
            if kwargs["Key"].startswith("landing/") and not self.fired:
                self.fired = True
                landing.land_partition(self.inner, BUCKET, dataset="flights", dt=DT, run=RUN2)
            return self.inner.put_object(**kwargs)

    result = landing.land_partition(RivalLandsFirst(s3), BUCKET, dataset="flights", dt=DT, run=RUN)

    assert (result.version, result.created) == (1, False)
    assert [m["run_id"] for m in landing.manifest_history(s3, BUCKET, "flights", DT)] == ["manual__2"]


def test_missing_drop_is_not_a_bad_drop(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="incoming/flights/2013-01-01/", Body=b"")  # console folder marker
    with pytest.raises(MissingDropError, match="incoming/flights/2013-01-01/"):
        landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)
    assert snapshot(s3, "landing/") == {} and snapshot(s3, "quarantine/") == {}


@pytest.mark.parametrize("case", corpus("flights", DT) + corpus("weather", DT2), ids=lambda c: c.name)
def test_bad_drop_is_quarantined_and_nothing_lands(s3: Any, case: BadDrop) -> None:
    dataset, dt_text = case.bad_key.split("/")[1:3]
    dt = date.fromisoformat(dt_text)
    drop(s3, case.objects)

    with pytest.raises(BadDropError) as info:
        landing.land_partition(s3, BUCKET, dataset=dataset, dt=dt, run=RUN)

    error = info.value
    assert (error.key, error.reason, error.dataset, error.dt) == (case.bad_key, case.reason, dataset, dt)
    message = str(error)
    assert case.bad_key in message and case.reason in message and f"{dataset} dt={dt_text}" in message
    assert snapshot(s3, "landing/") == {}
    body = case.objects[case.bad_key]
    sha = lake.sha256_hex(body)
    folder = f"quarantine/{dataset}/dt={dt_text}/{sha[:12]}/"
    quarantined = sorted(snapshot(s3, "quarantine/"))
    assert all(len(k.encode()) <= 200 for k in quarantined)  # short whatever the source key's length
    assert len(quarantined) == 2 and all(k.startswith(folder) for k in quarantined)
    reason = lake.read_json(s3, BUCKET, folder + "reason.json")
    [failure] = reason["failures"]
    assert (failure["source_key"], failure["reason"]) == (case.bad_key, case.reason)
    assert (reason["sha256"], reason["run_id"], reason["dt"]) == (sha, "manual__1", dt_text)
    assert lake.read_bytes(s3, BUCKET, failure["quarantined_key"]) == body
    assert set(quarantined) == {folder + "reason.json", failure["quarantined_key"]}


def test_every_failure_of_a_drop_is_quarantined_and_listed(s3: Any) -> None:
    cases = [c for c in corpus("flights", DT) if c.reason != "no_rows"]  # no_rows fails a whole drop only
    objects: dict[str, bytes] = {}
    for case in cases:
        objects.update(case.objects)
    drop(s3, objects)

    with pytest.raises(BadDropError) as info:
        landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)

    failures = {f.key: f.reason for f in info.value.failures}
    assert failures == {c.bad_key: c.reason for c in cases}
    assert info.value.key == min(failures)
    listed = sorted(failures)[:landing.MESSAGE_LISTS]  # the rest are counted, and in reason.json
    assert all(key in str(info.value) for key in listed)
    assert str(info.value).endswith(f"and {len(failures) - len(listed)} more")
    reasons = [lake.read_json(s3, BUCKET, key) for key in snapshot(s3, "quarantine/")
               if key.endswith("/reason.json")]
    assert sorted(f["source_key"] for doc in reasons for f in doc["failures"]) == sorted(failures)
    assert snapshot(s3, "landing/") == {}


def test_fixed_drop_lands_after_quarantine(s3: Any) -> None:
    case = next(c for c in corpus("flights", DT) if c.reason == "truncated_gzip")
    drop(s3, case.objects)
    with pytest.raises(BadDropError):
        landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)
    s3.delete_object(Bucket=BUCKET, Key=case.bad_key)  # upstream withdraws the broken file

    result = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN2)

    assert (result.version, result.rows, result.created) == (1, 3, True)
    assert len(snapshot(s3, "quarantine/")) == 2  # kept


def test_asset_extra_is_json() -> None:
    result = LandingResult("flights", DT, 2, "s3://b/landing/flights/dt=2013-01-01/v=0002/_manifest.json",
                           10, True)
    assert json.loads(json.dumps(result.as_asset_extra())) == {
        "dataset": "flights", "dt": "2013-01-01", "version": 2,
        "manifest_uri": "s3://b/landing/flights/dt=2013-01-01/v=0002/_manifest.json", "rows": 10}


class LandingGuard:
    """An S3 client that fails the test on any delete, or any write that could replace a landing/ object."""

    WRITES = ("put_object", "copy_object", "upload_file", "upload_fileobj", "create_multipart_upload",
              "restore_object", "put_object_acl", "put_object_tagging")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.landing_writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name.startswith("delete"):
            raise AssertionError(f"landing code called {name}")
        if name in self.WRITES:
            def guarded(*args: Any, **kwargs: Any) -> Any:
                key = kwargs.get("Key", "")
                if key.startswith("landing/"):
                    assert name == "put_object", f"{name} on {key}"
                    assert kwargs.get("IfNoneMatch") == "*", f"unconditional put on {key}"
                    assert not lake.exists(self.inner, BUCKET, key), f"put to existing {key}"
                    self.landing_writes.append(key)
                return attr(*args, **kwargs)
            return guarded
        return attr


def test_no_code_path_deletes_or_overwrites_landing(s3: Any) -> None:
    guard = LandingGuard(s3)
    drop(s3, {good_key("flights", DT): good_body("flights", DT, rows=3)})
    landing.land_partition(guard, BUCKET, dataset="flights", dt=DT, run=RUN)            # v1
    landing.land_partition(guard, BUCKET, dataset="flights", dt=DT, run=RUN2)           # no-op
    drop(s3, {good_key("flights", DT): good_body("flights", DT, rows=4)})
    landing.land_partition(guard, BUCKET, dataset="flights", dt=DT, run=RUN2)           # v2
    for case in corpus("flights", DT):                                                   # bad drops
        if case.reason == "no_rows":  # a header-only part beside good rows is skipped, not a failure
            continue
        drop(s3, case.objects)
        with pytest.raises(BadDropError):
            landing.land_partition(guard, BUCKET, dataset="flights", dt=DT, run=RUN2)
        s3.delete_object(Bucket=BUCKET, Key=case.bad_key)
    drop(s3, {good_key("flights", DT): good_body("flights", DT, rows=4)})
    landing.land_partition(guard, BUCKET, dataset="flights", dt=DT, run=RUN2)           # no-op again

    assert len(guard.landing_writes) == 4 == len(set(guard.landing_writes))
    with pytest.raises(lake.ImmutableObjectError):  # and the primitive itself refuses a change
        lake.put_immutable(s3, BUCKET, guard.landing_writes[0], b"other bytes")


# --------------------------------------------------------------------------- edge cases


def test_marker_files_beside_the_data_are_ignored(s3: Any) -> None:
    prefix = catalog.incoming_prefix("flights", DT)
    markers = {prefix + "_SUCCESS": b"", prefix + "_manifest.json": b"{}", prefix + ".part-0.crc": b"x",
               prefix + "_tmp/flights.csv.gz": b"half", prefix + "part=1/": b""}
    drop(s3, {**markers, good_key("flights", DT): good_body("flights", DT)})

    result = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)

    assert (result.version, result.rows) == (1, 3)
    manifest = landing.current_manifest(s3, BUCKET, "flights", DT)
    assert manifest is not None and manifest["source_keys"] == [good_key("flights", DT)]
    assert snapshot(s3, "quarantine/") == {}
    check = landing.check_drop({**markers, good_key("flights", DT): good_body("flights", DT)},
                               dataset="flights", dt=DT)
    assert check.ok and check.ignored == tuple(sorted(markers))


def test_markers_alone_are_no_drop(s3: Any) -> None:
    drop(s3, {catalog.incoming_prefix("flights", DT) + "_SUCCESS": b""})
    with pytest.raises(MissingDropError):
        landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)


def test_is_marker_does_not_hide_unsafe_keys() -> None:
    prefix = catalog.incoming_prefix("flights", DT)
    assert landing.is_marker(prefix + "_SUCCESS", dataset="flights", dt=DT)
    assert landing.is_marker(prefix + "sub/.hidden.csv.gz", dataset="flights", dt=DT)
    assert not landing.is_marker(prefix + "../2013-01-02/a.csv.gz", dataset="flights", dt=DT)
    assert not landing.is_marker(prefix + "flights_1.csv.gz", dataset="flights", dt=DT)


def test_recompressing_identical_rows_is_a_no_op(s3: Any) -> None:
    text = csv_text("flights", DT)
    drop(s3, {good_key("flights", DT): gz(text)})
    first = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)
    before = snapshot(s3, "landing/")
    recompressed = gz(text, mtime=1_700_000_000, level=1)
    assert recompressed != gz(text)
    drop(s3, {good_key("flights", DT): recompressed})

    again = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN2)

    assert first.created and not again.created and again.version == 1
    assert snapshot(s3, "landing/") == before
    manifest = landing.current_manifest(s3, BUCKET, "flights", DT)
    assert manifest is not None and manifest["objects"][0]["sha256"] == lake.sha256_hex(gz(text))


def test_a_format_1_manifest_compares_by_bytes(s3: Any) -> None:
    """A version landed before fingerprints moved to decompressed content is not re-landed."""
    body = good_body("flights", DT)
    inspection = landing.inspect_drop(good_key("flights", DT), body, dataset="flights", dt=DT)
    legacy = {"manifest_format": 1, "content_fingerprint": landing.content_fingerprint([inspection.sha256])}
    assert landing.same_content(legacy, [inspection])
    current = {"manifest_format": 2, "content_fingerprint": landing.content_fingerprint([inspection.sha256])}
    assert not landing.same_content(current, [inspection])


def test_over_long_key_is_quarantined_at_once_without_an_orphan_prefix(s3: Any) -> None:
    case = next(c for c in corpus("flights", DT) if c.reason == "key_too_long")
    assert len(case.bad_key.encode()) <= 1024  # S3 took it as an incoming key
    drop(s3, case.objects)
    calls: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            calls.append(name)
            return getattr(s3, name)

    with pytest.raises(BadDropError) as info:
        landing.land_partition(Counting(), BUCKET, dataset="flights", dt=DT, run=RUN)

    assert info.value.reason == "key_too_long" and "1024" in info.value.detail
    assert snapshot(s3, "landing/") == {}  # no v=0001/ orphan
    quarantined = [k for k in snapshot(s3, "quarantine/") if not k.endswith("reason.json")]
    assert len(quarantined) == 1 and len(quarantined[0]) < 200
    assert calls.count("put_object") == 2  # the quarantined copy and its reason, no retried landing write


def test_header_only_part_beside_good_parts_is_skipped(s3: Any) -> None:
    prefix = catalog.incoming_prefix("flights", DT)
    header_only = prefix + "part-0002.csv.gz"
    drop(s3, {prefix + "part-0000.csv.gz": good_body("flights", DT, rows=2),
              prefix + "part-0001.csv.gz": good_body("flights", DT, rows=3, start=10),
              header_only: gz(",".join(contract.columns("flights")) + "\n")})

    result = landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN)

    assert (result.version, result.rows) == (1, 5)
    manifest = landing.current_manifest(s3, BUCKET, "flights", DT)
    assert manifest is not None
    assert manifest["source_keys"] == [prefix + "part-0000.csv.gz", prefix + "part-0001.csv.gz"]
    assert manifest["empty_source_keys"] == [header_only]
    assert not any(k.endswith("part-0002.csv.gz") for k in snapshot(s3, "landing/"))
    s3.delete_object(Bucket=BUCKET, Key=header_only)  # the same rows without the empty part: no-op
    assert not landing.land_partition(s3, BUCKET, dataset="flights", dt=DT, run=RUN2).created


def test_wrong_case_suffix_is_named() -> None:
    key = catalog.incoming_prefix("flights", DT) + "flights.CSV.GZ"
    with pytest.raises(BadDropError) as info:
        landing.inspect_drop(key, good_body("flights", DT), dataset="flights", dt=DT)
    assert info.value.reason == "not_csv_gz" and "wrong case" in info.value.detail
