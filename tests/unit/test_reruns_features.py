"""Re-running the feature stage over a range: which days each rebuild mode redoes (pure), the
plan it writes (moto S3, the real artifact) and what the published manifests record."""

from __future__ import annotations

from datetime import date, timedelta

from contrail import catalog, lake
from contrail.reruns import ALL, CHANGED, PENDING, Rerun
from contrail.stages import features as features_stage
from test_fault_injection import BUCKET, FEATURE_SET, DistanceGate, _frame, _staged, new_lake  # noqa: F401
from test_features_plan import entry, validated_days

FIRST, LAST = date(2013, 3, 1), date(2013, 3, 6)


def _manifests(validated, *, job_version="j1", suite_version="s1", skip=()):
    """Published manifests built from today's validated inputs (nothing pending)."""
    from contrail.features import plan_features

    out = {}
    for d in sorted(set(validated["flights"]) - set(skip)):
        inputs = plan_features(validated, [d], feature_set="", job_version="", bucket="")["inputs"]
        out[d] = {"inputs": {ds: {k: {"version": v["version"]} for k, v in days.items()}
                             for ds, days in inputs.items()},
                  "job_version": job_version, "suite_version": suite_version}
    return out


def test_pending_mode_in_a_range_builds_only_what_is_pending_there():
    validated = validated_days(FIRST, LAST)
    manifests = _manifests(validated, skip=(date(2013, 3, 2), date(2013, 3, 5)))
    build = lambda rerun: features_stage.dates_to_build(validated, manifests, rerun,  # noqa: E731
                                                        job_version="j1", suite_version="s1")
    assert build(Rerun()) == [date(2013, 3, 2), date(2013, 3, 5)]
    assert build(Rerun(first=date(2013, 3, 3))) == [date(2013, 3, 5)]
    assert build(Rerun(last=date(2013, 3, 4), rebuild=PENDING)) == [date(2013, 3, 2)]


def test_changed_adds_days_built_by_another_job_or_judged_by_another_suite():
    validated = validated_days(FIRST, LAST)
    manifests = _manifests(validated)
    manifests[date(2013, 3, 2)]["job_version"] = "j0"
    manifests[date(2013, 3, 4)]["suite_version"] = "s0"
    rerun = Rerun(rebuild=CHANGED)
    assert features_stage.dates_to_build(validated, manifests, rerun, job_version="j1",
                                         suite_version="s1") == [date(2013, 3, 2), date(2013, 3, 4)]
    # pending mode does not look at versions
    assert features_stage.dates_to_build(validated, manifests, Rerun(), job_version="j1", suite_version="s1") == []
    # a newer job makes every built day changed; the range still bounds it
    assert features_stage.dates_to_build(validated, manifests, Rerun(first=date(2013, 3, 5), rebuild=CHANGED),
                                         job_version="j2", suite_version="s1") == [date(2013, 3, 5), date(2013, 3, 6)]


def test_all_rebuilds_every_day_validated_for_every_dataset_in_the_range():
    validated = validated_days(FIRST, LAST)
    del validated["weather"][date(2013, 3, 3)]  # not validated for weather: not buildable
    manifests = _manifests(validated)
    rerun = Rerun(first=date(2013, 3, 2), last=date(2013, 3, 4), rebuild=ALL)
    assert features_stage.dates_to_build(validated, manifests, rerun) == [date(2013, 3, 2), date(2013, 3, 4)]


def _validate(s3, first: date, last: date) -> None:
    d = first
    while d <= last:
        for ds in ("flights", "weather"):
            e = entry(ds, d)
            lake.put_json(s3, BUCKET, catalog.validated_pointer_key(ds, d), {
                "dt": d.isoformat(), "version": e["version"], "manifest_uri": e["manifest"],
                "objects": [lake.split_s3_uri(o)[1] for o in e["objects"]]})
        d += timedelta(days=1)


def _publish_as_built(s3, bucket: str, job_version: str) -> None:
    """Publish every validated day as if built from today's inputs by ``job_version``."""
    from contrail.features import plan_features
    from contrail.stages.quality import suite_version

    validated = {ds: features_stage.validated_inputs(s3, bucket, ds) for ds in ("flights", "weather")}
    for d in sorted(validated["flights"]):
        partition = catalog.features_partition(FEATURE_SET, d)
        key = catalog.build_prefix(partition, "b0") + catalog.part_name(0)
        s3.put_object(Bucket=bucket, Key=key, Body=b"parquet")
        inputs = plan_features(validated, [d], feature_set="", job_version="", bucket="")["inputs"]
        catalog.publish_partition(s3, bucket, partition, {
            "dt": d.isoformat(), "build": "b0", "parts": [key], "inputs": inputs,
            "job_version": job_version, "suite_version": suite_version("features")})


def test_a_range_rerun_plans_that_range_with_its_lookback_and_carries_the_request(moto_s3, new_lake, tmp_path):
    bucket = new_lake()
    _validate(moto_s3, date(2013, 2, 20), LAST)
    first_run = features_stage.plan(moto_s3, bucket, feature_set=FEATURE_SET, run_id="scheduled__1",
                                    artifact_dir=tmp_path / "a")
    assert first_run["targets"][0] == "2013-02-20" and first_run["targets"][-1] == LAST.isoformat()
    # every day published by this very job version and suite: nothing pending, nothing changed
    _publish_as_built(moto_s3, bucket, first_run["job_version"])

    def targets(rerun: Rerun, name: str) -> list[str]:
        return features_stage.plan(moto_s3, bucket, feature_set=FEATURE_SET, run_id="manual__2",
                                   artifact_dir=tmp_path / name, rerun=rerun)["targets"]

    assert targets(Rerun(), "b") == [] and targets(Rerun(rebuild=CHANGED), "c") == []
    rerun = Rerun(first=date(2013, 3, 4), last=date(2013, 3, 5), rebuild=ALL, reason="fixed a join")
    planned = features_stage.plan(moto_s3, bucket, feature_set=FEATURE_SET, run_id="manual__2",
                                  artifact_dir=tmp_path / "d", rerun=rerun)
    assert planned["targets"] == ["2013-03-04", "2013-03-05"]
    assert planned["rerun"] == rerun.as_dict() and planned["build"] != first_run["build"]
    body = lake.read_json(moto_s3, bucket, lake.split_s3_uri(planned["plan_uri"])[1])
    flights = sorted(body["inputs"]["flights"])  # the 28-day lookback, where validated
    assert flights[0] == "2013-02-20" and flights[-1] == "2013-03-05"
    assert sorted(body["inputs"]["weather"]) == ["2013-03-04", "2013-03-05"]


def test_published_manifests_record_job_suite_and_the_reason(moto_s3, new_lake, tmp_path):
    from contrail.stages.quality import suite_version

    bucket = new_lake()
    days = ["2013-03-04", "2013-03-05"]
    gate = lambda: DistanceGate(tmp_path)  # noqa: E731
    features_stage.audit_and_publish(moto_s3, bucket, _staged(moto_s3, bucket, "b1", {d: _frame(d, 100) for d in days}),
                                     feature_set=FEATURE_SET, gate_factory=gate)
    rerun = Rerun(first=date(2013, 3, 4), last=date(2013, 3, 4), rebuild=ALL, reason="backfill after fix")
    planned = {**_staged(moto_s3, bucket, "b2", {days[0]: _frame(days[0], 200)}), "rerun": rerun.as_dict()}
    features_stage.audit_and_publish(moto_s3, bucket, planned, feature_set=FEATURE_SET, gate_factory=gate)
    published = catalog.published(moto_s3, bucket, catalog.features_zone(FEATURE_SET))
    rebuilt, untouched = published[date(2013, 3, 4)].manifest, published[date(2013, 3, 5)].manifest
    assert (rebuilt["build"], rebuilt["previous_build"], rebuilt["reason"], rebuilt["rebuild"]) == \
        ("b2", "b1", "backfill after fix", ALL)
    assert (untouched["build"], untouched["reason"], untouched["rebuild"]) == ("b1", None, PENDING)
    for manifest in (rebuilt, untouched):
        assert manifest["job_version"] == "j1" and manifest["suite_version"] == suite_version("features")


def test_a_day_whose_window_reads_a_partition_being_judged_waits_for_it():
    d = date(2013, 3, 10)
    targets = [d - timedelta(days=1), d, d + timedelta(days=1), d + timedelta(days=29)]
    # flights are read with a 28-day lookback: a flights day awaiting validation holds every
    # target whose window reaches it, up to 28 days later, and not the day before it
    assert features_stage.held_back(targets, {"flights": [d], "weather": []}) == {d, d + timedelta(days=1)}
    assert features_stage.held_back(targets, {"flights": [d - timedelta(days=28)]}) == {d - timedelta(days=1), d}
    # weather is read on its own day only
    assert features_stage.held_back(targets, {"weather": [d]}) == {d}
    assert features_stage.held_back(targets, {"flights": [], "weather": []}) == set()


def test_plan_holds_back_the_days_after_a_landed_partition_still_awaiting_its_verdict(moto_s3, new_lake, tmp_path):
    """Validations finishing out of order (a quality task retried after its process died) must
    not get later days built from a window with a hole, to be built again once it is judged."""
    bucket = new_lake()
    _validate(moto_s3, FIRST, LAST)
    late = date(2013, 3, 3)
    lake.delete_keys(moto_s3, bucket, [catalog.validated_pointer_key("flights", late)])  # not judged yet:
    lake.put_json(moto_s3, bucket, catalog.landing_manifest_key("flights", late, 1), {"rows": 1})  # landed
    planned = features_stage.plan(moto_s3, bucket, feature_set=FEATURE_SET, run_id="scheduled__1",
                                  artifact_dir=tmp_path / "a")
    assert planned["targets"] == ["2013-03-01", "2013-03-02"]
    # judged (a quality result, whatever the verdict): the hold is lifted
    lake.put_json(moto_s3, bucket, catalog.quality_result_key("flights", late, 1), {"passed": False})
    planned = features_stage.plan(moto_s3, bucket, feature_set=FEATURE_SET, run_id="scheduled__2",
                                  artifact_dir=tmp_path / "b")
    assert planned["targets"] == ["2013-03-01", "2013-03-02", "2013-03-04", "2013-03-05", "2013-03-06"]


def test_plan_holds_back_the_days_after_a_dropped_partition_not_landed_yet(moto_s3, new_lake, tmp_path):
    """Landings finishing out of order (a landing retried after the scheduler died): a day
    dropped but not landed holds the days whose window reads it, until it lands or is
    rejected by landing."""
    bucket = new_lake()
    _validate(moto_s3, FIRST, LAST)
    late = date(2013, 3, 3)
    lake.delete_keys(moto_s3, bucket, [catalog.validated_pointer_key("flights", late)])
    moto_s3.put_object(Bucket=bucket, Key=catalog.incoming_prefix("flights", late) + "flights.csv.gz", Body=b"x")
    planned = features_stage.plan(moto_s3, bucket, feature_set=FEATURE_SET, run_id="scheduled__1",
                                  artifact_dir=tmp_path / "a")
    assert planned["targets"] == ["2013-03-01", "2013-03-02"]
    # rejected by landing (quarantined): nothing is on its way, the hold is lifted
    moto_s3.put_object(Bucket=bucket, Key=catalog.landing_quarantine_key("flights", late, "ab" * 32, "flights.csv.gz"),
                       Body=b"x")
    planned = features_stage.plan(moto_s3, bucket, feature_set=FEATURE_SET, run_id="scheduled__2",
                                  artifact_dir=tmp_path / "b")
    assert planned["targets"] == ["2013-03-01", "2013-03-02", "2013-03-04", "2013-03-05", "2013-03-06"]
