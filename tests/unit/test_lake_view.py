"""The Lake view: its data from a crafted lake (asserted exactly), a year read in time, one
day's detail, the extra links' targets, and every plugin route refused to an anonymous caller."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from contrail import catalog, lake
from contrail.ui import lakeview

ZONES = lakeview.Zones(("flights", "weather"), "flight_delay_v1", "delay_model")
BUCKET = "lake"


def _keys_for_crafted_lake() -> list[str]:
    """Jan 1 validated and built and scored; Jan 2 landed only; Jan 3 quarantined by quality;
    Jan 4 rejected by landing; Jan 5 quarantined at v1 and healed at v2, built; Jan 6 validated
    with warnings; Jan 7 validated with warnings at v1, then a v2 landed and not judged yet."""
    fs, model = ZONES.feature_set, ZONES.model_name
    keys = []
    for dt in ("2013-01-01", "2013-01-02", "2013-01-03", "2013-01-05", "2013-01-06", "2013-01-07"):
        keys += [catalog.landing_manifest_key("flights", dt, 1), catalog.landing_prefix("flights", dt, 1) + "a.csv.gz"]
    keys += [catalog.landing_manifest_key("flights", "2013-01-05", 2), catalog.landing_manifest_key("flights", "2013-01-07", 2)]
    keys += [catalog.landing_prefix("flights", "2013-01-02", 2) + "orphan.csv.gz"]  # a crashed lander's
    for dt, v in (("2013-01-01", 1), ("2013-01-03", 1), ("2013-01-05", 1), ("2013-01-05", 2), ("2013-01-06", 1),
                  ("2013-01-07", 1)):
        keys.append(catalog.quality_result_key("flights", dt, v))
    for dt, v in (("2013-01-03", 1), ("2013-01-05", 1)):
        keys += [catalog.quality_quarantine_prefix("flights", dt, v) + catalog.REASON,
                 catalog.quality_quarantine_prefix("flights", dt, v) + "a.csv.gz"]
    keys += [catalog.landing_quarantine_key("flights", "2013-01-04", "ab" * 32, "flights.csv.gz"),
             catalog.landing_quarantine_key("flights", "2013-01-04", "ab" * 32, catalog.REASON)]
    keys += [catalog.validated_pointer_key("flights", dt) for dt in sorted(POINTERS)]
    for dt in ("2013-01-01", "2013-01-05"):
        part = catalog.features_partition(fs, dt)
        keys += [part + catalog.MANIFEST, part + catalog.SUCCESS, catalog.build_prefix(part, "b1") + "part-0.parquet"]
    staged = catalog.features_partition(fs, "2013-01-02")
    keys += [catalog.build_prefix(staged, "b2") + catalog.part_name(0)]  # staged, gate refused it
    pred = catalog.predictions_partition(model, "2013-01-01")
    keys += [pred + catalog.MANIFEST, pred + catalog.SUCCESS,
             catalog.build_prefix(pred, catalog.predictions_build("3", "d1")) + catalog.part_name(0),
             catalog.build_prefix(pred, catalog.predictions_build("2", "d0")) + catalog.part_name(0)]
    return keys


# the validated pointers' fields: Jan 5's names the healed v2; Jan 7's still the judged v1
POINTERS = {"2013-01-01": {"version": 1, "warnings": 0}, "2013-01-05": {"version": 2, "warnings": 1},
            "2013-01-06": {"version": 1, "warnings": 2}, "2013-01-07": {"version": 1, "warnings": 3}}


def _listings(keys: list[str]) -> dict[str, list[str]]:
    return {p: [k for k in keys if k.startswith(p)] for p in ZONES.prefixes()}


def test_the_view_of_a_crafted_lake_is_exact():
    view = lakeview.build_view(_listings(_keys_for_crafted_lake()), ZONES, {"flights": POINTERS})
    flights = view["rows"]["flights"]
    assert {dt: c["status"] for dt, c in flights.items()} == {
        "2013-01-01": "validated", "2013-01-02": "landed", "2013-01-03": "quarantined",
        "2013-01-04": "quarantined", "2013-01-05": "healed", "2013-01-06": "warned", "2013-01-07": "landed"}
    assert flights["2013-01-01"] == {"status": "validated", "versions": [1], "current": 1, "quarantined": [],
                                     "judged": [1], "rejected_drops": 0, "warnings": 0}
    assert flights["2013-01-06"] == {"status": "warned", "versions": [1], "current": 1, "quarantined": [],
                                     "judged": [1], "rejected_drops": 0, "warnings": 2}
    # the pointer names v1, the day's current version is v2: not judged, so no warnings of its own
    assert flights["2013-01-07"] == {"status": "landed", "versions": [1, 2], "current": 2, "quarantined": [],
                                     "judged": [1], "rejected_drops": 0, "warnings": None}
    assert flights["2013-01-05"] == {"status": "healed", "versions": [1, 2], "current": 2, "quarantined": [1],
                                     "judged": [1, 2], "rejected_drops": 0, "warnings": 1}
    assert flights["2013-01-02"]["versions"] == [1]  # the orphan v2 (no manifest) is not a version
    assert flights["2013-01-04"] == {"status": "quarantined", "versions": [], "current": None, "quarantined": [],
                                     "judged": [], "rejected_drops": 1, "warnings": None}
    assert view["rows"]["weather"] == {}
    assert view["rows"]["features/flight_delay_v1"] == {
        "2013-01-01": {"status": "built", "builds": ["b1"]},
        "2013-01-02": {"status": "staged", "builds": ["b2"]},
        "2013-01-05": {"status": "built", "builds": ["b1"]}}
    assert view["rows"]["predictions/delay_model"] == {
        "2013-01-01": {"status": "scored", "builds": ["m2-d0", "m3-d1"], "model_versions": ["2", "3"]}}
    assert view["days"] == [f"2013-01-0{i}" for i in range(1, 8)]
    assert view["counts"]["flights"] == {"validated": 1, "landed": 2, "quarantined": 2, "healed": 1, "warned": 1}
    # without the pointers' fields a validated day cannot say it had warnings
    assert lakeview.build_view(_listings(_keys_for_crafted_lake()), ZONES)["rows"]["flights"]["2013-01-06"][
        "status"] == "validated"


def test_day_entries_reads_every_layout():
    zone = catalog.quarantine_zone("flights")
    entries = catalog.day_entries(zone, [
        catalog.landing_quarantine_key("flights", "2013-01-04", "0123456789ab" + "0" * 52, "x.csv"),
        catalog.quality_quarantine_prefix("flights", "2013-01-04", 7) + catalog.REASON,
        "quarantine/flights/not-a-day/x"])
    assert list(entries) == ["2013-01-04"]
    assert entries["2013-01-04"].rejects == {"0123456789ab"} and entries["2013-01-04"].versions == {7}
    assert catalog.model_version_of_build(catalog.predictions_build("12", "abc")) == "12"
    assert catalog.model_version_of_build("b1") is None


def test_months_span_the_calendar():
    assert lakeview.months(["2013-11-30", "2014-02-01"]) == ["2013-11", "2013-12", "2014-01", "2014-02"]
    assert lakeview.months([]) == []


def _put(s3, key: str, body: bytes = b"{}") -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)



def test_a_year_is_read_within_two_seconds_and_a_day_shows_why(moto_s3):
    """A year of both datasets, built and scored, with one day quarantined and one validated
    with warnings (about 8,800 keys, and the stream's micro-batch predictions beside them).

    The budget: one LIST per zone's day partitions (paginated); the validated pointers are read
    once (the first load), never again while their ETags stand. The time asserted is the CPU the
    client and the in-process emulator spend together on a warm load (wall time on a loaded
    machine says nothing); ``bench/bench_lake_view.py`` measures the HTTP endpoint's wall time
    on the stack's emulator."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    s3 = moto_s3
    s3.create_bucket(Bucket=BUCKET)
    keys = []
    for i in range(365):
        dt = (date(2013, 1, 1) + timedelta(days=i)).isoformat()
        for ds in ZONES.datasets:
            keys += [catalog.landing_manifest_key(ds, dt, 1), catalog.landing_prefix(ds, dt, 1) + f"{ds}.csv.gz",
                     catalog.quality_result_key(ds, dt, 1), catalog.validated_pointer_key(ds, dt)]
        for part, build in ((catalog.features_partition(ZONES.feature_set, dt), "b1"),
                            (catalog.predictions_partition(ZONES.model_name, dt), "m1-d")):
            keys += [part + catalog.MANIFEST, part + catalog.SUCCESS, catalog.build_prefix(part, build) + "p"]
        stream = [catalog.stream_predictions_key(ZONES.model_name, dt, f"stream/flights/{dt}/{h:02d}/o") for h in (0, 12)]
    bad, warned = "2013-06-15", "2013-07-04"
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for key in keys + stream:  # straight into the emulator's store: 9,000 HTTP PUTs would take minutes here
        backend.put_object(BUCKET, key, lake.json_bytes({"version": 1, "warnings": 0}) if key.endswith(catalog.POINTER)
                           else b"{}")
    lake.put_json(s3, BUCKET, catalog.validated_pointer_key("weather", warned), {"version": 1, "warnings": 2})
    s3.delete_object(Bucket=BUCKET, Key=catalog.validated_pointer_key("flights", bad))
    lake.put_json(s3, BUCKET, catalog.quality_result_key("flights", bad, 1), {
        "passed": False, "row_count": 900, "run_id": "manual__1",
        "failures": [{"severity": "critical", "expectation": "expect_column_values_to_be_in_set",
                      "columns": ["origin"], "unexpected_count": 50, "why": "NYC airports only"}], "warnings": []})
    lake.put_json(s3, BUCKET, catalog.quality_quarantine_prefix("flights", bad, 1) + catalog.REASON, {"stage": "quality"})
    page = catalog.validation_pages_prefix("manual__1") + (
        f"flights_raw/{catalog.validation_run_name('flights', bad, 1)}/20130615T000000Z/abc.html")
    _put(s3, page, b"<html/>")
    lake.put_json(s3, BUCKET, catalog.features_partition(ZONES.feature_set, bad) + catalog.MANIFEST,
                  {"dt": bad, "parts": ["features/x/b=b1/p"], "build": "b1", "job_version": "0.4.0+abc"})
    lake.put_json(s3, BUCKET, catalog.predictions_partition(ZONES.model_name, bad) + catalog.MANIFEST,
                  {"dt": bad, "parts": ["predictions/x/b=m1-d/p"], "build": "m1-d", "model_version": "1"})

    s3 = lakeview.listing_client({"region_name": "us-east-1"})
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    cache = lakeview.PointerCache()
    lakeview.read_view(s3, BUCKET, ZONES, cache)
    pages = sum(-(-sum(1 for k in keys if k.startswith(catalog.day_partitions_prefix(p))) // 1000) or 1
                for p in ZONES.prefixes())
    assert sorted(calls) == ["GetObject"] * 729 + ["ListObjectsV2"] * pages  # cold: every pointer once
    calls.clear()
    started, cpu = time.perf_counter(), time.process_time()
    view = lakeview.read_view(s3, BUCKET, ZONES, cache)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"\nLake view of a year, warm: {elapsed:.3f} s wall, {cpu:.3f} s CPU, {len(calls)} requests, {len(keys)} keys")
    assert calls == ["ListObjectsV2"] * pages  # warm: no GET, and the stream's predictions not listed
    assert cpu < 4.0
    assert len(view["days"]) == 365 and view["counts"]["flights"] == {"validated": 364, "quarantined": 1}
    assert view["counts"]["weather"] == {"validated": 364, "warned": 1}
    assert view["rows"]["weather"][warned]["warnings"] == 2
    assert view["counts"]["predictions/delay_model"] == {"scored": 365}

    detail = lakeview.day_detail(s3, BUCKET, ZONES, bad)
    flights = detail["datasets"][0]["versions"][0]
    assert flights["passed"] is False and flights["data_docs"] == page
    assert flights["reason"] == catalog.quality_quarantine_prefix("flights", bad, 1) + catalog.REASON
    assert flights["failures"] == ["[critical] expect_column_values_to_be_in_set(origin): 50 unexpected"
                                   " — NYC airports only"]
    assert detail["features"]["job_version"] == "0.4.0+abc" and detail["features"]["build"] == "b1"
    assert detail["predictions"]["model_version"] == "1"


def test_a_day_with_warnings_is_its_own_colour_and_its_page_names_the_rules(moto_s3):
    """Through moto: the pointer's count colours the day (read once per ETag: a replaced pointer
    is read again, an unchanged one never), and the day's page lists each warning rule with
    how many values broke it."""
    from contrail.ui import pages

    s3 = moto_s3
    s3.create_bucket(Bucket=BUCKET)
    dt = "2013-03-03"
    warnings = [{"severity": "warning", "expectation": "expect_column_values_to_be_between",
                 "columns": ["dep_delay"], "unexpected_count": 3, "element_count": 912, "why": "delays over 10 h"},
                {"severity": "warning", "expectation": "expect_column_proportion_of_unique_values_to_be_between",
                 "columns": ["tailnum"], "unexpected_count": None, "why": ""}]
    for ds in ZONES.datasets:
        _put(s3, catalog.landing_manifest_key(ds, dt, 1))
        lake.put_json(s3, BUCKET, catalog.quality_result_key(ds, dt, 1), {
            "passed": True, "row_count": 912, "run_id": "r1", "failures": [],
            "warnings": warnings if ds == "flights" else []})
        lake.put_json(s3, BUCKET, catalog.validated_pointer_key(ds, dt), {
            "dataset": ds, "dt": dt, "version": 1, "warnings": len(warnings) if ds == "flights" else 0})
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    cache = lakeview.PointerCache()
    view = lakeview.read_view(s3, BUCKET, ZONES, cache)
    assert {ds: view["rows"][ds][dt]["status"] for ds in ZONES.datasets} == {"flights": "warned", "weather": "validated"}
    assert view["rows"]["flights"][dt]["warnings"] == 2 and calls.count("GetObject") == 2
    calls.clear()
    lakeview.read_view(s3, BUCKET, ZONES, cache)
    assert "GetObject" not in calls
    # the weather day is judged again with a warning: its pointer changes, and only it is read
    lake.put_json(s3, BUCKET, catalog.validated_pointer_key("weather", dt),
                  {"dataset": "weather", "dt": dt, "version": 1, "warnings": 1})
    calls.clear()
    view = lakeview.read_view(s3, BUCKET, ZONES, cache)
    assert calls.count("GetObject") == 1 and view["rows"]["weather"][dt]["status"] == "warned"

    html = pages.lake_page("/contrail", view, bucket=BUCKET, elapsed_s=0.1)
    assert f"data-dt='{dt}' data-status='warned' style='background:{pages.COLOURS['warned']}'" in html
    assert "validated with warnings</span>" in html  # the legend
    assert f"flights {dt}: validated with warnings (2 warning(s); versions v1)" in html
    assert pages.COLOURS["warned"] not in (pages.COLOURS["validated"], pages.COLOURS["quarantined"])

    detail = lakeview.day_detail(s3, BUCKET, ZONES, dt)
    flights = detail["datasets"][0]["versions"][0]
    assert flights["passed"] is True and flights["failures"] == []
    assert flights["warnings"] == [
        "[warning] expect_column_values_to_be_between(dep_delay): 3 of 912 unexpected — delays over 10 h",
        "[warning] expect_column_proportion_of_unique_values_to_be_between(tailnum)"]
    day = pages.day_page("/contrail", detail, feature_set=ZONES.feature_set, model_name=ZONES.model_name)
    assert "passed with 2 warning(s)" in day
    assert "<div class='warn'>[warning] expect_column_values_to_be_between(dep_delay): 3 of 912 unexpected" in day


def test_extra_links_lead_to_the_partition_page_the_gate_results_and_mlflow():
    from contrail.ui.app import link_kind, link_targets

    assert link_kind("quality", "gate_flights") == ("data_docs", "validate_flights")
    assert link_kind("features", "publish") == ("gate_results", "plan")
    assert link_kind("training", "train") == ("mlflow_run", "train")
    assert link_kind("scoring", "score") == ("model_version", "score")
    assert link_kind("landing_flights", "land") is None
    kw = {"feature_set": "fs", "model_name": "m", "mlflow_url": "http://127.0.0.1:5000"}
    reports = [{"dataset": "flights", "dt": "2013-01-01", "version": 1, "passed": True, "data_docs_page": "p1"},
               {"dataset": "flights", "dt": "2013-01-05", "version": 1, "passed": False, "data_docs_page": "p5"}]
    assert [t for _, t in link_targets("data_docs", "validate_flights", reports, **kw)] == ["p5"]  # the failure
    assert [t for _, t in link_targets("data_docs", "validate_flights", reports[:1] * 2, **kw)] == ["p1", "p1"]
    assert link_targets("gate_results", "publish", {"build": "b9", "targets": ["2013-01-02"]}, **kw) == [
        ("features gate dt=2013-01-02 build b9", catalog.features_gate_result_key("fs", "2013-01-02", "b9"))]
    assert link_targets("mlflow_run", "train", {"run_id": "r1", "experiment_id": "4"}, **kw)[0][1] == \
        "http://127.0.0.1:5000/#/experiments/4/runs/r1"
    assert link_targets("model_version", "score", {"model_name": "m", "model_version": "3"}, **kw)[0][1] == \
        "http://127.0.0.1:5000/#/models/m/versions/3"
    assert link_targets("model_version", "score", None, **kw) == []


def test_every_plugin_route_refuses_an_anonymous_request():
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.app import init_auth_manager

    from contrail.ui.app import create_app

    init_auth_manager()  # Airflow's own (SimpleAuthManager here), as the API server sets it up
    app = create_app()
    client = TestClient(app)
    routes = [r.path for r in app.routes]  # every route, including any FastAPI adds by itself
    assert len(routes) == 7
    for path in routes:
        url = (path.replace("{dt}", "2013-01-01").replace("{key:path}", "landing/x")
               .replace("{path:path}", "index.html").replace("{dag_id}", "quality")
               .replace("{run_id}", "r").replace("{task_id}", "validate_flights"))
        anonymous = client.get(url)
        forged = client.get(url, cookies={"_token": "not-a-jwt"})
        assert anonymous.status_code in (401, 403), (url, anonymous.status_code)
        assert forged.status_code in (401, 403), (url, forged.status_code)


def test_routes_take_only_their_path_parameters():
    """A route whose ``Request`` is not resolved would ask for it as a query field (422)."""
    from contrail.ui.app import create_app

    for route in create_app().routes:
        assert not route.dependant.query_params, (route.path, [p.name for p in route.dependant.query_params])


def test_the_warm_up_starts_once_on_the_first_http_request_without_holding_it():
    import asyncio
    import threading

    from contrail.ui.app import WarmUpOnFirstRequest

    release, ran = threading.Event(), []

    def warm():
        ran.append(threading.current_thread().name)
        release.wait(10)

    seen: list[str] = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    middleware = WarmUpOnFirstRequest(inner, warm=warm, name="test warm-up")
    asyncio.run(middleware({"type": "lifespan"}, None, None))
    assert middleware.thread is None  # start-up events start nothing
    asyncio.run(middleware({"type": "http"}, None, None))  # returns while warm() still runs
    asyncio.run(middleware({"type": "http"}, None, None))
    assert seen == ["lifespan", "http", "http"] and middleware.thread.is_alive()
    release.set()
    middleware.thread.join(10)
    assert ran == ["test warm-up"]  # once, in its own thread


def test_a_failed_warm_up_is_logged_and_leaves_requests_alone(caplog):
    import asyncio
    import logging

    from contrail.ui.app import WarmUpOnFirstRequest

    def warm():
        raise ConnectionError("emulator down")

    async def inner(scope, receive, send):
        pass

    middleware = WarmUpOnFirstRequest(inner, warm=warm, name="test warm-up")
    with caplog.at_level(logging.WARNING, logger="contrail.ui.app"):
        asyncio.run(middleware({"type": "http"}, None, None))
        middleware.thread.join(10)
    assert "test warm-up failed; the first load reads the lake itself" in caplog.text


def test_the_plugin_warms_its_own_apps_lake_view_in_the_api_server_only():
    from contrail.ui import plugin
    from contrail.ui.app import WarmUpOnFirstRequest

    (entry,) = plugin.ContrailUIPlugin.fastapi_root_middlewares
    assert entry["middleware"] is WarmUpOnFirstRequest
    # the same view (and pointer cache) the routes of the mounted app use
    assert entry["kwargs"]["warm"] is plugin._app.state.warm_up
    assert plugin.ContrailUIPlugin.fastapi_apps[0]["app"] is plugin._app
