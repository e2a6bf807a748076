"""Bench: the model figures, from the pipeline's own published Spark features.

    .venv/bin/python bench/bench_model.py [--png docs/monitored_auc_2013.png]

1. Lands every 2013 day of flights and weather into a moto server (its own process), runs the
   real feature job (``contrail_spark.build_features.main``, local SparkSession) over the year
   and publishes each staged build through the catalog (``catalog.publish_partition``; the
   features gate is not run here — see ``bench_quality.py`` for its cost).
2. Model families: trains each ``model_type`` through the training stage's own
   ``train_on_lake`` (the DAG's code: same window, split, threshold rule) on
   2013-06-01 .. 2013-09-12 (train to Aug 15, validation Aug 16-29, held-out test
   Aug 30 - Sep 12) and prints test ROC AUC, PR AUC, Brier and calibration error (ECE).
3. Monitoring over 2013: a champion trained on Jan 1 - Mar 31 (test Mar 18-31) is registered in a
   SQLite MLflow, every day is scored by the scoring stage and monitored by the monitoring
   stage against the landed outcomes; prints the daily AUC range after the training window and
   the degradation rule's verdict, and plots the monitored AUC (``--png``).
4. Stream vs batch: the stream's features (only days before the event's day) for a week of
   flights, scored with the same champion, against the batch predictions of the same flights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import boto3
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_features import _free_port, land  # noqa: E402  (the same landing as the feature bench)

from contrail import catalog, features, lake, monitoring, nycflights, registry, training  # noqa: E402
from contrail_spark import build_features  # noqa: E402

BUCKET = "contrail-bench-model"
FEATURE_SET = "flights_v1"
MODEL = "bench_delay"
FAMILY_WINDOW = {"window_end": date(2013, 9, 12), "window_days": 104, "test_days": 14, "valid_days": 14}
CHAMPION_WINDOW = {"window_end": date(2013, 3, 31), "window_days": 90, "test_days": 14, "valid_days": 14}
STREAM_DAYS = [date(2013, 6, 10) + timedelta(days=k) for k in range(7)]


def build_year(spark, s3, days: list[date]) -> int:
    """Land, build and publish the features of ``days``; returns the rows published."""
    validated = {ds: {d: land(s3, BUCKET, ds, d, nycflights.day(ds, d)) for d in days}
                 for ds in ("flights", "weather")}
    plan = features.plan_features(validated, days, feature_set=FEATURE_SET, job_version="bench-model",
                                  bucket=BUCKET, build="bench-model")
    lake.put_json(s3, BUCKET, catalog.feature_plan_key(FEATURE_SET, "bench-model"), plan)
    build_features.main(["--plan", lake.s3_uri(BUCKET, catalog.feature_plan_key(FEATURE_SET, "bench-model")),
                         "--io", "local"], spark=spark)
    rows = 0
    for dt, out in plan["outputs"].items():
        staged = lake.read_json(s3, BUCKET, out["manifest"])
        catalog.publish_partition(s3, BUCKET, out["partition"], {**staged, "build": out["build"],
                                                                 "gate_result_uri": None})
        rows += staged["rows"]
    return rows


def families(s3) -> dict[str, dict]:
    from contrail.stages.training import train_on_lake

    out = {}
    for model_type in training.MODEL_TYPES:
        started = time.perf_counter()
        trained = train_on_lake(s3, BUCKET, feature_set=FEATURE_SET, model_type=model_type, params={},
                                **FAMILY_WINDOW)
        m = trained.test_metrics
        out[model_type] = {"test": f"{trained.split.test_start}..{FAMILY_WINDOW['window_end']}",
                           "rows": int(m["rows"]), "roc_auc": round(m["roc_auc"], 4),
                           "pr_auc": round(m["pr_auc"], 4), "brier": round(m["brier"], 4),
                           "ece": round(m["ece"], 4), "threshold": round(trained.threshold, 4),
                           "fit_s": round(time.perf_counter() - started, 1)}
        print(json.dumps({"family": model_type, **out[model_type]}), flush=True)
    return out


def register_champion(s3, tmp: str):
    import mlflow

    from contrail.stages.training import train_on_lake

    uri = f"sqlite:///{tmp}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("bench", artifact_location=Path(tmp, "a").as_uri()))
    trained = train_on_lake(s3, BUCKET, feature_set=FEATURE_SET, model_type=training.HIST_GRADIENT_BOOSTING,
                            params={}, **CHAMPION_WINDOW)
    run = registry.log_training_run(
        model=trained.model, params=trained.params, metrics=trained.test_metrics, split=trained.split,
        partitions=[registry.FeaturePartition(p.dt.isoformat(), p.digest, p.uri) for p in trained.parts],
        feature_set=FEATURE_SET, dag_id="bench", dag_run_id="bench", git_commit="bench", job_version="bench",
        quality={"passed": True}, threshold=trained.threshold,
        profile=monitoring.feature_profile(training.labelled(trained.split.train)))
    registry.promote_if_better(mlflow.MlflowClient(), MODEL, run, test_df=trained.split.test,
                               challenger_metrics=trained.test_metrics, margin=0.0, quality_passed=True,
                               threshold=trained.threshold)
    return uri, registry.load_champion(MODEL, tracking_uri=uri)


def monitor_year(s3, uri: str, champion, png: Path | None) -> dict:
    import mlflow

    from contrail.stages import monitoring as monitoring_stage
    from contrail.stages.scoring import score

    started = time.perf_counter()
    score(s3, BUCKET, feature_set=FEATURE_SET, model_name=MODEL, model=champion.model,
          model_version=champion.version, run_id=champion.run_id, threshold=champion.threshold)
    scored_s = time.perf_counter() - started
    started = time.perf_counter()
    result = monitoring_stage.monitor(s3, BUCKET, model_name=MODEL, feature_set=FEATURE_SET,
                                      mlflow_client=mlflow.MlflowClient(uri), rule=monitoring.DegradationRule())
    monitor_s = time.perf_counter() - started
    series = monitoring_stage.monitoring_series(s3, BUCKET, MODEL, version=champion.version, source="batch")
    after = series.loc[series["dt"] > CHAMPION_WINDOW["window_end"].isoformat()]
    summary = {"days_monitored": len(series), "after_training": f"{after['dt'].min()}..{after['dt'].max()}",
               "auc_min": round(float(after["roc_auc"].min()), 4), "auc_max": round(float(after["roc_auc"].max()), 4),
               "auc_median": round(float(after["roc_auc"].median()), 4),
               "auc_p10": round(float(after["roc_auc"].quantile(0.1)), 4),
               "psi_max_median": round(float(after["psi_max"].median()), 4),
               "days_psi_over_0.2": int((after["psi_max"] > 0.2).sum()),
               "retrain": result.retrain, "score_s": round(scored_s, 1), "monitor_s": round(monitor_s, 1)}
    print(json.dumps({"monitoring": summary}), flush=True)
    if png is not None:
        plot(series, png)
    return summary


def plot(series, png: Path) -> None:
    import pandas as pd
    from matplotlib.figure import Figure

    days = pd.to_datetime(series["dt"])
    fig = Figure(figsize=(8, 3), dpi=90, layout="tight")
    ax = fig.add_subplot()
    ax.plot(days, series["roc_auc"], lw=0.8, label="daily ROC AUC (batch predictions vs landed outcomes)")
    ax.plot(days, series["roc_auc"].rolling(7, min_periods=1).mean(), lw=1.6, label="7-day mean")
    ax.axvspan(pd.Timestamp("2013-01-01"), pd.Timestamp(CHAMPION_WINDOW["window_end"]), color="grey", alpha=0.15,
               label="champion's training window")
    ax.axhline(monitoring.DegradationRule().auc_floor, ls=":", color="red", label="degradation floor")
    ax.set(title="Monitored AUC of one champion over 2013 (HGB trained Jan 1 - Mar 31)", ylabel="ROC AUC")
    ax.legend(fontsize=7, loc="lower left")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    print(f"wrote {png}", flush=True)


def stream_vs_batch(s3, spark, champion) -> dict:
    """The stream's features (what is known before each day) vs the batch's, same flights, same model."""
    import pandas as pd

    from contrail.simulate import schedule_events
    from contrail.stream.lookups import BatchFeatures, stream_features

    flights = nycflights.load("flights")
    events = list(schedule_events(flights, datetime.combine(STREAM_DAYS[0], datetime.min.time()),
                                  datetime.combine(STREAM_DAYS[-1] + timedelta(days=1), datetime.min.time())))
    feats = stream_features(events, BatchFeatures(s3, BUCKET, FEATURE_SET), spark)
    stream_p = pd.Series(champion.predict_proba(feats), index=feats["flight_id"].to_numpy())
    batch = pd.concat([catalog.read_published(s3, BUCKET, catalog.published_one(
        s3, BUCKET, catalog.predictions_partition(MODEL, d))) for d in STREAM_DAYS])
    batch_p = batch.set_index("flight_id")["probability"]
    both = pd.concat([stream_p.rename("stream"), batch_p.rename("batch")], axis=1, join="inner")
    diff = (both["stream"] - both["batch"]).abs()
    # where the difference comes from: trailing rates (recomputed, should equal batch's) vs
    # weather (the latest earlier hour instead of the scheduled hour's observation)
    from contrail_spark import transforms

    batch_f = pd.concat([catalog.read_published(s3, BUCKET, catalog.published_one(
        s3, BUCKET, catalog.features_partition(FEATURE_SET, d))) for d in STREAM_DAYS]).set_index("flight_id")
    stream_f = feats.set_index("flight_id").loc[both.index]
    batch_f = batch_f.loc[both.index]
    trailing = list(transforms.TRAILING_COLUMNS)
    same = np.isclose(stream_f[trailing].to_numpy(dtype=float), batch_f[trailing].to_numpy(dtype=float),
                      equal_nan=True).all(axis=1)
    weather = list(transforms.WEATHER_VALUE_COLUMNS)
    swapped = stream_f.copy()
    swapped[weather] = batch_f[weather].to_numpy(dtype=float)
    rest = (pd.Series(champion.predict_proba(swapped), index=both.index) - both["batch"]).abs()
    out = {"days": f"{STREAM_DAYS[0]}..{STREAM_DAYS[-1]}", "flights": len(both),
           "trailing_identical_share": round(float(same.mean()), 4),
           "abs_diff_mean_with_batch_weather": round(float(rest.mean()), 4),
           "abs_diff_mean": round(float(diff.mean()), 4), "abs_diff_p50": round(float(diff.median()), 4),
           "abs_diff_p95": round(float(diff.quantile(0.95)), 4), "abs_diff_max": round(float(diff.max()), 4),
           "label_agreement": round(float(((both["stream"] >= champion.threshold)
                                           == (both["batch"] >= champion.threshold)).mean()), 4)}
    print(json.dumps({"stream_vs_batch": out}), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, default=None, help="write the monitored-AUC plot here")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args(argv)

    from contrail.stack import local

    port = _free_port()
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"),
                               "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    local._wait(lambda: local._port_open("127.0.0.1", port), "the emulator", 60, server, None)
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(args.master).appName("contrail-bench-model")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
             .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", "3g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    report = {}
    try:
        started = time.perf_counter()
        days = [nycflights.FIRST_DAY + timedelta(days=k) for k in range(365)]
        rows = build_year(spark, s3, days)
        print(json.dumps({"features": {"days": len(days), "rows": rows,
                                       "s": round(time.perf_counter() - started, 1)}}), flush=True)
        report["families"] = families(s3)
        with tempfile.TemporaryDirectory(prefix="contrail-bench-model-") as tmp:
            uri, champion = register_champion(s3, tmp)
            report["monitoring"] = monitor_year(s3, uri, champion, args.png)
            report["stream_vs_batch"] = stream_vs_batch(s3, spark, champion)
    finally:
        spark.stop()
        server.terminate()
        server.wait()
    return report


if __name__ == "__main__":
    main()
