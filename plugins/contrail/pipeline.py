"""What each DAG task does, at the Airflow edge: read the run's context and connections, call
the stage's pure logic, write to the lake, set the asset event's metadata.

DAG files import these lazily inside their tasks, so parsing a DAG never imports GX, Spark
or MLflow. Data errors raise ``AirflowFailException`` (no retry can fix a bad file);
everything else may raise and be retried.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from contrail import lake
from contrail.settings import Settings, load_settings

log = logging.getLogger(__name__)

_VERSIONED = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/v=(\d{4})")


# ---------------------------------------------------------------------------- connections

@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()


def s3():
    """boto3 S3 client from the ``aws_default`` connection (endpoint in its extra, locally)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=settings().aws_conn_id).get_conn()


def aws_env() -> dict[str, str]:
    """Environment for subprocesses (spark-submit) that talk to AWS, from the connection."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=settings().aws_conn_id, client_type="s3")
    creds = hook.get_credentials()
    env = dict(os.environ)
    env["AWS_ACCESS_KEY_ID"] = creds.access_key
    env["AWS_SECRET_ACCESS_KEY"] = creds.secret_key
    if creds.token:
        env["AWS_SESSION_TOKEN"] = creds.token
    endpoint = hook.conn_config.endpoint_url
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    env["AWS_DEFAULT_REGION"] = hook.conn_region_name or settings().region
    return env


def mlflow_tracking_uri() -> str:
    """Tracking URI from the ``mlflow_default`` connection (http host/port, or a full URI in host)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(settings().mlflow_conn_id)
    host = conn.host or ""
    if "://" in host:
        return host.rstrip("/")
    scheme = conn.schema or "http"
    return f"{scheme}://{host}:{conn.port}" if conn.port else f"{scheme}://{host}"


def _run_ids(context: dict) -> tuple[str, str]:
    return context["dag"].dag_id, context["run_id"]


def _start_time(context: dict) -> str:
    ti = context["ti"]
    start = getattr(ti, "start_date", None) or context["dag_run"].start_date
    return start.isoformat()


# ---------------------------------------------------------------------------- landing

def land_drop(dataset: str, context: dict) -> dict:
    """Land the drop for the run's data interval; sets the ``landing_<dataset>`` event extra."""
    from airflow.sdk.exceptions import AirflowFailException

    from contrail import assets
    from contrail.landing import BadDropError, RunInfo, land_partition

    dt = context["data_interval_start"].date()
    dag_id, run_id = _run_ids(context)
    try:
        result = land_partition(s3(), settings().bucket, dataset=dataset, dt=dt,
                                run=RunInfo(dag_id=dag_id, run_id=run_id, landed_at=_start_time(context)))
    except BadDropError as exc:
        raise AirflowFailException(str(exc)) from exc
    extra = result.as_asset_extra()
    context["outlet_events"][assets.landing(dataset)].extra = extra
    log.info("%s dt=%s version %s (%s rows, %s): %s", dataset, dt, result.version, result.rows,
             "landed" if result.created else "unchanged, no-op", result.manifest_uri)
    return extra


# ---------------------------------------------------------------------------- quality

@dataclass(frozen=True)
class PartitionVersion:
    dt: str
    version: int

    @property
    def key(self) -> str:
        return f"dt={self.dt}/v={self.version:04d}"


def current_versions(manifest_keys: Iterable[str]) -> dict[str, int]:
    """dt -> highest landed version, from ``…/dt=…/v=NNNN/_manifest.json`` keys (pure)."""
    current: dict[str, int] = {}
    for key in manifest_keys:
        if not key.endswith("/_manifest.json"):
            continue
        match = _VERSIONED.search(key)
        if match:
            dt, version = match.group(1), int(match.group(2))
            current[dt] = max(current.get(dt, 0), version)
    return current


def pending_validation(manifest_keys: Iterable[str], result_keys: Iterable[str]) -> list[PartitionVersion]:
    """Current landed versions that have no quality result yet, oldest first (pure)."""
    done = set()
    for key in result_keys:
        match = _VERSIONED.search(key)
        if match:
            done.add((match.group(1), int(match.group(2))))
    return [PartitionVersion(dt, v) for dt, v in sorted(current_versions(manifest_keys).items())
            if (dt, v) not in done]


def read_landed(s3_client, bucket: str, manifest: dict):
    """The landed CSV objects of one manifest as one pandas frame."""
    import pandas as pd

    from contrail.quality import read_landed_csv

    frames = [read_landed_csv(lake.read_bytes(s3_client, bucket, obj["key"])) for obj in manifest["objects"]]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def validate_pending(dataset: str, context: dict) -> list[dict]:
    """Validate every pending landed partition of ``dataset`` with one GX gate."""
    from contrail import assets
    from contrail.quality import QualityGate, publish_data_docs

    cfg, client = settings(), s3()
    bucket = cfg.bucket
    manifests = [o.key for o in lake.list_objects(client, bucket, f"landing/{dataset}/")]
    results = [o.key for o in lake.list_objects(client, bucket, f"quality/results/{dataset}/")]
    pending = pending_validation(manifests, results)
    log.info("%s: %d partition(s) pending validation", dataset, len(pending))
    if not pending:
        context["outlet_events"][assets.validated(dataset)].extra = {"dataset": dataset, "partitions": []}
        return []
    dag_id, run_id = _run_ids(context)
    gate = QualityGate()
    reports: list[dict] = []
    for part in pending:
        manifest_key = f"{lake.landing_prefix(dataset, part.dt, part.version)}_manifest.json"
        manifest = lake.read_json(client, bucket, manifest_key)
        frame = read_landed(client, bucket, manifest)
        report = gate.validate(frame, suite=f"{dataset}_raw", dataset=dataset,
                               dt=date.fromisoformat(part.dt), version=part.version)
        result_key = lake.quality_result_key(dataset, part.dt, part.version)
        lake.put_json(client, bucket, result_key, {
            **report.as_dict(), "manifest_uri": lake.s3_uri(bucket, manifest_key),
            "dag_id": dag_id, "run_id": run_id,
        })
        summary = {"dataset": dataset, "dt": part.dt, "version": part.version, "passed": report.passed,
                   "rows": manifest.get("rows"), "warnings": len(report.warnings),
                   "result_uri": lake.s3_uri(bucket, result_key), "summary": report.summary(),
                   "manifest_uri": lake.s3_uri(bucket, manifest_key)}
        if report.passed:
            lake.put_json(client, bucket, lake.validated_pointer_key(dataset, part.dt), {
                "dataset": dataset, "dt": part.dt, "version": part.version,
                "manifest_uri": summary["manifest_uri"], "quality_result_uri": summary["result_uri"],
                "rows": manifest.get("rows"), "objects": [o["key"] for o in manifest["objects"]],
                "warnings": len(report.warnings), "dag_id": dag_id, "run_id": run_id,
            })
        else:
            quarantine_partition(client, bucket, dataset, part, manifest, report.as_dict())
        log.info("%s dt=%s v%d: %s", dataset, part.dt, part.version,
                 "passed" if report.passed else "FAILED → quarantined")
        reports.append(summary)
    site = gate.build_data_docs()
    docs_uri = publish_data_docs(client, bucket, site)
    if cfg.emulator_url:
        log.info("Data Docs: %s/%s/quality/data-docs/index.html", cfg.emulator_url, bucket)
    log.info("Data Docs published to %s", docs_uri)
    passed = [r for r in reports if r["passed"]]
    context["outlet_events"][assets.validated(dataset)].extra = {
        "dataset": dataset, "data_docs": docs_uri,
        "partitions": [{k: r[k] for k in ("dt", "version", "manifest_uri", "rows")} for r in passed],
    }
    return reports


def quarantine_partition(client, bucket: str, dataset: str, part: PartitionVersion, manifest: dict,
                         report: dict) -> None:
    """Copy a failed partition's objects to quarantine with the failing expectations beside them."""
    prefix = f"{lake.quarantine_prefix(dataset, part.dt)}v={part.version:04d}/"
    for obj in manifest["objects"]:
        name = obj["key"].rsplit("/", 1)[-1]
        client.copy_object(Bucket=bucket, Key=prefix + name, CopySource={"Bucket": bucket, "Key": obj["key"]})
    lake.put_json(client, bucket, prefix + "reason.json", {
        "stage": "quality", "dataset": dataset, "dt": part.dt, "version": part.version,
        "failures": report.get("failures", []), "summary": report.get("summary"),
    })


def enforce_gate(reports: list[dict]) -> None:
    """Fail (without retries) when any partition broke a critical expectation."""
    from airflow.sdk.exceptions import AirflowFailException

    failed = [r for r in reports if not r["passed"]]
    for r in reports:
        log.info("%s dt=%s v%d: %s (%s warning(s))", r["dataset"], r["dt"], r["version"],
                 "passed" if r["passed"] else "failed", r["warnings"])
    if failed:
        raise AirflowFailException("quality gate failed — quarantined, not validated:\n" +
                                   "\n".join(r["summary"] for r in failed))


# ---------------------------------------------------------------------------- features

def validated_inputs(client, bucket: str, dataset: str) -> dict[date, dict]:
    """dt -> validated pointer for every validated partition of ``dataset``."""
    out = {}
    for obj in lake.list_objects(client, bucket, f"validated/{dataset}/"):
        if obj.key.endswith("/_pointer.json"):
            pointer = lake.read_json(client, bucket, obj.key)
            out[date.fromisoformat(pointer["dt"])] = {
                "version": pointer["version"], "manifest": pointer["manifest_uri"],
                "objects": [lake.s3_uri(bucket, k) for k in pointer["objects"]],
            }
    return out


def _input_versions(inputs: dict) -> dict[str, dict[str, int]]:
    return {ds: {d: int(entry["version"]) for d, entry in days.items()} for ds, days in inputs.items()}


def pending_feature_dates(validated: dict[str, dict[date, dict]], built: dict[date, dict],
                          *, lookback_days: int = 28) -> list[date]:
    """Dates validated for every dataset whose published features are missing, or were built
    from inputs (own day or any lookback day) other than today's validated versions — so a
    late or corrected partition also rebuilds the later days whose windows it falls in (pure).
    """
    from contrail.features import plan_features

    common = set.intersection(*(set(v) for v in validated.values())) if validated else set()
    pending = []
    for dt in sorted(common):
        expected = plan_features(validated, [dt], lookback_days, feature_set="", job_version="",
                                 bucket="", datasets=tuple(validated))["inputs"]
        if built.get(dt) != _input_versions(expected):
            pending.append(dt)
    return pending


def built_features(client, bucket: str, feature_set: str) -> dict[date, dict]:
    """dt -> {dataset: {input dt: version}} of published feature partitions (with ``_SUCCESS``)."""
    return {dt: _input_versions(part.manifest.get("inputs", {}))
            for dt, part in published_features(client, bucket, feature_set).items()}


def plan_pending_features(context: dict) -> dict:
    from contrail.features import plan_features
    from contrail_spark.package import build_artifact, upload_artifact

    cfg, client = settings(), s3()
    validated = {ds: validated_inputs(client, cfg.bucket, ds) for ds in ("flights", "weather")}
    pending = pending_feature_dates(validated, built_features(client, cfg.bucket, cfg.feature_set))
    log.info("features: %d pending date(s): %s", len(pending), [d.isoformat() for d in pending][:20])
    if not pending:
        return {"targets": []}
    with tempfile.TemporaryDirectory() as tmp:
        artifact = build_artifact(Path(tmp))
        artifact_uri = upload_artifact(client, cfg.bucket, artifact)
    job_version = artifact.stem.rsplit("-", 1)[-1]
    plan = plan_features(validated, pending, lookback_days=28, feature_set=cfg.feature_set,
                         job_version=job_version, bucket=cfg.bucket)
    body = lake.json_bytes(plan)
    plan_key = f"artifacts/plans/{cfg.feature_set}/{lake.sha256_hex(body)[:16]}.json"
    client.put_object(Bucket=cfg.bucket, Key=plan_key, Body=body)
    return {"targets": [d.isoformat() for d in pending], "plan_uri": lake.s3_uri(cfg.bucket, plan_key),
            "artifact_uri": artifact_uri, "job_version": job_version}


def build_features_local(planned: dict, context: dict) -> dict:
    from airflow.sdk.exceptions import AirflowSkipException

    from contrail.features import run_local
    from contrail_spark.package import build_artifact

    if not planned.get("targets"):
        raise AirflowSkipException("no validated partition is pending")
    cfg, client = settings(), s3()
    with tempfile.TemporaryDirectory() as tmp:
        artifact = build_artifact(Path(tmp))
        if artifact.name != planned["artifact_uri"].rsplit("/", 1)[-1]:
            raise RuntimeError(f"job code changed since planning: {artifact.name} vs {planned['artifact_uri']}")
        run_local(planned["plan_uri"], artifact=artifact, env=aws_env())
    return publish_built_features(client, planned, context)


def publish_built_features(client, planned: dict, context: dict, **run_info: Any) -> dict:
    """After any runner (local, EMR, EMR Serverless): check every target was published, pass it
    through the ``features`` GX suite, and emit the features asset with the run's extra."""
    from contrail import assets

    cfg = settings()
    rows = {}
    for dt in planned["targets"]:
        prefix = lake.features_prefix(cfg.feature_set, dt)
        if not lake.exists(client, cfg.bucket, prefix + "_SUCCESS"):
            raise RuntimeError(f"feature partition {prefix} was not published (no _SUCCESS)")
        rows[dt] = lake.read_json(client, cfg.bucket, prefix + "_manifest.json").get("rows")
    gate = validate_feature_partitions(client, cfg.bucket, cfg.feature_set, planned["targets"])
    extra = {"feature_set": cfg.feature_set, "dates": planned["targets"], "rows": rows,
             "warnings": sum(r["warnings"] for r in gate),
             "job_version": planned["job_version"], "plan_uri": planned["plan_uri"], **run_info}
    context["outlet_events"][assets.features()].extra = extra
    return extra


def validate_feature_partitions(client, bucket: str, feature_set: str, dates: Iterable[str],
                                context: dict | None = None) -> list[dict]:
    """Run the ``features`` GX suite over freshly built partitions (one gate, one import).

    A failing partition is unpublished (its ``_SUCCESS`` removed, so no reader trusts it),
    its result is kept under ``quality/results/features/…`` and the task fails naming each
    broken rule; a passing one keeps ``_SUCCESS`` and gets its result beside the others.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from contrail.quality import QualityGate

    gate = QualityGate()
    reports, failed = [], []
    for dt in dates:
        prefix = lake.features_prefix(feature_set, dt)
        frame = read_parquet_prefix(client, bucket, prefix)
        report = gate.validate(frame, suite="features", dataset=f"features_{feature_set}",
                               dt=date.fromisoformat(dt), version=1)
        digest = lake.sha256_hex(lake.read_bytes(client, bucket, prefix + "_manifest.json"))[:16]
        lake.put_json(client, bucket, f"quality/results/features/{feature_set}/dt={dt}/{digest}.json",
                      report.as_dict())
        reports.append({"dt": dt, "passed": report.passed, "warnings": len(report.warnings)})
        if not report.passed:
            client.delete_object(Bucket=bucket, Key=prefix + "_SUCCESS")
            failed.append(report.summary())
    if failed:
        raise AirflowFailException("features failed their quality gate (unpublished):\n" + "\n".join(failed))
    return reports


# ---------------------------------------------------------------------------- training & scoring

@dataclass(frozen=True)
class PublishedPartition:
    """A published feature partition: its day, a digest of its manifest (the version the
    training run records) and the manifest itself."""

    dt: date
    digest: str
    uri: str
    manifest: dict


def published_features(client, bucket: str, feature_set: str) -> dict[date, PublishedPartition]:
    keys = {o.key for o in lake.list_objects(client, bucket, f"features/{feature_set}/")}
    out = {}
    for key in sorted(keys):
        if key.endswith("/_manifest.json") and key.replace("_manifest.json", "_SUCCESS") in keys:
            body = lake.read_bytes(client, bucket, key)
            manifest = json.loads(body)
            dt = date.fromisoformat(manifest["dt"])
            out[dt] = PublishedPartition(dt, lake.sha256_hex(body)[:16],
                                         lake.s3_uri(bucket, key.rsplit("/", 1)[0] + "/"), manifest)
    return out


def read_parquet_prefix(client, bucket: str, prefix: str):
    """Every Parquet part under ``prefix`` as one pandas frame."""
    import io

    import pandas as pd

    parts = sorted(o.key for o in lake.list_objects(client, bucket, prefix) if o.key.endswith(".parquet"))
    if not parts:
        raise FileNotFoundError(f"no parquet parts under s3://{bucket}/{prefix}")
    return pd.concat([pd.read_parquet(io.BytesIO(lake.read_bytes(client, bucket, k))) for k in parts],
                     ignore_index=True)


def training_window(available: Iterable[date], *, window_days: int, window_end: date | None) -> list[date]:
    """Published days in the trailing window ending at ``window_end`` (default: the latest) (pure)."""
    days = sorted(available)
    if not days:
        return []
    end = window_end or days[-1]
    return [d for d in days if end - timedelta(days=window_days - 1) <= d <= end]


def git_commit() -> str:
    import subprocess

    from contrail.settings import REPO_ROOT

    env_commit = os.environ.get("CONTRAIL_GIT_COMMIT")
    if env_commit:
        return env_commit
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def quality_summary(client, bucket: str, partitions: list[PublishedPartition]) -> dict:
    """Did every input of these feature partitions pass its gate, at the version used?"""
    checked, warnings, problems = 0, 0, []
    for part in partitions:
        for dataset in ("flights", "weather"):
            version = part.manifest.get("inputs", {}).get(dataset, {}).get(part.dt.isoformat(), {}).get("version")
            key = lake.quality_result_key(dataset, part.dt, int(version)) if version else None
            if key is None or not lake.exists(client, bucket, key):
                problems.append(f"{dataset} dt={part.dt}: no quality result")
                continue
            result = lake.read_json(client, bucket, key)
            checked += 1
            warnings += len(result.get("warnings", []))
            if not result.get("passed"):
                problems.append(f"{dataset} dt={part.dt} v{version}: failed its gate")
    return {"passed": not problems, "partitions_checked": checked, "warnings": warnings,
            "problems": problems[:50]}


def _mlflow_client():
    import mlflow

    mlflow.set_tracking_uri(mlflow_tracking_uri())
    return mlflow.MlflowClient()


def train_and_register(context: dict) -> dict[str, Any]:
    """Train on the trailing window of published features, log to MLflow, register, promote."""
    import mlflow
    import pandas as pd
    from airflow.sdk.exceptions import AirflowSkipException

    from contrail import assets, registry, training

    cfg, client = settings(), s3()
    params = context["params"]
    published = published_features(client, cfg.bucket, cfg.feature_set)
    end = date.fromisoformat(params["window_end"]) if params.get("window_end") else None
    window = training_window(published, window_days=int(params["window_days"]), window_end=end)
    needed = int(params["test_days"]) + int(params["valid_days"]) + 1
    if len(window) < needed:
        raise AirflowSkipException(f"only {len(window)} published feature day(s) in the window; "
                                   f"training needs at least {needed}")
    parts = [published[d] for d in window]
    frame = pd.concat([read_parquet_prefix(client, cfg.bucket, lake.features_prefix(cfg.feature_set, p.dt))
                       for p in parts], ignore_index=True)
    split = training.split_by_date(frame, test_days=int(params["test_days"]),
                                   valid_days=int(params["valid_days"]))
    model, fit_metrics = training.train(split.train, split.valid, {})
    test_metrics = training.evaluate(model, split.test)
    quality = quality_summary(client, cfg.bucket, parts)
    mlflow_client = _mlflow_client()
    mlflow.set_experiment("contrail-training")
    dag_id, run_id = _run_ids(context)
    job_versions = sorted({p.manifest.get("job_version", "unknown") for p in parts})
    logged = registry.log_training_run(
        model=model, params={"model_type": params["model_type"], "window_days": params["window_days"],
                             "test_days": params["test_days"], "valid_days": params["valid_days"]},
        metrics={**{f"fit_{k}": v for k, v in fit_metrics.items()},
                 **{f"test_{k}": v for k, v in test_metrics.items()}},
        split=split,
        partitions=[registry.FeaturePartition(p.dt.isoformat(), p.digest, p.uri) for p in parts],
        figures=training.figures(model, split.test), feature_set=cfg.feature_set,
        dag_id=dag_id, dag_run_id=run_id, git_commit=git_commit(), job_version=",".join(job_versions),
        quality=quality, run_name=f"{dag_id}:{run_id}",
    )
    decision, version = registry.promote_if_better(
        mlflow_client, cfg.model_name, logged, test_df=split.test, challenger_metrics=test_metrics,
        margin=float(params["promotion_margin"]), quality_passed=quality["passed"])
    extra = {"model_name": cfg.model_name, "version": str(version.version), "run_id": logged.run_id,
             "alias": decision.alias, "promoted": decision.promote, "reason": decision.reason,
             "window": [window[0].isoformat(), window[-1].isoformat()],
             "test_roc_auc": test_metrics.get("roc_auc")}
    log.info("model %s v%s → %s: %s", cfg.model_name, version.version, decision.alias, decision.reason)
    context["outlet_events"][assets.model()].extra = extra
    return extra


def score_pending(context: dict) -> dict[str, Any]:
    """Score every published feature partition not yet scored by the current champion version."""
    import io

    from airflow.sdk.exceptions import AirflowSkipException

    from contrail import assets, registry, scoring

    cfg, client = settings(), s3()
    mlflow_client = _mlflow_client()
    champion = registry.current_champion(mlflow_client, cfg.model_name)
    if champion is None:
        raise AirflowSkipException(f"no champion registered for {cfg.model_name} yet")
    champion_version = mlflow_client.get_model_version(cfg.model_name, str(champion.version))
    model = registry.load_model(champion.model_uri)
    scored = []
    for dt, part in sorted(published_features(client, cfg.bucket, cfg.feature_set).items()):
        prefix = lake.predictions_prefix(cfg.model_name, dt)
        marker = {"model_version": str(champion.version), "features_digest": part.digest}
        if lake.exists(client, cfg.bucket, prefix + "_SUCCESS"):
            done = lake.read_json(client, cfg.bucket, prefix + "_manifest.json")
            if {k: done.get(k) for k in marker} == marker:
                continue
        frame = read_parquet_prefix(client, cfg.bucket, lake.features_prefix(cfg.feature_set, dt))
        preds = scoring.score(model, frame, model_name=cfg.model_name, model_version=str(champion.version),
                              run_id=champion_version.run_id)
        buf = io.BytesIO()
        preds.to_parquet(buf, index=False)
        # unpublish, replace, republish: readers trust a partition only with _SUCCESS
        client.delete_object(Bucket=cfg.bucket, Key=prefix + "_SUCCESS")
        client.put_object(Bucket=cfg.bucket, Key=prefix + "part-00000.parquet", Body=buf.getvalue())
        lake.put_json(client, cfg.bucket, prefix + "_manifest.json", {
            **marker, "dt": dt.isoformat(), "model_name": cfg.model_name, "rows": len(preds),
            "run_id": champion_version.run_id, "features_uri": part.uri,
            "positive_rate": float(preds["label"].mean()) if len(preds) else None,
        })
        client.put_object(Bucket=cfg.bucket, Key=prefix + "_SUCCESS", Body=b"")
        scored.append(dt.isoformat())
        log.info("scored %s dt=%s with %s v%s: %d rows", cfg.feature_set, dt, cfg.model_name,
                 champion.version, len(preds))
    extra = {"model_name": cfg.model_name, "model_version": str(champion.version), "dates": scored}
    context["outlet_events"][assets.predictions()].extra = extra
    return extra
