"""A data scientist's path through the registry, as one would type it in a notebook.

    .venv/bin/python examples/notebook_champion.py --tracking-uri http://127.0.0.1:5000 \\
        [--bucket contrail-lake] [--model flight_delay] [--days 28]

Against the local stack (``make up``, some days through the pipeline; S3 through
``AWS_ENDPOINT_URL``, the emulator's credentials in the environment), it:
  1. lists the registered versions with their test metrics, threshold and promotion history;
  2. compares two versions (the champion and the newest other one) on the same window of
     published features — each re-scored, not read from its own run;
  3. trains a model of its own (the logistic-regression baseline) on the lake's features with
     contrail's code, logs it like the pipeline does and registers it;
  4. promotes it by hand. The pipeline respects that: a hand-set champion is never replaced
     automatically (``registry.decide_promotion``), the next training only becomes challenger.
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

import pandas as pd


def list_versions(client, name: str) -> pd.DataFrame:
    """One row per version: test metrics from its tags, threshold, decision and aliases."""
    from contrail import registry

    aliases = {str(v): a for a, v in client.get_registered_model(name).aliases.items()}
    rows = []
    for mv in client.search_model_versions(f"name='{name}'"):
        tags = mv.tags
        rows.append({"version": int(mv.version), "alias": aliases.get(str(mv.version), ""),
                     "test_roc_auc": float(tags.get("contrail.metric.test_roc_auc", "nan")),
                     "test_brier": float(tags.get("contrail.metric.test_brier", "nan")),
                     "threshold": tags.get(registry.THRESHOLD_TAG), "decision": tags.get("contrail.decision"),
                     "promoted_by": tags.get(registry.PROMOTED_BY_TAG), "run_id": mv.run_id})
    return pd.DataFrame(rows).sort_values("version").reset_index(drop=True)


def window_frame(s3, bucket: str, feature_set: str, days: int) -> pd.DataFrame:
    """The last ``days`` published feature partitions, read through the catalog's manifests."""
    from contrail import catalog
    from contrail.stages.training import training_window

    published = catalog.published(s3, bucket, catalog.features_zone(feature_set))
    window = training_window(published, window_days=days, window_end=None)
    return pd.concat([catalog.read_published(s3, bucket, published[d]) for d in window], ignore_index=True)


def compare(name: str, versions: list[str], frame: pd.DataFrame, tracking_uri: str) -> pd.DataFrame:
    """Each version loaded through the allow-list and evaluated on the same flights."""
    from contrail import registry, training

    rows = []
    for version in versions:
        loaded = registry.load_version(name, version, tracking_uri=tracking_uri)
        metrics = training.evaluate(loaded.model, frame)
        rows.append({"version": version, **{k: metrics[k] for k in ("roc_auc", "pr_auc", "brier", "ece", "rows")}})
    return pd.DataFrame(rows)


def register_my_model(client, name: str, frame: pd.DataFrame, *, feature_set: str, test_days: int = 7,
                      valid_days: int = 7) -> Any:
    """Train the logistic baseline on the lake's features, log it as the pipeline would, register it."""
    from contrail import monitoring, registry, training

    split = training.split_by_date(frame, test_days=test_days, valid_days=valid_days)
    model, fit = training.train(split.train, split.valid, {"C": 0.5}, training.LOGISTIC_REGRESSION)
    threshold = training.decide_threshold(model, split.valid)
    test = training.evaluate(model, split.test)
    run = registry.log_training_run(
        model=model, params={"C": 0.5}, model_type=training.LOGISTIC_REGRESSION, threshold=threshold,
        metrics={**fit, **{f"test_{k}": v for k, v in test.items()}}, split=split,
        partitions=[registry.FeaturePartition(d, "notebook", f"features/{feature_set}/dt={d}/")
                    for d in sorted(frame["dt"].unique())],
        feature_set=feature_set, dag_id="notebook", dag_run_id=f"notebook-{date.today()}", git_commit="notebook",
        job_version="notebook", quality={"passed": True}, profile=monitoring.feature_profile(training.labelled(split.train)))
    decision, version = registry.promote_if_better(
        client, name, run, test_df=split.test, challenger_metrics=test, margin=1.0,  # register, do not promote
        quality_passed=True, threshold=threshold)
    return version


def promote_by_hand(client, name: str, version: str, *, by: str = "data-scientist") -> None:
    """What the MLflow UI does, plus who did it: the pipeline reads this as set by hand."""
    from contrail import registry

    client.set_registered_model_alias(name, registry.CHAMPION, version)
    client.set_model_version_tag(name, version, registry.PROMOTED_BY_TAG, by)


def main(argv: list[str] | None = None, s3=None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--bucket", default="contrail-lake")
    parser.add_argument("--model", default="flight_delay")
    parser.add_argument("--feature-set", default="flights_v1")
    parser.add_argument("--days", type=int, default=28)
    args = parser.parse_args(argv)

    import boto3
    import mlflow

    from contrail import registry

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment("notebook")
    client = mlflow.MlflowClient(args.tracking_uri)
    s3 = s3 or boto3.client("s3")

    versions = list_versions(client, args.model)
    print(versions.to_string(index=False))
    for event in registry.promotion_history(client, args.model):
        print(f"  {event['at']} {event['event']:>10} v{event['version']}: {event['reason']}")

    frame = window_frame(s3, args.bucket, args.feature_set, args.days)
    champion = registry.current_champion(client, args.model)
    other = str(versions.loc[versions["version"] != int(champion.version), "version"].max())
    compared = compare(args.model, [champion.version, other], frame, args.tracking_uri)
    print(compared.to_string(index=False))

    mine = register_my_model(client, args.model, frame, feature_set=args.feature_set)
    promote_by_hand(client, args.model, str(mine.version))
    now = registry.current_champion(client, args.model)
    print(f"champion is now v{now.version} (set by hand: {now.set_by_hand})")
    return {"versions": versions, "compared": compared, "mine": str(mine.version), "champion": now}


if __name__ == "__main__":
    main()
