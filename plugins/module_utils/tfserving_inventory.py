# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""Rules of the collection's inventory shared by its filters: names, numbers, addresses, listings."""

from __future__ import annotations

import ipaddress
import re

# Names end up as container names, directory names and URL path segments.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
# Version directories being copied in carry this prefix until complete; TF Serving skips them (not numeric).
TEMP_PREFIX = ".tfserving-tmp-"


def as_int(value):
    """An int from an int or a string of digits (INI inventories give strings); None otherwise, and for bools."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def check_address(bind):
    """The address to reach a server bound to ``bind`` from its own host: a wildcard bind means
    loopback of the same family. ValueError when ``bind`` is no IP address."""
    address = ipaddress.ip_address(str(bind))
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return str(address)


def listing_versions(listing):
    """{version number: entry} of a tfserving_model_versions result; None when the directory is missing."""
    if not listing or not listing.get("exists"):
        return None
    return {int(v["version"]): v for v in listing.get("versions") or []}


def present_instances(instances):
    """The instances of a raw inventory list that should run (state defaults to present); malformed
    entries are skipped, validation reports them."""
    if not isinstance(instances, list):
        return []
    return [inst for inst in instances if isinstance(inst, dict) and inst.get("state", "present") == "present"]
