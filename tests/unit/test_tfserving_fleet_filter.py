"""plugins/filter/tfserving_fleet_status.py and tfserving_fleet_report.py: the fleet status report of
playbooks/status.yml.

The per-host inputs are real tfserving_model_status results: the module's main() runs against the
scripted loopback server that answers TF Serving's exact REST bodies, with the expectations that
tfserving_fleet_checks derives from an inventory. The report filters then turn them into rows, a
summary, a text table, Markdown and HTML.
"""

from __future__ import annotations

import html.parser

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_fleet_drift as fleet_drift
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_fleet_report as fleet_report
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_fleet_status as fleet_status
from ansible_collections.tfserving.fleet.plugins.modules import tfserving_model_status as status_module
from tfserving_http_fake import FakeTFServing, err, metadata_body, ok, run_module, status_body

MODELS = [
    {
        "name": "half_plus_two",
        "version_policy": "specific",
        "versions": [123, 124],
        "labels": {"stable": 123, "canary": 124},
    },
    {"name": "half_plus_two_cpu", "source": "/srv/exports/cpu"},
]


def inventory(rest_port, models=None, **instance):
    return [{"name": "main", "rest_port": rest_port, "models": models or MODELS, **instance}]


@pytest.fixture
def fake():
    server = FakeTFServing().start()
    yield server
    server.stop()


def collect(capsys, instances):
    """What status.yml registers on one host: one module result per instance, with its loop item."""
    results = []
    for item in fleet_status.checks(instances):
        args = {"host": item["check_address"], "rest_port": item["rest_port"], "models": item["models"],
                "timeout": 0}
        failed, result = run_module(status_module.main, args, capsys)
        results.append({**result, "failed": failed, "item": item})
    return {"results": results}


def healthy(fake, canary=124):
    fake.status("half_plus_two", ok(status_body((124, "AVAILABLE"), (123, "AVAILABLE"), (122, "END"))))
    fake.on("GET", "/v1/models/half_plus_two/labels/stable/metadata", ok(metadata_body("half_plus_two", 123)))
    fake.on("GET", "/v1/models/half_plus_two/labels/canary/metadata", ok(metadata_body("half_plus_two", canary)))
    fake.status("half_plus_two_cpu", ok(status_body((123, "AVAILABLE"))))


def report(host, registered, instances):
    return fleet_status.host_report({"inventory_hostname": host, "tfserving_instances": instances,
                            "__tfserving_status": registered})


# -- what each instance must serve -------------------------------------------------------------------------
def test_checks_follow_the_version_policy_and_labels():
    out = fleet_status.checks(
        [*inventory(9501, bind_address="0.0.0.0"), {"name": "gone", "state": "absent", "models": []}])
    assert out == [
        {
            "instance": "main",
            "check_address": "127.0.0.1",
            "rest_port": 9501,
            "models": [
                {"name": "half_plus_two", "version": 123},
                {"name": "half_plus_two", "version": 124},
                {"name": "half_plus_two", "label": "canary", "version": 124},
                {"name": "half_plus_two", "label": "stable", "version": 123},
                {"name": "half_plus_two_cpu", "all_versions": True},
            ],
        }
    ]


def test_checks_use_the_bind_address_and_string_ports():
    out = fleet_status.checks([{"name": "a", "rest_port": "8601", "bind_address": "10.0.0.5",
                       "models": [{"name": "m", "versions": ["7"]}]}], "::")
    assert out[0]["check_address"] == "10.0.0.5" and out[0]["rest_port"] == 8601
    assert out[0]["models"] == [{"name": "m", "version": 7}]
    assert fleet_status.checks([{"name": "b", "models": []}], "::")[0]["check_address"] == "::1"


def test_checks_refuse_what_is_not_an_inventory():
    with pytest.raises(AnsibleFilterError, match="expects tfserving_instances"):
        fleet_status.checks({"name": "main"})
    with pytest.raises(AnsibleFilterError, match="not an IP address"):
        fleet_status.checks([{"name": "a", "bind_address": "example.com", "models": []}])


# -- rows from real module results ---------------------------------------------------------------------------
def test_a_healthy_instance_gives_one_ok_row_per_version(fake, capsys):
    healthy(fake)
    instances = inventory(fake.port)
    rows = fleet_status.rows([report("gpu-01", collect(capsys, instances), instances)])
    seen = [(r["model"], r["version"], r["labels"], r["state"], r["expected"], r["result"]) for r in rows]
    assert seen == [
        ("half_plus_two", 124, ["canary"], "AVAILABLE", True, "OK"),
        ("half_plus_two", 123, ["stable"], "AVAILABLE", True, "OK"),
        # Unloaded earlier: listed (TF Serving keeps END versions), not expected, not a problem.
        ("half_plus_two", 122, [], "END", False, "-"),
        ("half_plus_two_cpu", 123, [], "AVAILABLE", True, "OK"),
    ]
    assert all(r["host"] == "gpu-01" and r["instance"] == "main" for r in rows)
    summary = fleet_status.summary(rows)
    assert summary == {"ok": True, "hosts": 1, "instances": 1, "expected": 3, "as_expected": 3, "failed": 0,
                       "warnings": 0, "problems": []}


def test_a_label_pointing_elsewhere_fails_its_row_and_says_where_it_points(fake, capsys):
    healthy(fake, canary=123)
    instances = inventory(fake.port)
    rows = fleet_status.rows([report("gpu-01", collect(capsys, instances), instances)])
    row = next(r for r in rows if r["version"] == 124)
    assert row["labels"] == ["canary"] and row["state"] == "AVAILABLE" and row["result"] == "FAIL"
    assert "label canary of model half_plus_two points at 123, not 124" in row["detail"]
    summary = fleet_status.summary(rows)
    assert not summary["ok"] and summary["failed"] == 1
    assert summary["problems"] == [f"gpu-01/main/half_plus_two v124: {row['detail']}"]


def test_a_failed_load_is_quoted_and_an_unknown_model_fails(fake, capsys):
    fake.status("half_plus_two", ok(status_body(
        (124, "END", "NOT_FOUND", "Could not find SavedModel .pb or .pbtxt at supplied export directory path"),
        (123, "AVAILABLE"))))
    fake.on("GET", "/v1/models/half_plus_two/labels/stable/metadata", ok(metadata_body("half_plus_two", 123)))
    fake.on("GET", "/v1/models/half_plus_two/labels/canary/metadata", ok(metadata_body("half_plus_two", 123)))
    fake.status("half_plus_two_cpu", err(404, "Could not find any versions of model half_plus_two_cpu"))
    instances = inventory(fake.port)
    rows = fleet_status.rows([report("gpu-01", collect(capsys, instances), instances)])
    by_key = {(r["model"], r["version"]): r for r in rows}
    failed = by_key[("half_plus_two", 124)]
    assert failed["state"] == "END" and failed["result"] == "FAIL"
    assert failed["detail"].startswith("NOT_FOUND: Could not find SavedModel")
    cpu = by_key[("half_plus_two_cpu", None)]
    assert cpu["state"] == "MISSING" and cpu["result"] == "FAIL"
    assert "Could not find any versions of model half_plus_two_cpu" in cpu["detail"]
    assert not fleet_status.summary(rows)["ok"]


def test_a_failed_load_of_a_version_nobody_expects_is_a_warning_not_a_failure(fake, capsys):
    fake.status("half_plus_two_cpu", ok(status_body((126, "END", "UNKNOWN", "bad export"), (123, "AVAILABLE"))))
    instances = inventory(fake.port, models=[{"name": "half_plus_two_cpu", "versions": [123]}])
    rows = fleet_status.rows([report("gpu-01", collect(capsys, instances), instances)])
    assert [(r["version"], r["result"], r["detail"]) for r in rows] == [
        (126, "WARN", "UNKNOWN: bad export"), (123, "OK", "")]
    summary = fleet_status.summary(rows)
    assert summary["ok"] and summary["warnings"] == 1


def test_a_server_that_does_not_answer_fails_every_expected_version(capsys):
    instances = inventory(1, models=[{"name": "m", "versions": [1]}])
    rows = fleet_status.rows([report("gpu-02", collect(capsys, instances), instances)])
    assert len(rows) == 1 and rows[0]["result"] == "FAIL" and rows[0]["state"] == "MISSING"
    assert "the server does not answer" in rows[0]["detail"]


# -- hosts that answered nothing -------------------------------------------------------------------------------
def test_an_unreachable_host_gets_one_failing_row_per_instance():
    registered = {"unreachable": True, "msg": "All items completed",
                  "results": [{"unreachable": True, "msg": "Failed to connect to the host via ssh: timeout"}]}
    instances = [{"name": "a", "models": []}, {"name": "b", "models": []}, {"name": "c", "state": "absent"}]
    rows = fleet_status.rows([report("gpu-03", registered, instances)])
    assert [(r["instance"], r["state"], r["result"]) for r in rows] == [
        ("a", "UNREACHABLE", "FAIL"), ("b", "UNREACHABLE", "FAIL")]
    assert rows[0]["detail"] == "host unreachable: Failed to connect to the host via ssh: timeout"


def test_a_host_without_results_or_instances():
    missing = fleet_status.rows([report("gpu-04", None, [{"name": "a", "models": []}])])
    assert missing[0]["result"] == "FAIL" and "no status collected" in missing[0]["detail"]
    empty = fleet_status.rows([report("gpu-05", {"results": [], "skipped": True}, [])])
    assert empty[0]["result"] == "-" and empty[0]["detail"] == "no TF Serving instance in the inventory"
    assert fleet_status.summary(empty)["ok"]


def test_a_module_that_could_not_run_is_an_error_row():
    registered = {"results": [{"failed": True, "msg": "Unsupported parameters", "item": {"instance": "a"}}]}
    rows = fleet_status.rows([report("gpu-06", registered, [{"name": "a", "models": []}])])
    assert (rows[0]["state"], rows[0]["result"], rows[0]["detail"]) == ("ERROR", "FAIL", "Unsupported parameters")


# -- renderings ---------------------------------------------------------------------------------------------
@pytest.fixture
def mixed_rows(fake, capsys):
    healthy(fake, canary=123)
    instances = inventory(fake.port)
    return fleet_status.rows([report("gpu-01", collect(capsys, instances), instances),
                     report("gpu-<2>", None, [{"name": "main", "models": []}])])


def test_table_aligns_columns_and_shortens_long_errors(mixed_rows):
    text = fleet_report.table(mixed_rows, max_detail=40)
    lines = text.split("\n")
    assert lines[0].split() == ["Host", "Instance", "Model", "Version", "Labels", "State", "Expected", "Result",
                                "Error", "/", "note"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 2 + len(mixed_rows)
    state_col = lines[0].index("State")
    assert all(line[state_col:].split()[0] in ("AVAILABLE", "END", "UNREACHABLE") for line in lines[2:])
    assert any(line.endswith("...") and len(line.split("  ")[-1].strip()) <= 40 for line in lines[2:])


def test_markdown_has_the_verdict_one_table_row_per_row_and_the_problems(mixed_rows):
    text = fleet_report.markdown(mixed_rows, "Fleet", "2026-01-01 00:00:00 UTC")
    assert text.startswith("# Fleet\n\nIn this state since 2026-01-01 00:00:00 UTC.\n\n**2 problem(s)**")
    table_rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table_rows) == 1 + len(mixed_rows)
    assert "## Problems" in text and "- gpu-<2>/main/-: " in text


class _Cells(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.classes, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
            self.classes.append(dict(attrs).get("class"))
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_html_is_a_standalone_escaped_page_with_the_same_rows(mixed_rows):
    page = fleet_report.html_page(mixed_rows, "Fleet <prod>", "now")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "<title>Fleet &lt;prod&gt;</title>" in page and "gpu-&lt;2&gt;" in page
    cells = _Cells()
    cells.feed(page)
    assert cells.rows[0] == [title for _, title in fleet_report.COLUMNS]
    assert len(cells.rows) == 1 + len(mixed_rows)
    assert [row[0] for row in cells.rows[1:]] == [r["host"] for r in mixed_rows]
    assert cells.classes[1:] == [r["result"] if r["result"] != "-" else "INFO" for r in mixed_rows]


def test_filters_are_registered():
    names = [n for m in (fleet_status, fleet_drift, fleet_report) for n in m.FilterModule().filters()]
    assert len(names) == len(set(names))
    assert set(names) == {
        "tfserving_fleet_checks", "tfserving_fleet_host_report", "tfserving_fleet_rows", "tfserving_fleet_summary",
        "tfserving_fleet_table", "tfserving_fleet_markdown", "tfserving_fleet_html", "tfserving_fleet_targets",
        "tfserving_fleet_drift", "tfserving_fleet_drift_summary", "tfserving_fleet_drift_table",
        "tfserving_fleet_known_servers", "tfserving_fleet_servers_to_ask"}
