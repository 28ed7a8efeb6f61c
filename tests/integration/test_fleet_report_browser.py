"""The fleet report's HTML page in a real browser (headless Chromium): it renders, and the drifted row
is marked on screen, not only in the markup.

The page is the one status.yml writes (plugins/filter/tfserving_fleet_report.py), from three hosts of which one
runs another image ID and TF Serving version. The screenshot is kept in reports/artifacts/.
"""

from __future__ import annotations

import html.parser
import json
import pathlib

from ansible_collections.tfserving.fleet.plugins.filter import tfserving_fleet_drift as fleet_drift
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_fleet_report as fleet_report
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_fleet_status as fleet_status
from browser import count_colour, png_pixels, render, rows_with_colour

ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "reports" / "artifacts"
REF = "172.31.0.1:5000/tfserving-double:test"
IDS = {"fleet": "sha256:" + "4e" * 32, "hotfix": "sha256:" + "c7" * 32}
# _DRIFT_CSS: a drifted row, and the cells that differ in it.
DRIFT_ROW = (0xFF, 0xF3, 0xCD)
DRIFT_CELL = (0xF5, 0xC2, 0x6B)


def hostvars(name, image_id, version):
    target = {"instance": "main", "container": "tfserving-main", "image": REF, "gpus": []}
    container = {"Image": image_id, "State": {"Running": True}, "Config": {"Image": REF, "Env": []},
                 "HostConfig": {"DeviceRequests": None, "Runtime": "runc"}}
    engine = {"Server": {"Version": "20.10.24+dfsg1", "Components": [
        {"Name": "Engine", "Version": "20.10.24+dfsg1"}, {"Name": "containerd", "Version": "1.6.20~ds1"},
        {"Name": "runc", "Version": "1.1.5+ds1"}]}}
    return {
        "inventory_hostname": name,
        "tfserving_instances": [{"name": "main", "models": []}],
        "__tfserving_status": {"results": [{"item": {"instance": "main"}, "models": [], "statuses": {}}]},
        "_tfserving_status_targets": [target],
        "__tfserving_status_containers": {"results": [{"item": target, "exists": True, "container": container}]},
        "__tfserving_status_images": {"images": [{"Id": image_id, "RepoTags": [REF], "RepoDigests": []}]},
        "__tfserving_status_servers": {"results": [{"item": target, "stdout": f"TensorFlow ModelServer: {version}\n"}]},
        "__tfserving_status_docker": {"stdout": json.dumps(engine)},
        "ansible_facts": {"nvidia_gpu": {"available": False}},
    }


class _Table(html.parser.HTMLParser):
    """Rows of the drift table as Chromium serialised them: (class, [cell texts])."""

    def __init__(self):
        super().__init__()
        self.rows, self._in, self._cell = [], False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("class") == "drift":
            self._in = True
        elif self._in and tag == "tr":
            self.rows.append((attrs.get("class"), []))
        elif self._in and tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        elif self._in and tag in ("td", "th") and self._cell is not None:
            self.rows[-1][1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_the_report_page_renders_and_marks_the_drifted_row(tmp_path):
    reports = [fleet_status.host_report(hostvars("tfs-fleet-1", IDS["fleet"], "2.19.0")),
               fleet_status.host_report(hostvars("tfs-fleet-2", IDS["hotfix"], "2.19.1")),
               fleet_status.host_report(hostvars("tfs-fleet-3", IDS["fleet"], "2.19.0"))]
    page = tmp_path / "fleet-status.html"
    page.write_text(fleet_report.html_page(fleet_status.rows(reports), "TF Serving fleet status",
                                           "2026-01-01 00:00:00 UTC", fleet_drift.drift(reports)))
    dom, shot = render(page, ARTIFACTS, "fleet-report-drift")
    table = _Table()
    table.feed(dom)
    assert table.rows[0][1][1:4] == ["Host", "Instance", "Image"]
    assert [(cls, cells[0], cells[1]) for cls, cells in table.rows[1:]] == [
        ("same", "", "tfs-fleet-1"), ("drift", "\u26a0 DRIFT", "tfs-fleet-2"), ("same", "", "tfs-fleet-3")]
    assert table.rows[2][1][-1] == "image ID, TF Serving version"
    assert "tfs-fleet-2/main: image ID sha256:c7c7c7c7c7c7, the fleet's majority runs sha256:4e4e4e4e4e4e" in dom
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1600, 1000)
    # Not a blank page: text and borders are drawn.
    assert width * height - count_colour(pixels, (255, 255, 255)) > 20_000
    # One table row (one band of pixel rows) is painted as drifted; its differing cells stand out in it.
    row_band = rows_with_colour(pixels, DRIFT_ROW)
    cell_band = rows_with_colour(pixels, DRIFT_CELL)
    assert row_band and cell_band, f"no pixel of the drift colours in {shot}"
    assert row_band == list(range(row_band[0], row_band[-1] + 1)), "more than one band of drifted rows"
    assert set(cell_band) <= set(row_band)
