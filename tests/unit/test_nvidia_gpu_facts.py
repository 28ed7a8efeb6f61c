"""nvidia-smi parsing and the nvidia_gpu_facts module, on the real captures in tests/data/nvidia-smi.

Every file of tests/data/nvidia-smi that holds an output the module reads is used: the five
``nvidia-smi -q -x`` reports, the Windows ``--query-gpu`` CSV, and from the three capture bundles
their ``--query-gpu`` CSV (idle and load) and ``--version`` sections.
"""

import json
import pathlib
import re

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.tfserving.fleet.plugins.module_utils import nvidia_smi as smi
from ansible_collections.tfserving.fleet.plugins.modules import nvidia_gpu_facts
from conftest import TESTDATA

DATA = TESTDATA / "nvidia-smi"
XML_FILES = sorted(p.name for p in DATA.glob("*.xml"))
BUNDLES = sorted(p.name for p in DATA.glob("linux-*.txt"))


def test_every_real_file_is_covered():
    """A new capture dropped into testdata must get expectations here."""
    assert XML_FILES == sorted(XML_EXPECT)
    assert BUNDLES == sorted(BUNDLE_EXPECT)
    assert (DATA / "sample-output.csv").exists()


# Values read by eye from the files (and their README), not computed by the parser under test.
XML_EXPECT = {
    "a100-sxm4-v12.xml": {
        "driver": "535.54.03",
        "cuda": "12.2",
        "attached": 4,  # the contributor kept only the first of the four GPUs
        "gpus": [("NVIDIA A100-SXM4-80GB", "GPU-513536b6-7d19-9063-b049-1e69664bb298", 1, 81920, "Enabled")],
    },
    "nvidia_smi_out_of_order.xml": {
        "driver": "430.26",
        "cuda": None,  # "Not Found"
        "attached": 4,
        "gpus": [
            ("Tesla K80", "GPU-c3b26f7a-8dcb-619c-fa1b-8029265a4db0", 1, 11441, None),
            ("Tesla K80", "GPU-b01b80eb-0f18-1df0-cf88-0725bd90f1e1", 2, 11441, None),
            ("Tesla K80", "GPU-30bc2701-3bc2-5f35-0ebd-9867a077e138", 3, 11441, None),
            ("Tesla K80", None, 0, 11441, None),  # uuid checked below (fourth board)
        ],
    },
    "nvidia_smi_sample_ecc_unsupported.xml": {
        "driver": "410.73",
        "cuda": "10.0",
        "attached": 2,
        "gpus": [
            ("GeForce RTX 2080 Ti", None, 0, 10989, None),
            ("GeForce RTX 2080 Ti", None, 1, 10989, None),
        ],
    },
    "rtx-3080-v13.xml": {
        "driver": "595.58.03",
        "cuda": "13.2",
        "attached": 1,
        "gpus": [("NVIDIA GeForce RTX 3080", None, 0, 10240, None)],
    },
    "tesla-t4.xml": {
        "driver": "515.105.01",
        "cuda": "11.7",
        "attached": 1,
        "gpus": [("Tesla T4", "GPU-d37e67a5-91dd-3774-a5cb-99096249601a", 0, 15360, None)],
    },
}

BUNDLE_EXPECT = {
    "linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt": ("590.48.01", "13.1", "NVIDIA H100 80GB HBM3"),
    "linux-x86_64__nvidia-h100-mig__590.48.01.txt": ("590.48.01", "13.1", "NVIDIA H100 80GB HBM3"),
    "linux-x86_64__nvidia-l40s__595.80.txt": ("595.80", "13.2", "NVIDIA L40S"),
}

UUID = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def bundle_sections(name):
    """{command: [section text, ...]} of a capture bundle (sections open with a '# $ cmd' banner)."""
    text = (DATA / name).read_text()
    sections = {}
    parts = re.split(r"^#{80}\n(?:# .*\n)*?# \$ (.*)\n#{80}\n", text, flags=re.M)
    for command, body in zip(parts[1::2], parts[2::2], strict=True):
        sections.setdefault(command.strip(), []).append(body.strip("\n"))
    return sections


# ---------------------------------------------------------------- XML


@pytest.mark.parametrize("name", sorted(XML_EXPECT))
def test_xml_report(name):
    report = smi.parse_xml((DATA / name).read_text())
    want = XML_EXPECT[name]
    assert report["driver_version"] == want["driver"]
    assert report["cuda_version"] == want["cuda"]
    assert report["attached_gpus"] == want["attached"]
    assert len(report["gpus"]) == len(want["gpus"])
    for position, (gpu, (gname, uuid, minor, mem, mig)) in enumerate(zip(report["gpus"], want["gpus"], strict=True)):
        assert gpu["index"] == position
        assert gpu["name"] == gname
        assert gpu["minor_number"] == minor
        assert gpu["memory_total_mib"] == mem
        assert gpu["mig_mode"] == mig
        assert UUID.match(gpu["uuid"]), gpu["uuid"]
        if uuid:
            assert gpu["uuid"] == uuid
        assert gpu["pci_bus_id"]


def test_xml_out_of_order_keeps_index_and_minor_number_apart():
    report = smi.parse_xml((DATA / "nvidia_smi_out_of_order.xml").read_text())
    assert [g["pci_bus_id"] for g in report["gpus"]] == [
        "00001580:00:00.0",
        "00002DF7:00:00.0",
        "00004968:00:00.0",
        "0000F8D6:00:00.0",
    ]
    assert [g["minor_number"] for g in report["gpus"]] == [1, 2, 3, 0]
    assert len(set(g["uuid"] for g in report["gpus"])) == 4


def test_xml_mig_memory_is_the_gpu_not_a_mig_slice():
    # The A100 file lists four MIG devices of 19968 MiB each before the GPU's own 81920 MiB.
    report = smi.parse_xml((DATA / "a100-sxm4-v12.xml").read_text())
    assert report["gpus"][0]["memory_total_mib"] == 81920


@pytest.mark.parametrize(
    "text, found",
    [
        ("", "not the XML report"),
        ("<html><body>502</body></html>", "expected the root element <nvidia_smi_log>"),
        ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "not the XML report"),
    ],
)
def test_xml_refuses_other_output(text, found):
    with pytest.raises(smi.NvidiaSmiParseError, match=re.escape(found)):
        smi.parse_xml(text)


# ---------------------------------------------------------------- CSV and --version


def test_csv_windows_sample_with_units():
    rows = smi.parse_query_csv((DATA / "sample-output.csv").read_text())
    assert len(rows) == 1 and len(rows[0]) == 115
    gpus = smi.gpus_from_query(rows)
    assert gpus == [
        {
            "index": 0,
            "uuid": "GPU-df6e7a7c-7314-46f8-abc4-b88b36dcf3aa",
            "name": "NVIDIA GeForce RTX 2080 SUPER",
            "memory_total_mib": 8192,
            "memory_used_mib": 876,
            "memory_free_mib": 7316,
            "pci_bus_id": "00000000:0C:00.0",
            "minor_number": None,
            "mig_mode": None,
        }
    ]
    assert rows[0]["driver_version"] == "471.11"


@pytest.mark.parametrize("name", sorted(BUNDLE_EXPECT))
def test_capture_bundle_query_csv_and_version(name):
    driver, cuda, gpu_name = BUNDLE_EXPECT[name]
    sections = bundle_sections(name)
    queries = [body for cmd, bodies in sections.items() if cmd.startswith("nvidia-smi --query-gpu=") for body in bodies]
    assert len(queries) == 2  # idle and load
    for body in queries:
        rows = smi.parse_query_csv(body)
        assert len(rows) == 1
        assert rows[0]["driver_version"] == driver
        gpu = smi.gpus_from_query(rows)[0]
        assert gpu["name"] == gpu_name
        assert gpu["index"] == 0
        assert gpu["uuid"] == "GPU-00000000-0000-0000-0000-000000000000"  # masked by the capture tool
        assert 40000 < gpu["memory_total_mib"] < 100000
    version = smi.parse_version(sections["nvidia-smi --version"][0])
    assert version == {"driver_version": driver, "cuda_version": cuda}


def test_csv_noheader_uses_the_queried_field_names():
    # The H100 row, cut to the module's fields the way nvidia-smi prints them without a header.
    sections = bundle_sections("linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt")
    body = next(b for c, bs in sections.items() if c.startswith("nvidia-smi --query-gpu=") for b in bs)
    full = smi.parse_query_csv(body)[0]
    line = ", ".join(full[f] for f in smi.QUERY_FIELDS)
    rows = smi.parse_query_csv(line, fields=smi.QUERY_FIELDS)
    assert smi.gpus_from_query(rows)[0]["name"] == "NVIDIA H100 80GB HBM3"


def test_csv_row_with_wrong_cell_count_is_refused():
    with pytest.raises(smi.NvidiaSmiParseError, match="has 2 cells, expected 8"):
        smi.parse_query_csv("0, GPU-x\n", fields=smi.QUERY_FIELDS)


def test_version_without_driver_line_is_refused():
    with pytest.raises(smi.NvidiaSmiParseError, match="DRIVER version"):
        smi.parse_version("Invalid combination of input arguments.")


# ---------------------------------------------------------------- the module


class FakeNvidiaSmi:
    """Answers the module's nvidia-smi calls from real files; records the calls."""

    def __init__(self, xml=None, bundle=None, xml_text=None, failure=None):
        self.xml = (DATA / xml).read_text() if xml else xml_text
        self.sections = bundle_sections(bundle) if bundle else {}
        self.failure = failure
        self.calls = []

    def __call__(self, module, argv, **kwargs):
        self.calls.append(list(argv[1:]))
        if self.failure:
            return self.failure
        if argv[1:] == ["-q", "-x"]:
            return (0, self.xml, "") if self.xml is not None else (6, "", "unknown")
        if argv[1].startswith("--query-gpu="):
            fields = argv[1].split("=", 1)[1].split(",")
            body = next(b for c, bs in self.sections.items() if c.startswith("nvidia-smi --query-gpu=") for b in bs)
            rows = smi.parse_query_csv(body)
            header_line = body.splitlines()[0]
            headers = {re.sub(r"\s*\[.*\]$", "", h.strip()): h.strip() for h in header_line.split(",")}
            out = [", ".join(headers[f] for f in fields)]
            out += [", ".join(row[f] for f in fields) for row in rows]
            return 0, "\n".join(out) + "\n", ""
        if argv[1:] == ["--version"]:
            return 0, self.sections["nvidia-smi --version"][0] + "\n", ""
        return 2, "", f"unexpected call {argv}"


def run_module(monkeypatch, capsys, fake, args=None, binary="/usr/bin/nvidia-smi"):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, *a, **k: binary)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: fake(self, argv, **kw))
    with patch_module_args(args or {}), pytest.raises(SystemExit) as exc:
        nvidia_gpu_facts.main()
    result = json.loads(capsys.readouterr().out)
    return exc.value.code, result


@pytest.mark.parametrize("name", sorted(XML_EXPECT))
def test_module_reads_xml_report(monkeypatch, capsys, name):
    fake = FakeNvidiaSmi(xml=name)
    code, result = run_module(monkeypatch, capsys, fake)
    facts = result["ansible_facts"]["nvidia_gpu"]
    want = XML_EXPECT[name]
    assert code == 0 and result["changed"] is False
    assert fake.calls == [["-q", "-x"]]
    assert facts["available"] is True and facts["driver_loaded"] is True
    assert facts["source"] == "xml"
    assert facts["count"] == len(want["gpus"])
    assert facts["names"] == [g[0] for g in want["gpus"]]
    assert facts["memory_total_mib"] == [g[3] for g in want["gpus"]]
    assert facts["driver_version"] == want["driver"]
    assert facts["cuda_version"] == want["cuda"]
    assert facts["uuids"] == [g["uuid"] for g in facts["gpus"]]


@pytest.mark.parametrize("bundle", sorted(BUNDLE_EXPECT))
def test_module_csv_source_on_capture_bundles(monkeypatch, capsys, bundle):
    fake = FakeNvidiaSmi(bundle=bundle)
    code, result = run_module(monkeypatch, capsys, fake, {"source": "csv"})
    facts = result["ansible_facts"]["nvidia_gpu"]
    driver, cuda, gpu_name = BUNDLE_EXPECT[bundle]
    assert code == 0
    assert fake.calls == [[f"--query-gpu={','.join(smi.QUERY_FIELDS)}", "--format=csv"], ["--version"]]
    assert (facts["count"], facts["names"], facts["driver_version"], facts["cuda_version"]) == (
        1,
        [gpu_name],
        driver,
        cuda,
    )
    assert facts["source"] == "csv"


def test_module_auto_falls_back_to_csv_when_xml_is_unreadable(monkeypatch, capsys):
    fake = FakeNvidiaSmi(bundle="linux-x86_64__nvidia-l40s__595.80.txt", xml_text="<nvidia_smi_log><gpu>")
    code, result = run_module(monkeypatch, capsys, fake)
    facts = result["ansible_facts"]["nvidia_gpu"]
    assert code == 0
    assert fake.calls[0] == ["-q", "-x"] and fake.calls[-1] == ["--version"]
    assert (facts["source"], facts["names"], facts["cuda_version"]) == ("csv", ["NVIDIA L40S"], "13.2")


def test_module_without_nvidia_smi_reports_it_plainly(monkeypatch, capsys):
    fake = FakeNvidiaSmi()
    code, result = run_module(monkeypatch, capsys, fake, binary=None)
    facts = result["ansible_facts"]["nvidia_gpu"]
    assert code == 0 and "failed" not in result
    assert fake.calls == []
    assert facts["available"] is False and facts["driver_loaded"] is False and facts["count"] == 0
    assert facts["reason"].startswith("nvidia-smi not found (searched PATH, /usr/bin")
    assert "driver is not installed" in facts["reason"]


# The messages nvidia-smi prints in these two states (NVIDIA driver documentation and countless
# bug reports); they are not in testdata because nothing there was captured on a broken host.
NO_DRIVER = (
    9,
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the "
    "latest NVIDIA driver is installed and running.\n",
    "",
)
NO_DEVICES = (6, "No devices were found\n", "")


def test_module_with_driver_not_loaded(monkeypatch, capsys):
    code, result = run_module(monkeypatch, capsys, FakeNvidiaSmi(failure=NO_DRIVER))
    facts = result["ansible_facts"]["nvidia_gpu"]
    assert code == 0
    assert facts["available"] is False and facts["driver_loaded"] is False
    assert facts["reason"].startswith("nvidia-smi cannot talk to the NVIDIA driver: NVIDIA-SMI has failed")
    assert facts["nvidia_smi"] == "/usr/bin/nvidia-smi"


def test_module_with_no_devices(monkeypatch, capsys):
    code, result = run_module(monkeypatch, capsys, FakeNvidiaSmi(failure=NO_DEVICES))
    facts = result["ansible_facts"]["nvidia_gpu"]
    assert code == 0
    assert (facts["available"], facts["driver_loaded"], facts["count"]) == (False, True, 0)
    assert facts["reason"] == "nvidia-smi: No devices were found"


def test_module_fails_with_expected_found_fix_on_unknown_output(monkeypatch, capsys):
    fake = FakeNvidiaSmi(failure=(0, "Segmentation fault\n", ""))
    code, result = run_module(monkeypatch, capsys, fake, {"source": "xml"})
    assert code == 1 and result["failed"] is True
    assert result["msg"].startswith("Expected the output of nvidia-smi (xml report); found: not the XML report")
    assert "Fix:" in result["msg"]


def test_module_with_explicit_missing_executable(monkeypatch, capsys, tmp_path):
    missing = str(tmp_path / "nvidia-smi")
    code, result = run_module(monkeypatch, capsys, FakeNvidiaSmi(), {"executable": missing})
    facts = result["ansible_facts"]["nvidia_gpu"]
    assert code == 0 and facts["available"] is False
    assert facts["reason"] == f"nvidia-smi not found (searched {missing}): the NVIDIA driver is not installed"


def test_module_supports_check_mode(monkeypatch, capsys):
    fake = FakeNvidiaSmi(xml="tesla-t4.xml")
    code, result = run_module(monkeypatch, capsys, fake, {"_ansible_check_mode": True})
    assert code == 0 and result["changed"] is False
    assert result["ansible_facts"]["nvidia_gpu"]["names"] == ["Tesla T4"]
    assert pathlib.Path(nvidia_gpu_facts.__file__).name == "nvidia_gpu_facts.py"
