"""Registers the contrail UI with Airflow 3: the FastAPI app under the API server, the "Lake"
entry in the navigation, and the extra links of the quality, features, training and scoring
tasks. Airflow loads this file from the plugins folder; it only wires (code in ``app.py``)."""

from __future__ import annotations

from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

from contrail.ui.app import URL_PREFIX, WarmUpOnFirstRequest, create_app, link_kind


class _ContrailLink(BaseOperatorLink):
    """A link shown on the tasks :func:`link_kind` gives this kind; empty (hidden) elsewhere."""

    kind = ""

    def get_link(self, operator, *, ti_key) -> str:
        found = link_kind(ti_key.dag_id, ti_key.task_id)
        if found is None or found[0] != self.kind:
            return ""
        from contrail.connections import settings

        return (f"{settings().airflow_url}{URL_PREFIX}/links/{quote(ti_key.dag_id)}/"
                f"{quote(ti_key.run_id, safe='')}/{quote(ti_key.task_id)}")


class DataDocsLink(_ContrailLink):
    name = "Data Docs"
    kind = "data_docs"


class GateResultsLink(_ContrailLink):
    name = "Gate results"
    kind = "gate_results"


class MLflowRunLink(_ContrailLink):
    name = "MLflow run"
    kind = "mlflow_run"


class ModelVersionLink(_ContrailLink):
    name = "Model version"
    kind = "model_version"


_app = create_app()


class ContrailUIPlugin(AirflowPlugin):
    name = "contrail_ui"
    fastapi_apps = [{"app": _app, "url_prefix": URL_PREFIX, "name": "contrail"}]
    # the API server warms the Lake view's pointer cache in the background once it serves
    fastapi_root_middlewares = [{"middleware": WarmUpOnFirstRequest, "args": [],
                                 "kwargs": {"warm": _app.state.warm_up, "name": "Lake view warm-up"},
                                 "name": "contrail_lake_warm_up"}]
    external_views = [{"name": "Lake", "href": URL_PREFIX.lstrip("/") + "/lake", "destination": "nav",
                       "url_route": "lake", "category": "browse"}]
    global_operator_extra_links = [DataDocsLink(), GateResultsLink(), MLflowRunLink(), ModelVersionLink()]
