"""Parse what ``nvidia-smi`` prints, and collect GPU facts from it.

Three outputs are understood, each as nvidia-smi really prints it (see the real captures in
``tests/data/nvidia-smi``):

- ``nvidia-smi -q -x``: the XML report (DTD v10 to v13). It holds everything this project needs:
  driver version, the highest CUDA version the driver supports, and per GPU the name, UUID,
  minor number (``/dev/nvidiaN``), PCI bus id, framebuffer memory and MIG mode.
- ``nvidia-smi --query-gpu=FIELDS --format=csv[,noheader][,nounits]``: one row per GPU.

Per GPU the framebuffer memory in use and free (``memory_used_mib``, ``memory_free_mib``) is read
too, from ``fb_memory_usage`` (XML) or ``memory.used``/``memory.free`` (CSV).
- ``nvidia-smi --version``: the driver and CUDA versions (newer drivers only).

Runs on the managed host: standard library only.
"""

import csv
import io
import re
import xml.etree.ElementTree as ET

# Cells nvidia-smi prints when a value does not exist on this GPU or driver.
_MISSING = re.compile(
    r"^\[?(N/A|Not Supported|Not Found|Unknown Error|Requested functionality has been deprecated)\]?$",
    re.IGNORECASE,
)
_UNIT_SUFFIX = re.compile(r"^(?P<name>.+?)\s*\[(?P<unit>[^\]]+)\]$")
_MIB = re.compile(r"^(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>MiB|GiB|KiB)?$")

# The fields the CSV path asks for, in this order.
QUERY_FIELDS = (
    "index",
    "uuid",
    "name",
    "memory.total",
    "pci.bus_id",
    "driver_version",
    "memory.used",
    "memory.free",
)

# What nvidia-smi prints when it runs but the driver is not usable (stdout or stderr).
_NO_DRIVER = (
    "couldn't communicate with the nvidia driver",
    "driver/library version mismatch",
    "unable to determine the device handle",
)
_NO_DEVICES = ("no devices were found",)


class NvidiaSmiParseError(ValueError):
    """The output is not what the named nvidia-smi command prints."""


def _value(cell):
    cell = (cell or "").strip()
    if cell == "" or _MISSING.match(cell):
        return None
    return cell


def _mib(cell):
    """'81559 MiB' or '81559' -> 81559; None when missing."""
    cell = _value(cell)
    if cell is None:
        return None
    match = _MIB.match(cell)
    if not match:
        raise NvidiaSmiParseError(f"expected a memory size such as '81559 MiB', found '{cell}'")
    num = float(match["num"])
    unit = match["unit"] or "MiB"
    factor = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]
    return round(num * factor)


def _cuda(cell):
    """'12.2' -> '12.2'; 'Not Found' / 'N/A' -> None."""
    cell = _value(cell)
    if cell is None:
        return None
    if not re.match(r"^\d+\.\d+(\.\d+)?$", cell):
        raise NvidiaSmiParseError(f"expected a CUDA version such as '12.2', found '{cell}'")
    return cell


def _text(elem, path):
    found = elem.find(path)
    if found is None or found.text is None:
        return None
    return _value(found.text)


def parse_query_csv(text, fields=None):
    """Rows of ``--query-gpu ... --format=csv``, as a list of dicts keyed by field name.

    With a header row (plain ``--format=csv``) the field names come from it and unit suffixes
    (``memory.total [MiB]``) are dropped from the names. Without one (``noheader``), ``fields``
    names the columns in the order they were queried.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    rows = list(csv.reader(io.StringIO("\n".join(lines)), skipinitialspace=True))
    if fields is None:
        header, rows = rows[0], rows[1:]
        names = []
        for col in header:
            match = _UNIT_SUFFIX.match(col.strip())
            names.append(match["name"] if match else col.strip())
    else:
        names = list(fields)
    out = []
    for number, row in enumerate(rows, start=1):
        if len(row) != len(names):
            raise NvidiaSmiParseError(
                f"CSV row {number} has {len(row)} cells, expected {len(names)} ({', '.join(names)})"
            )
        out.append(dict(zip(names, (cell.strip() for cell in row), strict=True)))
    return out


def gpus_from_query(rows):
    """Normalise ``--query-gpu`` rows into this project's GPU records."""
    gpus = []
    for row in rows:
        missing = [f for f in ("uuid", "name") if f not in row]
        if missing:
            raise NvidiaSmiParseError(f"the query output lacks the field(s) {', '.join(missing)}")
        index = _value(row.get("index"))
        gpus.append(
            {
                "index": int(index) if index is not None else None,
                "uuid": _value(row["uuid"]),
                "name": _value(row["name"]),
                "memory_total_mib": _mib(row.get("memory.total")),
                "memory_used_mib": _mib(row.get("memory.used")),
                "memory_free_mib": _mib(row.get("memory.free")),
                "pci_bus_id": _value(row.get("pci.bus_id")),
                "minor_number": None,
                "mig_mode": _value(row.get("mig.mode.current")),
            }
        )
    return gpus


def parse_xml(text):
    """The report of ``nvidia-smi -q -x``.

    ``index`` is the position of the ``<gpu>`` element: nvidia-smi writes GPUs in its own
    enumeration order (PCI bus order), the order ``--query-gpu=index`` reports. ``minor_number``
    is the device node ``/dev/nvidiaN`` and differs from the index on some hosts.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise NvidiaSmiParseError(f"not the XML report of 'nvidia-smi -q -x': {exc}") from exc
    if root.tag != "nvidia_smi_log":
        raise NvidiaSmiParseError(f"expected the root element <nvidia_smi_log>, found <{root.tag}>")
    attached = _text(root, "attached_gpus")
    gpus = []
    for position, gpu in enumerate(root.findall("gpu")):
        minor = _text(gpu, "minor_number")
        gpus.append(
            {
                "index": position,
                "uuid": _text(gpu, "uuid"),
                "name": _text(gpu, "product_name"),
                # Direct child only: MIG devices carry their own fb_memory_usage.
                "memory_total_mib": _mib(_text(gpu, "fb_memory_usage/total")),
                # What the processes on the GPU hold now, and what is left (the GPU memory headroom
                # check of the serving roles compares a new model version with it).
                "memory_used_mib": _mib(_text(gpu, "fb_memory_usage/used")),
                "memory_free_mib": _mib(_text(gpu, "fb_memory_usage/free")),
                "pci_bus_id": _text(gpu, "pci/pci_bus_id") or gpu.get("id"),
                "minor_number": int(minor) if minor is not None and minor.isdigit() else None,
                "mig_mode": _text(gpu, "mig_mode/current_mig"),
            }
        )
    return {
        "driver_version": _text(root, "driver_version"),
        "cuda_version": _cuda(_text(root, "cuda_version")),
        "attached_gpus": int(attached) if attached is not None and attached.isdigit() else None,
        "gpus": gpus,
    }


def parse_version(text):
    """``nvidia-smi --version``: {'driver_version': ..., 'cuda_version': ...}."""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "driver version":
            found["driver_version"] = _value(value)
        elif key == "cuda version":
            found["cuda_version"] = _cuda(value)
    if "driver_version" not in found:
        raise NvidiaSmiParseError("expected a 'DRIVER version : X' line from 'nvidia-smi --version'")
    found.setdefault("cuda_version", None)
    return found


def classify_failure(rc, stdout, stderr):
    """Name why nvidia-smi did not answer: 'no_driver', 'no_devices' or None (unknown)."""
    both = f"{stdout}\n{stderr}".lower()
    if any(s in both for s in _NO_DRIVER):
        return "no_driver"
    if any(s in both for s in _NO_DEVICES):
        return "no_devices"
    return None


def empty_facts(reason, nvidia_smi=None, driver_loaded=False):
    return {
        "available": False,
        "driver_loaded": driver_loaded,
        "nvidia_smi": nvidia_smi,
        "reason": reason,
        "count": 0,
        "gpus": [],
        "uuids": [],
        "names": [],
        "memory_total_mib": [],
        "driver_version": None,
        "cuda_version": None,
        "source": None,
    }


def facts_from(gpus, driver_version, cuda_version, nvidia_smi, source, attached=None):
    facts = empty_facts(None, nvidia_smi, driver_loaded=True)
    facts.update(
        {
            "available": bool(gpus),
            "reason": None if gpus else "nvidia-smi reports no GPU on this host",
            "count": len(gpus),
            "attached_gpus": attached if attached is not None else len(gpus),
            "gpus": gpus,
            "uuids": [g["uuid"] for g in gpus],
            "names": [g["name"] for g in gpus],
            "memory_total_mib": [g["memory_total_mib"] for g in gpus],
            "driver_version": driver_version,
            "cuda_version": cuda_version,
            "source": source,
        }
    )
    return facts


def _failure_facts(rc, out, err, nvidia_smi):
    """The facts of a host whose nvidia-smi failed for want of a driver or of devices; None for any
    other failure."""
    why = classify_failure(rc, out, err)
    if why == "no_driver":
        return empty_facts(f"nvidia-smi cannot talk to the NVIDIA driver: {(err or out).strip()}", nvidia_smi)
    if why == "no_devices":
        return empty_facts("nvidia-smi: No devices were found", nvidia_smi, driver_loaded=True)
    return None


def collect(run, nvidia_smi, source="auto"):
    """Gather GPU facts by running nvidia-smi through ``run(argv) -> (rc, out, err)``.

    ``source``: 'xml' (``-q -x``), 'csv' (``--query-gpu`` plus ``--version``) or 'auto' (XML, and
    the CSV query when the XML report cannot be read). Raises NvidiaSmiParseError when nvidia-smi
    answers with something neither path understands.
    """
    if source in ("auto", "xml"):
        rc, out, err = run([nvidia_smi, "-q", "-x"])
        if rc != 0:
            facts = _failure_facts(rc, out, err, nvidia_smi)
            if facts is not None:
                return facts
            if source == "xml":
                raise NvidiaSmiParseError(f"'nvidia-smi -q -x' exited {rc}: {(err or out).strip()}")
        else:
            try:
                report = parse_xml(out)
            except NvidiaSmiParseError:
                if source == "xml":
                    raise
            else:
                return facts_from(
                    report["gpus"],
                    report["driver_version"],
                    report["cuda_version"],
                    nvidia_smi,
                    "xml",
                    report["attached_gpus"],
                )
    query = f"--query-gpu={','.join(QUERY_FIELDS)}"
    rc, out, err = run([nvidia_smi, query, "--format=csv"])
    if rc != 0:
        facts = _failure_facts(rc, out, err, nvidia_smi)
        if facts is not None:
            return facts
        raise NvidiaSmiParseError(f"'nvidia-smi {query} --format=csv' exited {rc}: {(err or out).strip()}")
    rows = parse_query_csv(out)
    gpus = gpus_from_query(rows)
    driver = _value(rows[0].get("driver_version")) if rows else None
    cuda = None
    rc, out, _err = run([nvidia_smi, "--version"])
    if rc == 0:
        try:
            cuda = parse_version(out)["cuda_version"]
        except NvidiaSmiParseError:
            cuda = None
    return facts_from(gpus, driver, cuda, nvidia_smi, "csv")
