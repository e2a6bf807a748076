"""HTML for the Lake view (pure functions of the view's data; no JavaScript, no build step).

Every lake object is linked through the plugin's ``object/`` route (the emulator, like S3,
refuses unsigned browser requests) and every Data Docs page through ``docs/``; ``base`` is the
plugin's mount path, so the pages work inside the Airflow UI's frame and on their own.
"""

from __future__ import annotations

from datetime import date, timedelta
from html import escape
from typing import Any, Mapping
from urllib.parse import quote

from contrail import catalog
from contrail.ui.lakeview import months

COLOURS = {"landed": "#9fb3c8", "validated": "#2f9e44", "warned": "#f08c00", "healed": "#12b886",
           "quarantined": "#e03131", "built": "#7048e8", "scored": "#1c7ed6", "staged": "#dee2e6"}
LABELS = {"warned": "validated with warnings"}  # a status's words where its key is terse
_STYLE = """body{font:14px system-ui,sans-serif;margin:16px;color:#212529}
h1{font-size:20px}h2{font-size:16px;margin:18px 0 6px}table{border-collapse:collapse}
td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
.months{display:flex;flex-wrap:wrap;gap:10px}.month{font-size:11px}
.days{display:grid;grid-template-columns:repeat(7,16px);gap:2px}
.day{width:16px;height:16px;border-radius:3px;background:#f1f3f5;display:block}
.legend span{display:inline-block;padding:1px 6px;margin-right:4px;border-radius:3px;color:#fff}
.bad{color:#c92a2a}.ok{color:#2b8a3e}.warn{color:#d9480f}code{font-size:12px}"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def object_link(base: str, key: str | None, text: str | None = None) -> str:
    if not key:
        return "—"
    return f"<a href='{base}/object/{quote(key)}'>{escape(text or key)}</a>"


def docs_link(base: str, key: str | None, text: str = "Data Docs page") -> str:
    if not key:
        return "—"
    return f"<a href='{base}/docs/{quote(key[len(catalog.DATA_DOCS_PREFIX):])}'>{escape(text)}</a>"


def _title(row: str, dt: str, cell: Mapping[str, Any]) -> str:
    extra = []
    if cell.get("warnings"):
        extra.append(f"{cell['warnings']} warning(s)")
    if cell.get("versions"):
        extra.append("versions " + ",".join(f"v{v}" for v in cell["versions"]))
    if cell.get("quarantined"):
        extra.append("quarantined " + ",".join(f"v{v}" for v in cell["quarantined"]))
    if cell.get("rejected_drops"):
        extra.append(f"{cell['rejected_drops']} rejected drop(s)")
    if cell.get("model_versions"):
        extra.append("model v" + ",".join(cell["model_versions"]))
    elif cell.get("builds"):
        extra.append("builds " + ",".join(cell["builds"]))
    status = LABELS.get(cell["status"], cell["status"])
    return f"{row} {dt}: {status}" + (f" ({'; '.join(extra)})" if extra else "")


def calendar(base: str, row: str, cells: Mapping[str, Mapping[str, Any]], span: list[str]) -> str:
    """One row's days as month blocks of a week grid; a day links to its detail."""
    blocks = []
    for month in span:
        first = date.fromisoformat(month + "-01")
        cells_html = ["<span class='day' style='visibility:hidden'></span>"] * first.weekday()
        day = first
        while day.month == first.month:
            dt = day.isoformat()
            cell = cells.get(dt)
            if cell is None:
                cells_html.append(f"<span class='day' title='{dt}: nothing'></span>")
            else:
                cells_html.append(
                    f"<a class='day' data-dt='{dt}' data-status='{cell['status']}' "
                    f"style='background:{COLOURS.get(cell['status'], '#adb5bd')}' "
                    f"title='{escape(_title(row, dt, cell))}' href='{base}/lake/day/{dt}'></a>")
            day += timedelta(days=1)
        blocks.append(f"<div class='month'>{month}<div class='days'>{''.join(cells_html)}</div></div>")
    return "<div class='months'>" + "".join(blocks) + "</div>"


def lake_page(base: str, view: Mapping[str, Any], *, bucket: str, elapsed_s: float) -> str:
    span = months(view["days"])
    legend = "".join(f"<span style='background:{c}'>{LABELS.get(s, s)}</span>" for s, c in COLOURS.items())
    sections = []
    for row, cells in view["rows"].items():
        counts = ", ".join(f"{n} {LABELS.get(s, s)}" for s, n in sorted(view["counts"][row].items())) or "empty"
        sections.append(f"<h2>{escape(row)} <small>({counts})</small></h2>"
                        + calendar(base, row, cells, span))
    def days_with(status: str) -> str:
        days = sorted({dt for row in view["rows"].values() for dt, c in row.items() if c["status"] == status})
        return ", ".join(f"<a href='{base}/lake/day/{d}'>{d}</a>" for d in days) or "none"

    return _page("Lake", f"<h1>Lake <small>s3://{escape(bucket)}</small></h1>"
                 f"<p class='legend'>{legend}</p><p>Quarantined days: <span class='bad'>{days_with('quarantined')}</span>"
                 f"<br>Validated with warnings: <span class='warn'>{days_with('warned')}</span></p>"
                 + "".join(sections)
                 + f"<p><small>{len(view['days'])} day(s), read from the lake in {elapsed_s:.2f} s</small></p>")


def _raw_section(base: str, ds: Mapping[str, Any]) -> str:
    rows = []
    for v in ds["versions"]:
        verdict = ("pending" if v["passed"] is None
                   else "<span class='bad'>failed</span>" if not v["passed"]
                   else f"<span class='warn'>passed with {len(v['warnings'])} warning(s)</span>" if v["warnings"]
                   else "<span class='ok'>passed</span>")
        rules = "".join(f"<div class='bad'>{escape(f)}</div>" for f in v["failures"])
        rules += "".join(f"<div class='warn'>{escape(w)}</div>" for w in v["warnings"])
        rows.append(f"<tr><td>v{v['version']}</td><td>{verdict}</td><td>{v['rows'] if v['rows'] is not None else ''}</td>"
                    f"<td>{object_link(base, v['manifest'], 'manifest')}</td>"
                    f"<td>{object_link(base, v['result'], 'quality result')}</td>"
                    f"<td>{docs_link(base, v['data_docs'])}</td>"
                    f"<td>{object_link(base, v['reason'], 'quarantine reason')}</td><td>{rules}</td></tr>")
    for r in ds["rejected_drops"]:
        failures = "".join(f"<div class='bad'>{escape(f)}</div>" for f in r["failures"])
        rows.append(f"<tr><td>rejected drop</td><td><span class='bad'>quarantined by landing</span></td><td></td>"
                    f"<td>{' '.join(object_link(base, k, k.rsplit('/', 1)[-1]) for k in r['objects'])}</td><td></td>"
                    f"<td></td><td>{object_link(base, r['reason'], 'quarantine reason')}</td><td>{failures}</td></tr>")
    if not rows:
        return f"<h2>{escape(ds['dataset'])}</h2><p>nothing landed</p>"
    return (f"<h2>{escape(ds['dataset'])}</h2><table><tr><th>version</th><th>verdict</th><th>rows</th>"
            "<th>manifest</th><th>result</th><th>validation</th><th>quarantine</th><th>broken rules and warnings</th></tr>"
            + "".join(rows) + "</table>")


def _published_section(base: str, title: str, part: Mapping[str, Any] | None, fields: tuple[str, ...]) -> str:
    if part is None:
        return f"<h2>{escape(title)}</h2><p>not published</p>"
    cells = "".join(f"<tr><th>{f}</th><td>{escape(str(part[f]))}</td></tr>" for f in fields if f in part)
    gate = part.get("gate_result_uri")
    if gate:
        cells += f"<tr><th>gate result</th><td>{object_link(base, gate.split('/', 3)[-1], 'gate result')}</td></tr>"
    return (f"<h2>{escape(title)}</h2><table><tr><th>manifest</th><td>{object_link(base, part['manifest'])}</td></tr>"
            f"<tr><th>digest</th><td><code>{part['digest']}</code></td></tr>{cells}</table>")


def day_page(base: str, detail: Mapping[str, Any], *, feature_set: str, model_name: str) -> str:
    body = [f"<p><a href='{base}/lake'>← Lake</a></p><h1>{detail['dt']}</h1>"]
    body += [_raw_section(base, ds) for ds in detail["datasets"]]
    body.append(_published_section(base, f"features/{feature_set}", detail["features"],
                                   ("build", "job_version", "previous_build", "rows", "warnings")))
    body.append(_published_section(base, f"predictions/{model_name}", detail["predictions"],
                                   ("model_version", "build", "run_id", "rows", "positive_rate")))
    return _page(f"Lake {detail['dt']}", "".join(body))


def links_page(base: str, title: str, items: list[tuple[str, str]]) -> str:
    """A list of targets when a task answers for several (each item: text, href)."""
    lis = "".join(f"<li><a href='{escape(href)}'>{escape(text)}</a></li>" for text, href in items) or "<li>none</li>"
    return _page(title, f"<h1>{escape(title)}</h1><ul>{lis}</ul>")
