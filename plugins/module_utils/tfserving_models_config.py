# Copyright: the tfserving-ansible authors
# Apache License 2.0
"""TF Serving's models.config (ModelServerConfig, protobuf text format): the one model of it.

Parse, validate, render, compare and stage label moves, with TF Serving's field names
(config/model_server_config.proto, sources/storage_path/file_system_storage_path_source.proto).
Pure Python, so filters on the controller and modules on a bare host share it.
"""

import copy
import re

HEADER_MARK = "# Managed by Ansible (role tfserving)"
HEADER = (
    "# Managed by Ansible (role tfserving): changes made here are overwritten on the next run.\n"
    "# Instance: {instance}. Protobuf text format ({message}).\n"
)
# The platforms TF Serving's stock server knows, and the version policies (ServableVersionPolicy).
PLATFORMS = ("tensorflow",)
POLICIES = ("latest", "all", "specific")

# The schema: message -> {field: (kind, type, repeated)}. kind: "msg", "map", "str", "int".
_SCHEMA = {
    "ModelServerConfig": {
        "model_config_list": ("msg", "ModelConfigList", False),
        "custom_model_config": ("msg", None, False),
    },
    "ModelConfigList": {"config": ("msg", "ModelConfig", True)},
    "ModelConfig": {
        "name": ("str", None, False),
        "base_path": ("str", None, False),
        "model_type": ("enum", None, False),
        "model_platform": ("str", None, False),
        "model_version_policy": ("msg", "ServableVersionPolicy", False),
        "version_labels": ("map", "VersionLabelsEntry", True),
        "logging_config": ("msg", None, False),
    },
    "ServableVersionPolicy": {
        "latest": ("msg", "Latest", False),
        "all": ("msg", "All", False),
        "specific": ("msg", "Specific", False),
    },
    "Latest": {"num_versions": ("int", None, False)},
    "All": {},
    "Specific": {"versions": ("int", None, True)},
    "VersionLabelsEntry": {"key": ("str", None, False), "value": ("int", None, False)},
}


class ConfigError(ValueError):
    """models.config text that is not a ModelServerConfig this collection can manage."""

    def __init__(self, message, line=None):
        self.line = line
        super().__init__(f"models.config line {line}: {message}" if line else f"models.config: {message}")


# ---------------------------------------------------------------------------------------------
# the model entry


class ModelEntry:
    """One ModelConfig. ``model_version_policy`` is {"latest": {"num_versions": n}}, {"all": {}} or
    {"specific": {"versions": [...]}}; ``version_labels`` is {label: version}."""

    def __init__(self, name, base_path, model_platform="tensorflow", model_version_policy=None,
                 version_labels=None):
        self.name = name
        self.base_path = base_path
        self.model_platform = model_platform
        self.model_version_policy = model_version_policy or {"latest": {}}
        self.version_labels = dict(version_labels or {})

    @property
    def policy(self):
        return next(iter(self.model_version_policy))

    @property
    def num_versions(self):
        """The number of latest versions served (TF Serving counts 0 or unset as 1); None otherwise."""
        if self.policy != "latest":
            return None
        return self.model_version_policy["latest"].get("num_versions") or 1

    @property
    def versions(self):
        return sorted(self.model_version_policy.get("specific", {}).get("versions") or [])

    def as_dict(self):
        return {"name": self.name, "base_path": self.base_path, "model_platform": self.model_platform,
                "model_version_policy": copy.deepcopy(self.model_version_policy),
                "version_labels": dict(sorted(self.version_labels.items()))}

    def __eq__(self, other):
        return isinstance(other, ModelEntry) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return f"ModelEntry({self.as_dict()!r})"


def policy_of(policy, num_versions=None, versions=None):
    """A model_version_policy from the collection's inventory words (latest/all/specific)."""
    if policy == "specific":
        return {"specific": {"versions": sorted(versions or [])}}
    if policy == "all":
        return {"all": {}}
    return {"latest": {"num_versions": num_versions} if num_versions else {}}


# ---------------------------------------------------------------------------------------------
# parsing (protobuf text format, restricted to the schema above)

_TOKEN_RE = re.compile(
    r"""(?P<space>[ \t\r\f\v]+)|(?P<newline>\n)|(?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<number>-?(?:0[xX][0-9a-fA-F]+|[0-9]+))(?![A-Za-z0-9_.])
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<punct>[{}<>:;,\[\]])""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "?": "?"}
_ESCAPE_RE = re.compile(r"\\(?:([0-7]{1,3})|[xX]([0-9a-fA-F]{1,2})|u([0-9a-fA-F]{4})|(.))", re.S)


def _unescape(body, line):
    """C escapes as protobuf's text format reads them; octal and hex give bytes of UTF-8 text."""
    out = bytearray()
    pos = 0
    for match in _ESCAPE_RE.finditer(body):
        out += body[pos:match.start()].encode("utf-8")
        octal, hexa, uni, char = match.groups()
        if octal or hexa:
            out.append(int(octal, 8) if octal else int(hexa, 16))
        elif uni:
            out += chr(int(uni, 16)).encode("utf-8")
        elif char in _ESCAPES:
            out += _ESCAPES[char].encode("utf-8")
        else:
            raise ConfigError(f"invalid escape \\{char} in a string", line)
        pos = match.end()
    out += body[pos:].encode("utf-8")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("a string is not valid UTF-8", line) from None


def _integer(text):
    """Decimal, 0x hex or 0-led octal, as protobuf's tokenizer reads integers."""
    digits = text.lstrip("-")
    if digits[:2].lower() == "0x":
        number = int(digits, 16)
    elif len(digits) > 1 and digits.startswith("0"):
        number = int(digits, 8)
    else:
        number = int(digits)
    return -number if text.startswith("-") else number


def _tokens(text):
    """[(kind, value, line)]; adjacent strings are joined, as protobuf does."""
    out = []
    line, pos = 1, 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise ConfigError(f"unexpected {text[pos:pos + 20]!r}", line)
        kind, value = match.lastgroup, match.group(match.lastgroup)
        pos = match.end()
        if kind == "newline":
            line += 1
        elif kind == "string":
            value = _unescape(value[1:-1], line)
            if out and out[-1][0] == "string":
                out[-1] = ("string", out[-1][1] + value, out[-1][2])
            else:
                out.append((kind, value, line))
        elif kind == "number":
            out.append((kind, _integer(value), line))
        elif kind in ("ident", "punct"):
            out.append((kind, value, line))
    return out


class _Parser:
    def __init__(self, text):
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None, self.last_line())

    def last_line(self):
        return self.tokens[-1][2] if self.tokens else 1

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def message(self, type_name, closing=None):
        """{field: value or [values]} of one message up to ``closing`` (None: the end of text)."""
        fields = _SCHEMA[type_name]
        out = {}
        while True:
            kind, value, line = self.take()
            if kind is None:
                if closing is None:
                    return out
                raise ConfigError(f"missing '{closing}' to close {type_name}", line)
            if kind == "punct" and value == closing:
                return out
            if kind != "ident":
                raise ConfigError(f"expected a field name of {type_name}, found {value!r}", line)
            if value not in fields:
                raise ConfigError(f'Message type "tensorflow.serving.{type_name}" has no field named "{value}" '
                                  f"(known: {', '.join(fields)})", line)
            self.field(out, type_name, value, fields[value], line)
            if self.peek()[0] == "punct" and self.peek()[1] in ",;":
                self.take()

    def field(self, out, type_name, name, spec, line):
        kind, sub, repeated = spec
        if name == "custom_model_config":
            raise ConfigError("the text holds a custom_model_config; TF Serving serves and reloads only a "
                              "model_config_list: write the models as model_config_list { config { ... } }", line=line)
        if kind == "enum" or (kind == "msg" and sub is None):
            raise ConfigError(f"{type_name}.{name} is not supported by this collection; "
                              "remove it (TF Serving's default applies)", line)
        colon = self.peek()[:2] == ("punct", ":")
        if colon:
            self.take()
        if self.peek()[:2] == ("punct", "["):
            if not repeated:
                raise ConfigError(f"{type_name}.{name} is not repeated; a list is not allowed", line)
            self.take()
            while self.peek()[:2] != ("punct", "]"):
                self.value(out, type_name, name, spec, colon=True)
                if self.peek()[:2] == ("punct", ","):
                    self.take()
            self.take()
            return
        self.value(out, type_name, name, spec, colon)

    def value(self, out, type_name, name, spec, colon):
        kind, sub, repeated = spec
        tok_kind, tok, line = self.take()
        if kind in ("msg", "map"):
            if tok_kind != "punct" or tok not in "{<":
                raise ConfigError(f"expected '{{' after {name}, found {tok!r}", line)
            value = self.message(sub, "}" if tok == "{" else ">")
        else:
            if not colon:
                raise ConfigError(f"expected ':' after {name}", line)
            if kind == "str" and tok_kind != "string":
                raise ConfigError(f"{type_name}.{name} expects a quoted string, found {tok!r}", line)
            if kind == "int" and tok_kind != "number":
                raise ConfigError(f"{type_name}.{name} expects an integer, found {tok!r}", line)
            value = tok
        if repeated:
            out.setdefault(name, []).append((value, line))
        elif name in out:
            raise ConfigError(f"{type_name}.{name} is given twice", line)
        else:
            out[name] = (value, line)


def _entry(fields):
    def get(data, key, default=None):
        return data[key][0] if key in data else default

    policy = get(fields, "model_version_policy", {})
    if len(policy) > 1:
        line = max(line for _unused, line in policy.values())
        raise ConfigError("model_version_policy sets more than one of latest, all, specific", line)
    which = next(iter(policy), "latest")
    body = get(policy, which, {})
    if which == "latest":
        value = {"num_versions": get(body, "num_versions")} if "num_versions" in body else {}
    elif which == "all":
        value = {}
    else:
        value = {"versions": sorted(v for v, _unused in body.get("versions", []))}
    labels = {}
    for item, _unused in fields.get("version_labels", []):
        labels[get(item, "key", "")] = get(item, "value", 0)
    return ModelEntry(get(fields, "name", ""), get(fields, "base_path", ""), get(fields, "model_platform"),
                      {which: value}, dict(sorted(labels.items())))


def parse(text):
    """[ModelEntry] of a models.config text, in file order; ConfigError with the line when malformed."""
    top = _Parser(str(text or "")).message("ModelServerConfig")
    model_list = top.get("model_config_list", ({}, 0))[0]
    return [_entry(fields) for fields, _unused in model_list.get("config", [])]


# ---------------------------------------------------------------------------------------------
# validation


def validate(entries):
    """What TF Serving would reject, and what it would load but regret, as sentences."""
    problems = []
    seen = set()
    for entry in entries:
        name = entry.name
        if not name:
            problems.append("a model has an empty name")
        elif name in seen:
            problems.append(f"Illegal to list model {name} multiple times in config list (TF Serving's rule)")
        seen.add(name)
        if not entry.base_path:
            problems.append(f"model {name} has no base_path")
        elif not entry.base_path.startswith("/") and "://" not in entry.base_path:
            problems.append(f"Expected model {name} to have an absolute path or URI; got base_path()="
                            f"{entry.base_path}")
        if not entry.model_platform:
            problems.append(f"model {name} has an empty model_platform; set it to \"tensorflow\"")
        elif entry.model_platform not in PLATFORMS:
            problems.append(f"model {name} has model_platform \"{entry.model_platform}\"; TF Serving knows "
                            "only \"tensorflow\"")
        versions = entry.versions
        if (entry.model_version_policy.get("latest") or {}).get("num_versions", 0) < 0:
            problems.append(f"model {name}: num_versions must be >= 0")
        if entry.policy == "specific":
            if not versions:
                problems.append(f"model {name} has a specific version policy without versions")
            if any(v < 0 for v in versions):
                problems.append(f"model {name} lists negative versions {versions}")
        for label, version in sorted(entry.version_labels.items()):
            if version < 0:
                problems.append(f"label {label} of model {name} points at negative version {version}")
            elif entry.policy == "specific" and version not in versions:
                problems.append(
                    f"label {label} of model {name} points at version {version}, which its specific policy "
                    f"{versions} does not load; TF Serving refuses labels on versions that are not available"
                )
    return problems


# ---------------------------------------------------------------------------------------------
# rendering


def quote(text):
    """A protobuf text-format string literal (C escapes, like TextFormat prints)."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\{code:03o}")
        else:
            out.append(ch)
    return '"{}"'.format("".join(out))


def header(instance, message):
    return HEADER.format(instance=instance, message=message)


def render(entries, instance):
    """models.config text of ``entries``, sorted by name, under the collection's header."""
    lines = [header(instance, "tensorflow.serving.ModelServerConfig").rstrip("\n"), "model_config_list {"]
    for entry in sorted(entries, key=lambda e: e.name):
        lines += [
            "  config {",
            f"    name: {quote(entry.name)}",
            f"    base_path: {quote(entry.base_path)}",
            f"    model_platform: {quote(entry.model_platform)}",
            "    model_version_policy {",
        ]
        if entry.policy == "specific":
            lines += ["      specific {"] + [f"        versions: {v}" for v in entry.versions] + ["      }"]
        elif entry.policy == "all":
            lines.append("      all {}")
        else:
            lines += ["      latest {", f"        num_versions: {entry.num_versions}", "      }"]
        lines.append("    }")
        for key in sorted(entry.version_labels):
            lines += ["    version_labels {", f"      key: {quote(key)}",
                      f"      value: {int(entry.version_labels[key])}", "    }"]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def describe_policy(entry):
    """The versions an entry serves, in words: 'the latest version', 'all versions', 'specific [1, 2]'."""
    if entry.policy == "all":
        return "all versions"
    if entry.policy == "specific":
        return f"specific {entry.versions}"
    return f"the latest {entry.num_versions}" if entry.num_versions > 1 else "the latest version"


def labels_of(entries):
    """{model: {label: version}}."""
    return {entry.name: dict(entry.version_labels) for entry in entries}


# ---------------------------------------------------------------------------------------------
# comparing and staging


def diff(before, after):
    """[{model, change, detail}] between two entry lists: add, remove, versions, labels, base_path."""
    old = {e.name: e for e in before}
    new = {e.name: e for e in after}
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a is None or b is None:
            out.append({"model": name, "change": "add" if a is None else "remove", "detail": ""})
            continue
        if a.base_path != b.base_path or a.model_platform != b.model_platform:
            out.append({"model": name, "change": "base_path", "detail": f"{a.base_path} -> {b.base_path}"})
        if a.model_version_policy != b.model_version_policy:
            out.append({"model": name, "change": "versions",
                        "detail": f"{a.model_version_policy} -> {b.model_version_policy}"})
        if a.version_labels != b.version_labels:
            out.append({"model": name, "change": "labels", "detail": f"{a.version_labels} -> {b.version_labels}"})
    return out


def stage_labels(entries, current, ready=None, allow_new=True):
    """The first of two config writes when labels move, as TF Serving requires.

    TF Serving assigns a label only to a version that is AVAILABLE at that moment. So a label whose
    wanted version may not be AVAILABLE yet stays where it points now (``current``: {model: {label:
    version}}) in a first config, which loads the new version; the second config moves the label.
    ``ready`` ({model: {AVAILABLE versions}}) is what the server reports; without it (a plan made
    before the server is asked) a label needs staging when it moves, or when it is new and
    ``allow_new`` (--allow_version_labels_for_unavailable_models) is false. A label whose current
    version is not AVAILABLE, or that is new, is left out of the first config. With a specific
    policy the first config serves both the old and the new version.

    Returns (staged entries or None when one write is enough, [{name, version}] to wait for).
    """
    staged = copy.deepcopy(list(entries))
    wait = []
    for entry in staged:
        before = (current or {}).get(entry.name) or {}
        available = None if ready is None else set((ready or {}).get(entry.name) or ())
        for label, version in sorted(entry.version_labels.items()):
            old = before.get(label)
            if available is not None:
                needed = version not in available
                keep = old is not None and old in available
            else:
                needed = (old is not None and old != version) or (old is None and not allow_new)
                keep = old is not None
            if not needed:
                continue
            if {"name": entry.name, "version": version} not in wait:
                wait.append({"name": entry.name, "version": version})
            if keep:
                entry.version_labels[label] = old
                if entry.policy == "specific":
                    entry.model_version_policy["specific"]["versions"] = sorted(set(entry.versions) | {old, version})
            else:
                del entry.version_labels[label]
    return (staged if wait else None), wait
