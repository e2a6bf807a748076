"""What a person sees, in a real browser (Debian's Chromium driven by Playwright) against the
session's stack: log in through Airflow's form, open the Lake view and a day with a
quarantined partition, follow the quality task's Data Docs extra link to the failing
expectation, and open the MLflow model page. Screenshots go to ``tests/artifacts/ui/``.
"""

from __future__ import annotations

import gzip
import re
import shutil
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pytest

from contrail import catalog, lake

pytestmark = pytest.mark.e2e

DAYS = [date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)]  # the pipeline test's days
BAD_DAY = date(2013, 1, 4)  # used only when no earlier test left a quarantined day
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"


@pytest.fixture(scope="module")
def lake_state(stack):
    """The three days through every stage, and one flights version the quality gate
    quarantined (an earlier module's, or one crafted here through the real DAGs)."""
    from contrail import nycflights
    from contrail.demo import run_pipeline, wait_for
    from contrail.simulate import drop_days

    run_pipeline(stack, DAYS, timeout=1500)
    s3, bucket = lake.s3_client(stack), stack.bucket

    def quarantined():
        return sorted(o.key for o in lake.list_objects(s3, bucket, catalog.quarantine_zone("flights"))
                      if "/v=" in o.key and o.key.endswith("/" + catalog.REASON))

    if not quarantined():
        bad = nycflights.day("flights", BAD_DAY)
        bad.loc[bad.index[:50], "origin"] = "XXX"
        s3.put_object(Bucket=bucket, Key=f"{catalog.incoming_prefix('flights', BAD_DAY)}flights_{BAD_DAY}.csv.gz",
                      Body=gzip.compress(bad.to_csv(index=False, na_rep="NA").encode(), mtime=0))
        drop_days(s3, bucket, [BAD_DAY], datasets=("weather",))
        wait_for(quarantined, "the quality gate to quarantine the bad flights day", 900)
    reason_key = quarantined()[0]
    dt, version = re.search(r"dt=([0-9-]{10})/v=(\d+)/", reason_key).groups()
    result = wait_for(lambda: lake.exists(s3, bucket, catalog.quality_result_key("flights", dt, int(version)))
                      and lake.read_json(s3, bucket, catalog.quality_result_key("flights", dt, int(version))),
                      "the quarantined version's quality result", 300)
    return {"dt": dt, "version": int(version), "quality_run": result["run_id"]}


@pytest.fixture(scope="module")
def browser_page(stack):
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "no chromium on PATH: `make browser` installs Debian's"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 760})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def _login(page, settings) -> None:
    from contrail.stack.local import AIRFLOW_USER, airflow_password

    page.goto(f"{settings.airflow_url}/")
    page.fill("input[name=username]", AIRFLOW_USER)
    page.fill("input[name=password]", airflow_password(settings))
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "login" not in url)


def _shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def test_a_person_finds_the_bad_day_its_failing_rule_and_the_model_story(stack, lake_state, browser_page):
    from contrail.stack.api import AirflowClient

    page, settings = browser_page, stack
    base = settings.airflow_url
    anonymous = page.request.get(f"{base}/contrail/api/lake")
    assert anonymous.status in (401, 403)  # before the login, the plugin refuses

    _login(page, settings)
    # the Lake view, from the navigation entry the plugin adds
    page.goto(f"{base}/plugin/lake")
    frame = page.frame_locator("iframe").first
    frame.locator(f"a.day[data-dt='{lake_state['dt']}']").first.wait_for()
    assert frame.locator("a.day[data-status=scored]").count() >= len(DAYS)
    _shot(page, "lake_view")

    # the quarantined day: its failed version, the broken rule, the reason
    frame.locator(f"a.day[data-dt='{lake_state['dt']}']").first.click()
    frame.locator("text=quarantine reason").first.wait_for()
    body = frame.locator("body").inner_text()
    assert "failed" in body and "origin" in body, body[:2000]
    _shot(page, "lake_day")

    # the quality task that judged it carries the Data Docs extra link
    run_id = lake_state["quality_run"]
    links = AirflowClient.for_local(settings).request(
        "GET", f"/dags/quality/dagRuns/{quote(run_id, safe='')}/taskInstances/validate_flights/links")
    target = links["extra_links"]["Data Docs"]
    assert target and "/contrail/links/quality/" in target
    page.goto(f"{base}/dags/quality/runs/{quote(run_id, safe='')}/tasks/validate_flights/details")
    button = page.get_by_role("link", name="Data Docs").first
    button.wait_for()
    _shot(page, "quality_task")
    button.click()  # same origin: Airflow opens it in place
    page.wait_for_url("**/contrail/docs/runs/**", wait_until="domcontentloaded")  # its CDN styles are offline
    docs = page.locator("body").inner_text()
    assert "origin" in docs and lake_state["dt"] in page.url + docs
    assert "expect_column_values_to_be_in_set" in page.content() or "belong to this set" in docs
    # the run's build has no static assets of its own: its page's styles are the site root's
    styles = re.sub(r"(/contrail/docs/runs/[^/]+/).*", r"\1static/styles/data_docs_default_styles.css", page.url)
    response = page.request.get(styles)
    assert response.ok and response.headers["content-type"].startswith("text/css"), (styles, response.status)
    _shot(page, "data_docs")

    # the model's story in MLflow
    page.goto(f"{settings.mlflow_url}/#/models/{settings.model_name}")
    page.locator("text=Predicts whether").first.wait_for()
    _shot(page, "mlflow_model")


def test_the_demo_replays_the_stream_and_measures_its_freshness(stack, lake_state):
    """``make demo``'s stream step on the same stack: the departures it replays are scored by
    the event path, and the freshness it reports is measured on them."""
    from contrail.demo import run_stream

    result = run_stream(stack, DAYS[-1], timeout=600)
    print(f"stream: {result}")
    assert 100 <= result["events"] <= 400
    assert result["scored"] > 0
    assert 0 < result["freshness_p50_s"] <= result["freshness_max_s"] < 600
