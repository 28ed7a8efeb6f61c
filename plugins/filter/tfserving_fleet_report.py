# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Filters of the fleet status report (playbooks/status.yml) that render it: the model rows and the drift
rows as fixed-width text tables, a Markdown document and a standalone HTML page. No I/O.

- ``tfserving_fleet_table`` / ``tfserving_fleet_drift_table``: the rows (of tfserving_fleet_rows,
  tfserving_fleet_drift) as text tables for the play output.
- ``tfserving_fleet_markdown`` / ``tfserving_fleet_html``: the report as a document, with the drift
  table when given one.
"""

from __future__ import annotations

import html

from ansible_collections.tfserving.fleet.plugins.filter.tfserving_fleet_drift import (
    FIELD_NAMES,
    drift_summary,
    gpu_text,
    short_image_id,
)
from ansible_collections.tfserving.fleet.plugins.filter.tfserving_fleet_status import INFO, summary

COLUMNS = (
    ("host", "Host"),
    ("instance", "Instance"),
    ("model", "Model"),
    ("version", "Version"),
    ("labels", "Labels"),
    ("state", "State"),
    ("expected", "Expected"),
    ("result", "Result"),
    ("detail", "Error / note"),
)


def _cell(row, key):
    value = row.get(key)
    if key == "labels":
        return ",".join(value) if value else ""
    if key == "expected":
        return "yes" if value else "no"
    if value is None:
        return "-"
    return str(value)


def _text_table(head, cells, max_detail):
    """Fixed-width columns, a dashed line under the head; the last cell of a row cut at ``max_detail``."""
    for line in cells:
        if len(line[-1]) > max_detail:
            line[-1] = line[-1][: max_detail - 3] + "..."
    widths = [max(len(x) for x in col) for col in zip(head, *cells, strict=True)]

    def fmt(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(line) for line in cells])


def table(rows_, max_detail=100):
    """A fixed-width text table (one line per row), for the play output."""
    cells = [[_cell(r, k) for k, _unused in COLUMNS] for r in rows_]
    return _text_table([title for _unused, title in COLUMNS], cells, max_detail)


def _md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(rows_, title="TF Serving fleet status", since="", drift_rows=None):
    s = summary(rows_)
    verdict = "every expected version is AVAILABLE" if s["ok"] else f"{s['failed']} problem(s)"
    lines = [f"# {title}", ""]
    if since:
        lines += [f"In this state since {since}.", ""]
    lines += [
        f"**{verdict}** - {s['hosts']} host(s), {s['instances']} instance(s), "
        f"{s['as_expected']}/{s['expected']} expected version(s) as expected, {s['warnings']} warning(s).",
        "",
        "| " + " | ".join(t for _unused, t in COLUMNS) + " |",
        "|" + "|".join("---" for _unused in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_md(_cell(r, k)) for k, _unused in COLUMNS) + " |" for r in rows_]
    if s["problems"]:
        lines += ["", "## Problems", ""] + [f"- {_md(p)}" for p in s["problems"]]
    if drift_rows:
        lines += _drift_markdown(drift_rows)
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eee; }
tr.OK td.result { background: #d4edda; }
tr.FAIL td { background: #f8d7da; }
tr.WARN td.result { background: #fff3cd; }
.verdict-ok { color: #155724; } .verdict-fail { color: #721c24; }
"""


def html_page(rows_, title="TF Serving fleet status", since="", drift_rows=None):
    """A standalone HTML page (inline CSS, no scripts), escaped; the drift table after the models."""
    s = summary(rows_)
    esc = html.escape
    verdict = "Every expected version is AVAILABLE" if s["ok"] else f"{s['failed']} problem(s)"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}{_DRIFT_CSS if drift_rows else ''}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if since:
        parts.append(f"<p>In this state since {esc(since)}.</p>")
    parts.append(
        '<p class="verdict-{}"><strong>{}</strong> &mdash; {} host(s), {} instance(s), {}/{} expected '
        "version(s) as expected, {} warning(s).</p>".format(
            "ok" if s["ok"] else "fail", esc(verdict), s["hosts"], s["instances"], s["as_expected"],
            s["expected"], s["warnings"])
    )
    header = "".join(f"<th>{esc(t)}</th>" for _unused, t in COLUMNS)
    parts.append("<table><thead><tr>" + header + "</tr></thead><tbody>")
    for r in rows_:
        cells = "".join(f'<td class="{k}">{esc(_cell(r, k))}</td>' for k, _unused in COLUMNS)
        parts.append(f'<tr class="{esc(r["result"] if r["result"] != INFO else "INFO")}">{cells}</tr>')
    parts.append("</tbody></table>")
    if s["problems"]:
        parts.append("<h2>Problems</h2><ul>" + "".join(f"<li>{esc(p)}</li>" for p in s["problems"]) + "</ul>")
    if drift_rows:
        parts += _drift_html(drift_rows)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------------
# The drift rows (tfserving_fleet_drift): what each host runs.

DRIFT_COLUMNS = (
    ("host", "Host"),
    ("instance", "Instance"),
    ("image", "Image"),
    ("image_id", "Image ID"),
    ("digest", "Repo digest"),
    ("tfserving_version", "TF Serving"),
    ("docker_version", "Docker"),
    ("containerd_version", "containerd"),
    ("runc_version", "runc"),
    ("runtime", "Runtime"),
    ("driver_version", "Driver"),
    ("cuda_version", "CUDA"),
    ("gpus", "GPUs"),
    ("drift_detail", "Drift"),
)


def _drift_cell(row, key):
    if not row.get("collected") and key not in ("host", "drift_detail"):
        return "-"
    value = row.get(key)
    if key == "gpus":
        return gpu_text(value)
    if key == "digest":
        return short_image_id(value.rsplit("@", 1)[-1]) if value else "-"
    if key == "image_id":
        return short_image_id(value) if value else "-"
    if value in (None, ""):
        return "-"
    return str(value)


def _drift_mark(row):
    return "DRIFT" if row.get("drifted") else ""


def drift_table(drift_rows, max_detail=100):
    """A fixed-width text table of the drift rows, marked rows first column ``DRIFT``."""
    head = [""] + [title for _key, title in DRIFT_COLUMNS]
    cells = [[_drift_mark(r)] + [_drift_cell(r, k) for k, _title in DRIFT_COLUMNS] for r in drift_rows]
    return _text_table(head, cells, max_detail)


def _drift_verdict(s):
    if s["ok"]:
        return "no drift: every host runs what the inventory says, as the rest of the fleet does"
    return f"{s['drifted']} instance(s) drifted"


def _drift_markdown(drift_rows):
    s = drift_summary(drift_rows)
    lines = ["", "## Images and runtimes", "", f"**{_drift_verdict(s)}**.", "",
             "| | " + " | ".join(t for _key, t in DRIFT_COLUMNS) + " |",
             "|" + "|".join("---" for _column in range(len(DRIFT_COLUMNS) + 1)) + "|"]
    for r in drift_rows:
        cells = [_md(_drift_cell(r, k)) for k, _title in DRIFT_COLUMNS]
        if r.get("drifted"):
            cells = [f"**{c}**" if k in r["drift_fields"] or k == "drift_detail" else c
                     for (k, _title), c in zip(DRIFT_COLUMNS, cells, strict=True)]
        lines.append("| " + " | ".join([("**DRIFT**" if r.get("drifted") else ""), *cells]) + " |")
    return lines


_DRIFT_CSS = """
div.scroll { overflow-x: auto; }
table.drift { font-size: 0.85em; }
table.drift td { white-space: nowrap; padding: 4px 6px; }
table.drift td.image, table.drift td.tfserving_version, table.drift td.drift_detail {
  white-space: normal; overflow-wrap: anywhere; min-width: 7em; }
tr.drift td { background: #fff3cd; }
tr.drift td.drift-field { background: #f5c26b; font-weight: bold; }
tr.drift td.mark { color: #8a4b00; font-weight: bold; }
td.mark { white-space: nowrap; }
.verdict-drift { color: #8a4b00; }
"""


def _drift_html(drift_rows):
    s = drift_summary(drift_rows)
    esc = html.escape
    parts = [
        '<h2 id="drift">Images and runtimes</h2>',
        '<p class="verdict-{}"><strong>{}</strong>.</p>'.format("ok" if s["ok"] else "drift", esc(_drift_verdict(s))),
        '<div class="scroll"><table class="drift"><thead><tr><th></th>'
        + "".join(f"<th>{esc(t)}</th>" for _key, t in DRIFT_COLUMNS)
        + "</tr></thead><tbody>",
    ]
    for r in drift_rows:
        fields = set(r.get("drift_fields") or [])
        cells = [f'<td class="mark">{"&#9888; DRIFT" if r.get("drifted") else ""}</td>']
        for key, _title in DRIFT_COLUMNS:
            cls = key + (" drift-field" if key in fields else "")
            title = ""
            if key in ("digest", "image_id") and r.get(key):
                title = f' title="{esc(str(r[key]))}"'
            text = _drift_cell(r, key)
            if key == "drift_detail" and r.get("drifted"):
                # The reasons are listed under the table; the row names the fields.
                text = ", ".join(FIELD_NAMES[f] for f in r["drift_fields"])
            cells.append(f'<td class="{cls}"{title}>{esc(text)}</td>')
        parts.append('<tr class="{}">{}</tr>'.format("drift" if r.get("drifted") else "same", "".join(cells)))
    parts.append("</tbody></table></div>")
    if s["marks"]:
        parts.append('<ul class="drift">' + "".join(f"<li>{esc(m)}</li>" for m in s["marks"]) + "</ul>")
    return parts


class FilterModule:
    """tfserving fleet report filters: the report as text, Markdown and HTML."""

    def filters(self):
        return {
            "tfserving_fleet_table": table,
            "tfserving_fleet_markdown": markdown,
            "tfserving_fleet_html": html_page,
            "tfserving_fleet_drift_table": drift_table,
        }
