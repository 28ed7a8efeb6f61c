"""module_utils/tfserving_models_config: the parser against TF Serving's own schema (protobuf's
text_format with tensorflow_serving's model_server_config_pb2), rendering, validation and label staging."""

from __future__ import annotations

import pytest
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_models_config as mc
from ansible_collections.tfserving.fleet.plugins.module_utils.tfserving_models_config import ConfigError, ModelEntry
from conftest import TESTDATA
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

TF = TESTDATA / "tfserving"


def reference(text):
    """What TF Serving's schema reads: [(name, base_path, platform, policy, labels)]."""
    message = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    out = []
    for config in message.model_config_list.config:
        policy = config.model_version_policy
        which = policy.WhichOneof("policy_choice") or "latest"
        if which == "specific":
            body = {"versions": sorted(policy.specific.versions)}
        elif which == "latest" and policy.HasField("latest") and policy.latest.num_versions:
            body = {"num_versions": policy.latest.num_versions}
        else:
            body = {}
        out.append((config.name, config.base_path, config.model_platform, {which: body},
                    dict(config.version_labels)))
    return out


def ours(text):
    return [(e.name, e.base_path, e.model_platform or "", e.model_version_policy, e.version_labels)
            for e in mc.parse(text)]


SAMPLES = [
    (TF / "good_model_config.txt").read_text(),
    'model_config_list { config { name: "a" base_path: "/m/a" model_platform: "tensorflow" } }',
    # Map entries, a specific policy as repeated fields and as a list, comments, ';' separators.
    """# comment
model_config_list {
  config {
    name: "m"  # trailing comment
    base_path: '/models/m';
    model_platform: "tensorflow"
    model_version_policy: { specific { versions: 3 versions: 1 } }
    version_labels { key: "stable" value: 1 }
    version_labels: { key: 'canary', value: 3 }
  }
  config < name: "n" base_path: "/n" model_platform: "tensorflow"
           model_version_policy { specific { versions: [4, 5] } } >
  config { name: "o" base_path: "/o" model_version_policy { all {} } }
  config { name: "p" base_path: "/p" model_version_policy { latest { num_versions: 0x2 } } }
}
""",
    # Escapes: quotes, backslash, octal and hex bytes of UTF-8, adjacent strings joined.
    r'model_config_list { config { name: "a\"b\\c\101\x42" "-tail" base_path: "/\303\251t\u00e9" } }',
]


@pytest.mark.parametrize("text", SAMPLES)
def test_parser_reads_what_tf_servings_schema_reads(text):
    assert ours(text) == reference(text)


def test_vendored_tf_serving_configs():
    assert [e.name for e in mc.parse((TF / "good_model_config.txt").read_text())] == ["half_plus_two",
                                                                                      "half_plus_three"]
    with pytest.raises(ConfigError, match=r"^models\.config line 1: ") as err:
        mc.parse((TF / "bad_model_config.txt").read_text())
    assert err.value.line == 1


ENTRIES = [
    ModelEntry("b", "/models/b", "tensorflow", mc.policy_of("specific", versions=[124, 123]),
               {"stable": 123, "canary": 124}),
    ModelEntry('we"ird\\na\tme\n', "s3://bucket/a", "tensorflow", mc.policy_of("latest", 2)),
    ModelEntry("c", "/models/c", "tensorflow", mc.policy_of("all")),
    ModelEntry("d", "/models/d", "tensorflow", mc.policy_of("latest")),
]


def test_render_parse_render_round_trip():
    text = mc.render(ENTRIES, "main")
    assert text.startswith(mc.HEADER_MARK + ": ")
    parsed = mc.parse(text)
    assert mc.render(parsed, "main") == text
    assert sorted(parsed, key=lambda e: e.name) == sorted(
        [ModelEntry(e.name, e.base_path, e.model_platform,
                    {"latest": {"num_versions": e.num_versions}} if e.policy == "latest" else e.model_version_policy,
                    e.version_labels) for e in ENTRIES], key=lambda e: e.name)
    assert ours(text) == reference(text)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("model_config_list {\n  config {\n    platform: \"x\"\n  }\n}", 3, 'has no field named "platform"'),
        ("model_config_list {\n  config {\n    name: 3\n  }\n}", 3, "expects a quoted string"),
        ("model_config_list {\n  config {\n    name \"x\"\n  }\n}", 3, "expected ':' after name"),
        ("model_config_list {\n  config {\n", 2, "missing '}'"),
        ("model_config_list { }\n}", 2, "expected a field name"),
        ("\n\n= 3", 3, "unexpected"),
        ('model_config_list { config { name: "a" name: "b" } }', 1, "given twice"),
        ("model_config_list { config { model_version_policy { all {} latest {} } } }", 1, "more than one"),
        ("custom_model_config { }", 1, "custom_model_config"),
        ('model_config_list { config { name: "\\q" } }', 1, "invalid escape"),
        ("model_config_list { config { model_type: TENSORFLOW } }", 1, "not supported"),
    ],
)
def test_errors_name_the_line(text, line, words):
    with pytest.raises(ConfigError) as err:
        mc.parse(text)
    assert err.value.line == line
    assert words in str(err.value) and str(err.value).startswith(f"models.config line {line}: ")


def test_empty_text_is_no_model():
    assert mc.parse("") == [] and mc.parse("# nothing\n") == [] and mc.parse(None) == []


def test_validate_says_what_tf_serving_rejects():
    bad = [
        ModelEntry("a", "relative", "tensorflow"),
        ModelEntry("a", "/a", "pytorch"),
        ModelEntry("s", "/s", "", mc.policy_of("specific", versions=[1]), {"stable": 2}),
        ModelEntry("t", "/t", "tensorflow", {"latest": {"num_versions": -1}}),
    ]
    problems = mc.validate(bad)
    assert problems == [
        "Expected model a to have an absolute path or URI; got base_path()=relative",
        "Illegal to list model a multiple times in config list (TF Serving's rule)",
        'model a has model_platform "pytorch"; TF Serving knows only "tensorflow"',
        'model s has an empty model_platform; set it to "tensorflow"',
        "label stable of model s points at version 2, which its specific policy [1] does not load; "
        "TF Serving refuses labels on versions that are not available",
        "model t: num_versions must be >= 0",
    ]
    assert mc.validate(ENTRIES) == []


def test_diff_names_each_change():
    after = mc.parse(mc.render(ENTRIES, "x"))
    after[0].version_labels["stable"] = 124
    assert mc.diff(mc.parse(mc.render(ENTRIES, "x")), [*after[1:], after[0]]) == [
        {"model": "b", "change": "labels",
         "detail": "{'canary': 124, 'stable': 123} -> {'canary': 124, 'stable': 124}"},
    ]
    assert mc.diff(ENTRIES[:1], ENTRIES[1:2]) == [
        {"model": "b", "change": "remove", "detail": ""},
        {"model": 'we"ird\\na\tme\n', "change": "add", "detail": ""},
    ]


# -- the two-step label plan -----------------------------------------------------------------------------
def wanted():
    return [ModelEntry("m", "/m", "tensorflow", mc.policy_of("specific", versions=[2]), {"stable": 2, "canary": 2})]


def test_a_moving_label_stays_on_its_old_version_until_the_new_one_is_served():
    staged, wait = mc.stage_labels(wanted(), {"m": {"stable": 1, "canary": 2}})
    assert wait == [{"name": "m", "version": 2}]
    assert staged[0].version_labels == {"stable": 1, "canary": 2}
    assert staged[0].versions == [1, 2]  # the old version stays loaded under its label


def test_labels_that_do_not_move_need_one_write():
    assert mc.stage_labels(wanted(), {"m": {"stable": 2, "canary": 2}}) == (None, [])
    assert mc.stage_labels(wanted(), {}) == (None, [])  # new labels are allowed by default


def test_new_labels_wait_without_allow_version_labels_for_unavailable_models():
    staged, wait = mc.stage_labels(wanted(), {}, allow_new=False)
    assert staged[0].version_labels == {} and wait == [{"name": "m", "version": 2}]


def test_with_the_servers_answer_only_available_versions_carry_labels():
    # 2 is AVAILABLE: nothing to stage.
    assert mc.stage_labels(wanted(), {"m": {"stable": 1}}, ready={"m": {1, 2}}) == (None, [])
    # 2 is not: stable stays on 1 (AVAILABLE), canary (new) is left out until the second write.
    staged, wait = mc.stage_labels(wanted(), {"m": {"stable": 1}}, ready={"m": {1}})
    assert staged[0].version_labels == {"stable": 1} and wait == [{"name": "m", "version": 2}]
    # The old version is gone too: the label is left out rather than pointed at nothing.
    staged, _wait = mc.stage_labels(wanted(), {"m": {"stable": 1}}, ready={"m": set()})
    assert staged[0].version_labels == {}


def test_staging_leaves_the_wanted_entries_alone():
    entries = wanted()
    mc.stage_labels(entries, {"m": {"stable": 1}})
    assert entries == wanted()
