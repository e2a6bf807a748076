"""The whole thin pipeline through the real stack: simulator drops → landing DAGs (scheduler,
deferred sensors in the triggerer) → quality (GX) → features (spark-submit) → training
(MLflow server + registry) → scoring; then a stop/start of the stack loses nothing.
"""

from __future__ import annotations

from datetime import date

import pytest

from contrail import catalog, lake

pytestmark = pytest.mark.e2e

DAYS = [date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)]
REAL_ROWS = {date(2013, 1, 1): 842, date(2013, 1, 2): 943, date(2013, 1, 3): 914}


@pytest.fixture(scope="module")
def pipeline_run(stack):
    from contrail.demo import run_pipeline

    return run_pipeline(stack, DAYS, timeout=1200)


def _assert_lake_and_registry(settings):
    import mlflow
    import pandas as pd

    s3 = lake.s3_client(settings)
    bucket = settings.bucket
    for day in DAYS:
        manifest = lake.read_json(s3, bucket, catalog.landing_prefix("flights", day, 1) + "_manifest.json")
        assert manifest["rows"] == REAL_ROWS[day]
        assert manifest["dt"] == day.isoformat()
        pointer = lake.read_json(s3, bucket, catalog.validated_pointer_key("flights", day))
        assert pointer["version"] == 1
        features = catalog.published_one(s3, bucket, catalog.features_partition(settings.feature_set, day))
        assert features is not None and features.manifest["rows"] == REAL_ROWS[day]
        # published only after its gate passed, and the manifest says which result let it through
        gate = lake.read_json(s3, bucket, lake.split_s3_uri(features.manifest["gate_result_uri"])[1])
        assert gate["passed"] and gate["build"] == features.manifest["build"]
        predictions = catalog.published_one(s3, bucket, catalog.predictions_partition(settings.model_name, day))
        assert predictions is not None and predictions.manifest["features_digest"] == features.digest

    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_url)
    model = client.get_registered_model(settings.model_name)
    assert "champion" in model.aliases
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    run = client.get_run(champion.run_id)
    assert run.data.tags["contrail.airflow.dag_id"] == "training"
    assert 0.0 <= run.data.metrics["test_roc_auc"] <= 1.0

    # any client loads the champion through the allow-list and predicts on a published partition
    from contrail import registry

    loaded = registry.load_champion(settings.model_name, tracking_uri=settings.mlflow_url)
    assert loaded.version == str(champion.version) and 0.0 < loaded.threshold < 1.0
    assert float(champion.tags["contrail.threshold"]) == loaded.threshold
    frame = _features_frame(s3, bucket, settings, DAYS[-1])
    preds = loaded.predict_proba(frame)
    assert len(preds) == len(frame) and pd.Series(preds).notna().all()


def _features_frame(s3, bucket, settings, day):
    part = catalog.published_one(s3, bucket, catalog.features_partition(settings.feature_set, day))
    return catalog.read_published(s3, bucket, part)


def test_pipeline_runs_end_to_end_through_airflow(stack, pipeline_run):
    from contrail.stack import local
    from contrail.stack.api import AirflowClient

    listening = local.listening_addresses(stack)
    assert {p for _, p in listening} >= {stack.ports.airflow, stack.ports.mlflow, stack.ports.emulator}
    assert {ip for ip, _ in listening} <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, listening
    # every task process is forked from a process that imported the task code first: the
    # LocalExecutor's scheduler, or on scale-out each Celery worker (contrail.stack.preload)
    forking = (["scheduler"] if stack.scaleout is None
               else [n for n in local.running(stack) if n.startswith("celery-worker")])
    for name in forking:
        assert "task modules preloaded" in (stack.state_dir / "logs" / f"{name}.log").read_text(), name

    api = AirflowClient.for_local(stack)
    for dag_id in ("landing_flights", "landing_weather"):
        done = {r["logical_date"][:10]: r["state"] for r in api.runs(dag_id) if r["state"] != "running"}
        for day in DAYS:
            assert done.get(day.isoformat()) == "success", (dag_id, day, done)
    for dag_id in ("quality", "features", "scoring", "training"):
        states = [r["state"] for r in api.runs(dag_id)]
        assert "success" in states and "failed" not in states, (dag_id, states)
    _assert_lake_and_registry(stack)


BAD_HEADER_DAY = date(2013, 1, 4)   # flights drop with a wrong header: landing quarantines it
BAD_DATA_DAY = date(2013, 1, 5)     # structurally fine, but breaks a critical GX rule


def _gz_csv(frame) -> bytes:
    import gzip

    return gzip.compress(frame.to_csv(index=False, na_rep="NA").encode(), mtime=0)


def _task_log(api, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
    body = api.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                       params={"full_content": "true"})
    content = body.get("content", body)
    return content if isinstance(content, str) else __import__("json").dumps(content)


def _wait(predicate, timeout=900):
    from contrail.demo import wait_for

    return wait_for(predicate, "the bad-drop scenario to progress", timeout)


def test_bad_drops_are_quarantined_and_a_corrected_redrop_heals(stack, pipeline_run):
    from contrail import nycflights
    from contrail.simulate import drop_days
    from contrail.stack.api import AirflowClient

    api = AirflowClient.for_local(stack)
    s3 = lake.s3_client(stack)
    bucket = stack.bucket

    # Jan 4: a flights export with a renamed column; weather is fine
    bad_header = nycflights.day("flights", BAD_HEADER_DAY).rename(columns={"dest": "destination"})
    bad_key = f"incoming/flights/{BAD_HEADER_DAY}/flights_{BAD_HEADER_DAY}.csv.gz"
    s3.put_object(Bucket=bucket, Key=bad_key, Body=_gz_csv(bad_header))
    drop_days(s3, bucket, [BAD_HEADER_DAY], datasets=("weather",))
    # Jan 5: an origin outside {EWR, JFK, LGA} on many rows
    bad_rows = nycflights.day("flights", BAD_DATA_DAY)
    bad_rows.loc[bad_rows.index[:50], "origin"] = "XXX"
    data_key = f"incoming/flights/{BAD_DATA_DAY}/flights_{BAD_DATA_DAY}.csv.gz"
    s3.put_object(Bucket=bucket, Key=data_key, Body=_gz_csv(bad_rows))
    drop_days(s3, bucket, [BAD_DATA_DAY], datasets=("weather",))

    def landing_state(day):
        for run in api.runs("landing_flights"):
            if (run.get("logical_date") or "")[:10] == day.isoformat() and run["state"] in ("success", "failed"):
                return run
        return None

    failed = _wait(lambda: landing_state(BAD_HEADER_DAY))
    assert failed["state"] == "failed"
    message = _task_log(api, "landing_flights", failed["dag_run_id"], "land")
    assert bad_key in message and "wrong_header" in message
    assert not any(lake.list_objects(s3, bucket, catalog.landing_partition("flights", BAD_HEADER_DAY)))
    quarantined = [o.key for o in lake.list_objects(s3, bucket, catalog.quarantine_prefix("flights", BAD_HEADER_DAY))]
    assert any(k.endswith("reason.json") for k in quarantined) and len(quarantined) >= 2

    # Jan 5 lands (its structure is fine) but the quality gate quarantines it
    assert _wait(lambda: landing_state(BAD_DATA_DAY))["state"] == "success"
    reason_key = f"{catalog.quarantine_prefix('flights', BAD_DATA_DAY)}v=0001/reason.json"
    reason = _wait(lambda: lake.exists(s3, bucket, reason_key) and lake.read_json(s3, bucket, reason_key))
    assert any("origin" in str(f) for f in reason["failures"]), reason
    assert not lake.exists(s3, bucket, catalog.validated_pointer_key("flights", BAD_DATA_DAY))
    gate_failed = _wait(lambda: [r for r in api.runs("quality") if r["state"] == "failed"])

    def gate_message():
        # the run can turn failed a moment before the task's log is flushed: re-read until it is
        text = _task_log(api, "quality", gate_failed[0]["dag_run_id"], "gate_flights")
        return text if "Task failed with exception" in text else None

    log_text = _wait(gate_message, timeout=120)
    assert f"dt={BAD_DATA_DAY}" in log_text and "origin" in log_text

    # upstream re-drops a corrected export; a backfill re-runs landing for that day
    s3.put_object(Bucket=bucket, Key=data_key, Body=_gz_csv(nycflights.day("flights", BAD_DATA_DAY)))
    api.backfill("landing_flights", f"{BAD_DATA_DAY}T00:00:00Z", f"{BAD_DATA_DAY}T00:00:00Z",
                 reprocess="completed", max_active_runs=1)
    pointer_key = catalog.validated_pointer_key("flights", BAD_DATA_DAY)
    pointer = _wait(lambda: lake.exists(s3, bucket, pointer_key) and lake.read_json(s3, bucket, pointer_key))
    assert pointer["version"] == 2
    history = [o.key for o in lake.list_objects(s3, bucket, catalog.landing_partition("flights", BAD_DATA_DAY))
               if o.key.endswith("_manifest.json")]
    assert len(history) == 2  # the bad version stays beside the corrected one
    _wait(lambda: lake.exists(s3, bucket, catalog.features_partition(stack.feature_set, BAD_DATA_DAY) + "_SUCCESS"))


def test_stop_and_start_loses_nothing(stack, pipeline_run):
    from contrail.stack import local
    from contrail.stack.api import AirflowClient

    from contrail.demo import wait_for

    finished = ("success", "failed")
    before = {r["dag_run_id"]: r["state"] for r in AirflowClient.for_local(stack).runs("features")
              if r["state"] in finished}
    assert before
    api_log = stack.state_dir / "logs" / "api-server.log"
    warmed = api_log.read_text().count("Lake view warm-up done")
    local.stop(stack)
    assert local.running(stack) == {}
    local.start(stack)
    api = AirflowClient.for_local(stack)
    after = {r["dag_run_id"]: r["state"] for r in api.runs("features")}
    assert {k: v for k, v in after.items() if k in before} == before
    _assert_lake_and_registry(stack)

    # the new API server warmed the Lake view in the background after its first request: the
    # first load reads (almost) no validated pointer; unwarmed, it would read every one
    wait_for(lambda: api_log.read_text().count("Lake view warm-up done") > warmed, "the Lake view warm-up", 180)
    view = api.session.get(f"{stack.airflow_url}/contrail/api/lake",
                           headers={"Authorization": f"Bearer {api.token()}"}, timeout=60).json()
    pointers = sum(cell["status"] in ("validated", "warned", "healed")
                   for ds in ("flights", "weather") for cell in view["rows"][ds].values())
    assert pointers >= 2 * len(DAYS) and view["pointer_gets"] < pointers, (pointers, view["pointer_gets"])


def test_monitoring_finds_a_degraded_champion_and_triggers_retraining(stack, pipeline_run):
    """A champion trained on the wrong label (late ↔ on time) scores the thin pipeline's days;
    `monitoring` joins its predictions to the landed outcomes, publishes a partition per day,
    logs the series to MLflow and triggers `training` with the reason."""
    import mlflow
    import pandas as pd

    from contrail import monitoring, registry, training
    from contrail.stack.api import AirflowClient

    api = AirflowClient.for_local(stack)
    s3, bucket = lake.s3_client(stack), stack.bucket
    frame = pd.concat([_features_frame(s3, bucket, stack, d) for d in DAYS], ignore_index=True)
    split = training.split_by_date(frame, test_days=1, valid_days=1)
    wrong = split.train.assign(label=1 - split.train["label"])
    model, _ = training.train(wrong, split.valid, {"max_iter": 30})
    mlflow.set_tracking_uri(stack.mlflow_url)
    mlflow.set_experiment("contrail-e2e-degraded")
    client = mlflow.MlflowClient(stack.mlflow_url)
    parts = [catalog.published_one(s3, bucket, catalog.features_partition(stack.feature_set, d)) for d in DAYS]
    run = registry.log_training_run(
        model=model, params={"max_iter": 30}, metrics={}, split=split, threshold=0.5,
        partitions=[registry.FeaturePartition(p.dt.isoformat(), p.digest, p.uri) for p in parts],
        feature_set=stack.feature_set, dag_id="e2e-wrong-label", dag_run_id="wrong-label", git_commit="e2e",
        job_version="e2e", quality={"passed": True}, profile=monitoring.feature_profile(training.labelled(split.train)))
    degraded = registry.register_and_promote(client, stack.model_name, run.run_id,
                                             registry.PromotionDecision(True, "champion", "e2e: wrong label"),
                                             model_uri=run.model_uri)
    client.set_model_version_tag(stack.model_name, str(degraded.version), registry.THRESHOLD_TAG, "0.5")
    version = str(degraded.version)

    def rescored():
        return all((p := catalog.published_one(s3, bucket, catalog.predictions_partition(stack.model_name, d)))
                   is not None and p.manifest["model_version"] == version for d in DAYS)

    api.trigger("scoring", conf={})
    _wait(rescored)
    before = {r["dag_run_id"] for r in api.runs("training")}
    api.set_paused("monitoring", False)
    api.trigger("monitoring", conf={"auc_floor": 0.6, "auc_days": len(DAYS), "min_rows": 100})

    def triggered():
        # an asset-triggered monitoring run (default floor 0.62) may judge first: either asks once
        return [r for r in api.runs("training") if r["dag_run_id"] not in before
                and (r.get("conf") or {}).get("reason", "").startswith("monitoring: ROC AUC below 0.6")]

    new = _wait(triggered)
    assert f"(v{version}:" in new[0]["conf"]["reason"]
    rows = pd.concat([catalog.read_published(s3, bucket, catalog.published_one(
        s3, bucket, catalog.monitoring_partition(stack.model_name, d))) for d in DAYS])
    batch = rows.loc[(rows["source"] == "batch") & (rows["model_version"] == version)]
    assert len(batch) == len(DAYS) and (batch["roc_auc"] < 0.6).all() and (batch["rows"] > 800).all()
    monitoring_run = client.get_model_version(stack.model_name, version).tags["contrail.monitoring_run_id"]
    # one point per monitored day: the pipeline's days, and the bad-drop test's healed day when it ran
    monitored = catalog.published_days(s3, bucket, catalog.monitoring_zone(stack.model_name))
    assert set(DAYS) <= set(monitored)
    assert len(client.get_metric_history(monitoring_run, "batch_roc_auc")) == len(monitored)
    states = [r["state"] for r in api.runs("monitoring")]
    assert "failed" not in states, states
