"""The plugin's FastAPI app, mounted under Airflow's API server at :data:`URL_PREFIX`.

Every route depends on Airflow's own authentication (``requires_authenticated``: the bearer
token, or the ``_token`` cookie the Airflow UI sets at login), so an anonymous request gets
401/403 — a plugin's routes are not behind the login by themselves.

Routes (under ``/contrail``):

* ``lake`` / ``lake/day/{dt}`` — the Lake view and one day's detail (HTML);
* ``api/lake`` / ``api/lake/day/{dt}`` — the same as JSON;
* ``object/{key}`` — one lake object (manifests, results, reasons), read with the stack's
  credentials;
* ``docs/{path}`` — the Data Docs site from ``quality/data-docs/`` (``docs/runs/<run>/…`` is
  each quality run's own build, whose ``static/`` assets are the site root's);
* ``links/{dag_id}/{run_id}/{task_id}`` — where a task's extra link points: the partition's
  validation page, the features gate results, the MLflow run, the model version.

The Lake view keeps each validated pointer's fields in memory, read once per ETag. A new API
server process would read them all on its first load (a year: ~730 GETs, seconds); instead
:class:`WarmUpOnFirstRequest`, a root middleware of the API server, reads them in a background
thread as soon as the server answers its first request (the stack's health check).
"""

from __future__ import annotations

import functools
import logging
import mimetypes
import threading
import time
from datetime import date
from typing import Any, Callable
from urllib.parse import quote

# at module level: the routes' annotations are strings (PEP 563), resolved in this namespace
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from contrail import catalog, connections, lake
from contrail.ui import lakeview, pages

URL_PREFIX = "/contrail"
log = logging.getLogger(__name__)


class WarmUpOnFirstRequest:
    """ASGI middleware: the first HTTP request through it starts ``warm`` once, in a daemon thread.

    Registered as a root middleware (``fastapi_root_middlewares``), so only the API server runs
    it: other processes load the plugins too (the scheduler, every task) and must start no
    thread. Starlette runs no startup event of a mounted app, hence a middleware. The request
    itself is not held up; a failed warm-up is logged and the first load reads the lake itself.
    """

    def __init__(self, app: Any, *, warm: Callable[[], Any], name: str = "contrail-warm-up") -> None:
        self.app, self._warm, self._name = app, warm, name
        self._once = threading.Lock()
        self.thread: threading.Thread | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.thread is None and self._once.acquire(blocking=False):
            self.thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self.thread.start()
        await self.app(scope, receive, send)

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self._warm()
        except Exception:
            log.warning("%s failed; the first load reads the lake itself", self._name, exc_info=True)
        else:
            log.info("%s done in %.1f s", self._name, time.perf_counter() - started)


def zones() -> lakeview.Zones:
    from contrail.settings import DATASETS

    cfg = connections.settings()
    return lakeview.Zones(DATASETS, cfg.feature_set, cfg.model_name)


def link_targets(kind: str, task_id: str, value: Any, *, feature_set: str, model_name: str,
                 mlflow_url: str) -> list[tuple[str, str]]:
    """(text, target) pairs a task's extra link leads to, from the XCom it returned (pure).

    Targets are lake keys (``quality/…``), served by the plugin, or MLflow URLs."""
    if not value:
        return []
    if kind == "data_docs":
        # the partitions that failed, when any did (what a red gate asks); else every one judged
        reports = [r for r in value if not r.get("passed")] or list(value)
        return [(f"{r['dataset']} dt={r['dt']} v{r['version']}: {'passed' if r.get('passed') else 'FAILED'}",
                 r["data_docs_page"]) for r in sorted(reports, key=lambda r: r.get("dt", "")) if r.get("data_docs_page")]
    if kind == "gate_results":
        return [(f"features gate dt={dt} build {value['build']}",
                 catalog.features_gate_result_key(feature_set, dt, value["build"])) for dt in value.get("targets", [])]
    if kind == "mlflow_run" and value.get("run_id"):
        return [(f"MLflow run {value['run_id']}",
                 f"{mlflow_url}/#/experiments/{value.get('experiment_id', '0')}/runs/{value['run_id']}")]
    if kind == "model_version" and value.get("model_version"):
        return [(f"{model_name} v{value['model_version']}",
                 f"{mlflow_url}/#/models/{quote(value.get('model_name', model_name))}/versions/{value['model_version']}")]
    return []


def link_kind(dag_id: str, task_id: str) -> tuple[str, str] | None:
    """Which extra link a task carries and the task whose return value feeds it (pure)."""
    if task_id.startswith(("validate_", "gate_")):
        return "data_docs", "validate_" + task_id.split("_", 1)[1]
    if dag_id.startswith("features") and task_id in ("publish", "build"):
        return "gate_results", "plan"
    if dag_id == "training" and task_id == "train":
        return "mlflow_run", "train"
    if dag_id == "scoring" and task_id == "score":
        return "model_version", "score"
    return None


def _return_value(dag_id: str, run_id: str, task_id: str) -> Any:
    """A task instance's return value, read in the API server (no task runs here)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=run_id, key="return_value", dag_ids=dag_id,
                                                 task_ids=task_id, limit=1)).first()
        return None if row is None else XComModel.deserialize_value(row)


def create_app():
    from airflow.api_fastapi.core_api.security import requires_authenticated

    # no /docs, /redoc, /openapi.json: FastAPI serves those without the app's dependencies
    app = FastAPI(title="contrail", dependencies=[Depends(requires_authenticated())],
                  docs_url=None, redoc_url=None, openapi_url=None)

    def base(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    pointers = lakeview.PointerCache()  # one per API server process: warm after the first load

    @functools.lru_cache(maxsize=4)
    def listing_client(kwargs: tuple[tuple[str, Any], ...]) -> Any:
        # one client per endpoint for the process (boto3 clients are thread-safe): making one
        # loads botocore's S3 model, which cost more CPU than parsing a year's listings
        return lakeview.listing_client(dict(kwargs))

    def view() -> tuple[dict, float]:
        started, reads = time.perf_counter(), pointers.reads
        cfg = connections.settings()
        s3 = listing_client(tuple(sorted(lake.client_kwargs(cfg).items())))
        data = lakeview.read_view(s3, cfg.bucket, zones(), pointers)
        # the pointer GETs this load made (0 once warm; a concurrent load's may be counted too)
        data["pointer_gets"] = pointers.reads - reads
        return data, time.perf_counter() - started

    # what WarmUpOnFirstRequest runs in the API server: one load, filling the pointer cache
    app.state.warm_up = view

    def detail(dt: str) -> dict:
        try:
            date.fromisoformat(dt)
        except ValueError:
            raise HTTPException(404, f"not a day: {dt}")
        return lakeview.day_detail(connections.s3(), connections.settings().bucket, zones(), dt)

    @app.get("/lake", response_class=HTMLResponse)
    def lake_page(request: Request):
        data, elapsed = view()
        return pages.lake_page(base(request), data, bucket=connections.settings().bucket, elapsed_s=elapsed)

    @app.get("/lake/day/{dt}", response_class=HTMLResponse)
    def day_page(request: Request, dt: str):
        z = zones()
        return pages.day_page(base(request), detail(dt), feature_set=z.feature_set, model_name=z.model_name)

    @app.get("/api/lake")
    def lake_json():
        data, elapsed = view()
        # plain JSON already: JSONResponse skips FastAPI's jsonable_encoder walk (25x json.dumps)
        return JSONResponse({**data, "elapsed_s": round(elapsed, 3)})

    @app.get("/api/lake/day/{dt}")
    def day_json(dt: str):
        return detail(dt)

    def serve(key: str, fallback: str | None = None) -> Response:
        s3, bucket = connections.s3(), connections.settings().bucket
        try:
            obj = s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            if fallback is None:
                raise HTTPException(404, f"no object s3://{bucket}/{key}")
            return serve(fallback)
        kind = (mimetypes.guess_type(key)[0] or obj.get("ContentType") or "application/octet-stream")
        if key.endswith((catalog.MANIFEST, catalog.REASON, ".json")):
            kind = "application/json"
        return Response(obj["Body"].read(), media_type=kind)

    @app.get("/object/{key:path}")
    def lake_object(key: str):
        return serve(key)

    @app.get("/docs/{path:path}")
    def data_docs(path: str):
        key = catalog.data_docs_prefix() + (path or "index.html")
        # a run's build links to the static assets the site root holds
        return serve(key, fallback=catalog.data_docs_shared(key))

    @app.get("/links/{dag_id}/{run_id}/{task_id}")
    def task_link(request: Request, dag_id: str, run_id: str, task_id: str):
        kind = link_kind(dag_id, task_id)
        if kind is None:
            raise HTTPException(404, f"{dag_id}.{task_id} carries no contrail link")
        cfg = connections.settings()
        targets = link_targets(kind[0], task_id, _return_value(dag_id, run_id, kind[1]),
                               feature_set=cfg.feature_set, model_name=cfg.model_name, mlflow_url=cfg.mlflow_url)
        hrefs = [(text, t if t.startswith("http") else
                  f"{base(request)}/docs/{quote(t[len(catalog.DATA_DOCS_PREFIX):])}" if t.startswith(catalog.DATA_DOCS_PREFIX)
                  else f"{base(request)}/object/{quote(t)}") for text, t in targets]
        if len(hrefs) == 1:
            return RedirectResponse(hrefs[0][1], status_code=307)
        return HTMLResponse(pages.links_page(base(request), f"{dag_id} / {run_id} / {task_id}", hrefs))

    return app

