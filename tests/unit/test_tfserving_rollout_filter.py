"""The rollout's filters: models.config parsing (tfserving_config.py), rollout validation and targets
(tfserving_rollout_targets.py), the plan of each step (tfserving_rollout.py), and the summaries
(tfserving_rollout_report.py).

The configs parsed are the ones role tfserving renders (filter tfserving_models_config) and TF
Serving's own test config, cross-checked with TF Serving's ModelServerConfig schema. Listings come
from module tfserving_model_versions run on real directories.
"""

from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_config, tfserving_plan, tfserving_tasks
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_rollout as flt
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_rollout_report as report
from ansible_collections.tfserving.fleet.plugins.filter import tfserving_rollout_targets as tgt
from ansible_collections.tfserving.fleet.plugins.module_utils import tfserving_model_versions as tmv
from conftest import TESTDATA
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

TF = TESTDATA / "tfserving"
CHECK = {"instances": [1.0, 2.0, 5.0], "expected": [2.5, 3.0, 4.5]}


def inventory(source="/srv/exports/hp2", **model):
    return [
        {
            "name": "main",
            "rest_port": 8501,
            "models": [
                {"name": "half_plus_two", "source": source, "version_policy": "specific", "versions": [123, 124],
                 "labels": {"stable": 123, "canary": 124}, **model},
                {"name": "half_plus_two_cpu", "source": "/srv/exports/cpu"},
            ],
        },
        {"name": "tf2", "grpc_port": 9500, "rest_port": 9501, "bind_address": "10.1.2.3",
         "models": [{"name": "half_plus_two_tf2", "source": "/srv/exports/tf2"}]},
    ]


def rendered(instances, host_versions):
    """models.config per instance, as role tfserving renders it for this inventory."""
    listings = {}
    for ref in tfserving_tasks.model_refs(instances):
        listings[ref["key"]] = {
            "host": {"exists": True, "kind": "directory", "other": [],
                     "versions": [{"name": f"{v:08d}", "version": v, "saved_model": "saved_model.pb"}
                                  for v in host_versions.get(ref["key"], [123, 124])]}}
    plan = tfserving_plan.plan([{**i, "models": [{k: v for k, v in m.items() if k != "source"} for m in i["models"]]}
                              for i in instances], {"host": "h"}, listings)
    return {inst["name"]: tfserving_config.render_models_config(inst) for inst in plan}


def version_dir(root, number, saved_model=True):
    path = root / f"{number:08d}"
    path.mkdir(parents=True)
    if saved_model:
        (path / "saved_model.pb").write_bytes(b"\x08\x01")
    return path


@pytest.fixture
def host_dir(tmp_path):
    root = tmp_path / "host" / "main" / "half_plus_two"
    for number in (123, 124):
        version_dir(root, number)
    return root


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "rollout-source"
    version_dir(root, 125)
    return root


def make_plan(instances, rollouts, host_dir, source_listing=None, configs=None, statuses=None, staging=True,
              host_listing=None):
    targets = tgt.targets(rollouts, instances, model_root=str(host_dir.parent.parent))
    configs = configs if configs is not None else rendered(instances, {})
    host = host_listing if host_listing is not None else tmv.inspect(str(host_dir))
    return flt.plan(
        targets, instances, configs,
        {t["key"]: host for t in targets},
        {t["key"]: (source_listing if source_listing is not None else tmv.inspect(t["source"]))
         for t in targets if t["source"]},
        statuses or {}, staging,
    )


# -- models.config parsing -------------------------------------------------------------------------------
def test_parser_reads_what_the_role_renders():
    instances = inventory()
    instances[0]["models"].append({"name": "every", "version_policy": "all"})
    instances[0]["models"].append({"name": "two", "version_policy": "latest", "num_versions": 2})
    configs = rendered(instances, {"main/every": [1, 2], "main/two": [1, 2, 3]})
    parsed = tfserving_config.parse_models_config(configs["main"])
    assert parsed["half_plus_two"] == {
        "name": "half_plus_two", "base_path": "/models/half_plus_two", "platform": "tensorflow",
        "policy": "specific", "versions": [123, 124], "num_versions": None,
        "labels": {"canary": 124, "stable": 123}}
    assert parsed["half_plus_two_cpu"]["policy"] == "latest" and parsed["half_plus_two_cpu"]["num_versions"] == 1
    assert parsed["every"]["policy"] == "all" and parsed["every"]["num_versions"] is None
    assert parsed["two"]["num_versions"] == 2
    # The same text, read by TF Serving's own schema.
    message = text_format.Parse(configs["main"], model_server_config_pb2.ModelServerConfig())
    assert [c.name for c in message.model_config_list.config] == list(parsed)
    by_name = {c.name: c for c in message.model_config_list.config}
    assert dict(by_name["half_plus_two"].version_labels) == parsed["half_plus_two"]["labels"]
    assert list(by_name["half_plus_two"].model_version_policy.specific.versions) == [123, 124]
    assert by_name["two"].model_version_policy.latest.num_versions == 2


def test_parser_reads_tf_servings_own_test_config_with_colons_and_commas():
    text = (TF / "good_model_config.txt").read_text()
    parsed = tfserving_config.parse_models_config(text)
    message = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    assert list(parsed) == [c.name for c in message.model_config_list.config] == ["half_plus_two", "half_plus_three"]
    assert parsed["half_plus_three"]["base_path"] == "${TEST_HALF_PLUS_THREE_DIR}"
    assert parsed["half_plus_two"]["policy"] == "latest"


def test_parser_handles_comments_escapes_angle_brackets_and_lists():
    text = (
        '# header\nmodel_config_list < config { name: "a\\"b" base_path: \'/m\' # trailing\n'
        "model_version_policy { specific { versions: [3, 1] } } version_labels { key: 'x' value: 3 } } >\n"
    )
    assert tfserving_config.parse_models_config(text) == {
        'a"b': {"name": 'a"b', "base_path": "/m", "platform": None, "policy": "specific", "versions": [1, 3],
                "num_versions": None, "labels": {"x": 3}}}
    assert tfserving_config.parse_models_config("") == {} and tfserving_config.parse_models_config(None) == {}


@pytest.mark.parametrize("text", ["model_config_list { config { name: ", "model_config_list { config {} ",
                                  "model_config_list { } }", "= 3"])
def test_parser_refuses_malformed_text(text):
    with pytest.raises(AnsibleFilterError, match=r"models\.config"):
        tfserving_config.parse_models_config(text)


# -- validation of the rollout description ---------------------------------------------------------------
def test_a_complete_entry_is_valid():
    assert tgt.validate([{"model": "m", "version": 7, "instance": "main", "source": "/x", "labels": ["stable"],
                          "keep_previous": "all", "check": CHECK}]) == []
    assert tgt.validate([{"model": "m", "version": "8", "labels": "all", "versions": [7, 8]}]) == []


@pytest.mark.parametrize(
    ("rollouts", "message"),
    [
        ([], "non-empty list"),
        ({"model": "m"}, "non-empty list"),
        (["m"], "expected a mapping"),
        ([{"model": "m", "version": 1, "colour": "red"}], "unknown key(s) colour"),
        ([{"model": "a/b", "version": 1}], "model must be a model name"),
        ([{"model": "m", "version": 0}], "version must be a positive integer"),
        ([{"model": "m", "version": True}], "version must be a positive integer"),
        ([{"model": "m", "version": 1}, {"model": "m", "version": 2}], "listed twice"),
        ([{"model": "m", "version": 1, "instance": "../x"}], "instance must be an instance name"),
        ([{"model": "m", "version": 1, "labels": "stable"}], "labels must be a list"),
        ([{"model": "m", "version": 1, "labels": ["1x"]}], "labels must be a list"),
        ([{"model": "m", "version": 1, "keep_previous": -1}], "keep_previous must be"),
        ([{"model": "m", "version": 1, "versions": [0]}], "versions must be a list of positive integers"),
        ([{"model": "m", "version": 1, "versions": [2]}], "must include the version rolled out (1)"),
        ([{"model": "m", "version": 1, "check": [1]}], "check must be a mapping"),
        ([{"model": "m", "version": 1, "check": {"expected": 1}}], "exactly one of instances"),
        ([{"model": "m", "version": 1, "check": {"instances": [1], "inputs": {}, "expected": 1}}], "exactly one"),
        ([{"model": "m", "version": 1, "check": {"instances": [1]}}], "check needs expected"),
        ([{"model": "m", "version": 1, "check": {**CHECK, "expect": 1}}], "unknown check key(s) expect"),
        ([{"model": "m", "version": 1, "source": "relative/dir"}], "source must be an absolute directory"),
        ([{"model": "m", "version": 1, "check": CHECK, "first_predict_budget_ms": 0}],
         "first_predict_budget_ms must be a positive number of milliseconds"),
        ([{"model": "m", "version": 1, "check": CHECK, "first_predict_budget_ms": "fast"}],
         "first_predict_budget_ms must be a positive number of milliseconds"),
        ([{"model": "m", "version": 1, "first_predict_budget_ms": 100}], "first_predict_budget_ms needs check"),
    ],
)
def test_each_problem_of_a_rollout_is_named(rollouts, message):
    problems = tgt.validate(rollouts)
    assert any(message in p for p in problems), problems


# -- targets ---------------------------------------------------------------------------------------------
def test_targets_are_the_instances_serving_the_model():
    instances = inventory()
    instances[1]["models"].append({"name": "half_plus_two", "source": "/srv/exports/tf2-hp2"})
    out = tgt.targets([{"model": "half_plus_two", "version": 125, "labels": ["stable"]}], instances,
                      model_root="/srv/m/", config_root="/etc/t", bind_address="0.0.0.0")
    assert [(t["key"], t["source"], t["check_address"], t["rest_url"]) for t in out] == [
        ("main/half_plus_two", "/srv/exports/hp2", "127.0.0.1", "http://127.0.0.1:8501"),
        ("tf2/half_plus_two", "/srv/exports/tf2-hp2", "10.1.2.3", "http://10.1.2.3:9501"),
    ]
    assert out[0]["host_dir"] == "/srv/m/main/half_plus_two" and out[0]["config_path"] == "/etc/t/main/models.config"
    only = tgt.targets([{"model": "half_plus_two", "version": 125, "instance": "tf2", "source": "/new"}], instances)
    assert [(t["key"], t["source"]) for t in only] == [("tf2/half_plus_two", "/new")]


def test_targets_skip_hosts_without_the_model_and_refuse_a_wrong_instance():
    assert tgt.targets([{"model": "elsewhere", "version": 1}], inventory()) == []
    assert tgt.targets([{"model": "half_plus_two", "version": 1, "instance": "other-host-instance"}],
                       inventory()) == []
    with pytest.raises(AnsibleFilterError, match="instance tf2 does not serve model half_plus_two"):
        tgt.targets([{"model": "half_plus_two", "version": 1, "instance": "tf2"}], inventory())
    with pytest.raises(AnsibleFilterError, match="invalid rollout"):
        tgt.targets([{"model": "half_plus_two"}], inventory())


def test_ipv6_check_addresses_are_bracketed_in_urls():
    out = tgt.targets([{"model": "m", "version": 1}], [{"name": "a", "models": [{"name": "m"}]}], bind_address="::")
    assert out[0]["check_address"] == "::1" and out[0]["rest_url"] == "http://[::1]:8501"
    assert out[0]["source"] is None


# -- the plan --------------------------------------------------------------------------------------------
def test_plan_of_a_new_version_with_a_check_model(host_dir, source):
    instances = inventory()
    rollout = [{"model": "half_plus_two", "version": 125, "source": str(source), "labels": ["stable", "canary"],
                "check": CHECK}]
    plan = make_plan(instances, rollout, host_dir)
    assert plan["problems"] == []
    target = plan["targets"][0]
    root = str(host_dir.parent)
    assert plan["publish"] == [target["publish"]] == [{
        "key": "main/half_plus_two", "source": f"{source}/00000125", "name": "00000125", "version": 125,
        "dir": f"{root}/half_plus_two.rollout", "staged": f"{root}/half_plus_two.rollout/.tfserving-tmp-00000125",
        "path": f"{root}/half_plus_two.rollout/00000125", "final": f"{root}/half_plus_two/00000125",
        "staging_model": "half_plus_two.rollout"}]
    assert target["staged"] and target["serve_changes"] and plan["serve_needed"]

    def model(step, instance="main", name="half_plus_two"):
        inst = next(i for i in plan[step] if i["name"] == instance)
        return next(m for m in inst["models"] if m["name"] == name)

    # stage: the model as it is now (no source: the role never deletes versions), plus the check model.
    assert model("stage") == {"name": "half_plus_two", "version_policy": "specific", "versions": [123, 124],
                              "labels": {"stable": 123, "canary": 124}}
    assert model("stage", name="half_plus_two.rollout") == {
        "name": "half_plus_two.rollout", "version_policy": "specific", "versions": [125]}
    # serve: the new version beside the old ones, labels unchanged.
    assert model("serve") == {"name": "half_plus_two", "version_policy": "specific", "versions": [123, 124, 125],
                              "labels": {"stable": 123, "canary": 124}}
    # promote: labels moved, one previous version kept (the newest).
    assert model("promote") == {"name": "half_plus_two", "version_policy": "specific", "versions": [124, 125],
                                "labels": {"stable": 125, "canary": 125}}
    assert model("restore") == {"name": "half_plus_two", "version_policy": "specific", "versions": [123, 124, 125],
                                "labels": {"stable": 123, "canary": 124}}
    # Everything else is the inventory, untouched.
    for step in ("stage", "serve", "promote", "restore"):
        assert model(step, name="half_plus_two_cpu") == instances[0]["models"][1]
        assert next(i for i in plan[step] if i["name"] == "tf2") == instances[1]
    assert target["previous_expectations"] == [
        {"name": "half_plus_two", "version": 123}, {"name": "half_plus_two", "version": 124},
        {"name": "half_plus_two", "label": "canary", "version": 124},
        {"name": "half_plus_two", "label": "stable", "version": 123}]
    assert target["promote_expectations"][-2:] == [
        {"name": "half_plus_two", "label": "canary", "version": 125},
        {"name": "half_plus_two", "label": "stable", "version": 125}]
    assert target["record"] == {"instance": "main", "model": "half_plus_two", "version_policy": "specific",
                                "versions": [124, 125], "labels": {"canary": 125, "stable": 125}}
    assert target["unload_checks"] == [
        {"url": "http://127.0.0.1:8501/v1/models/half_plus_two", "versions": [125]},
        {"url": "http://127.0.0.1:8501/v1/models/half_plus_two.rollout", "versions": None}]
    assert flt.proofs(plan["targets"]) == [(target, None), (target, "stable"), (target, "canary")]


def test_without_staging_the_version_goes_into_the_model_directly(host_dir, source):
    plan = make_plan(inventory(), [{"model": "half_plus_two", "version": 125, "source": str(source)}], host_dir,
                     staging=False)
    publish = plan["publish"][0]
    assert publish["path"] == publish["final"] == f"{host_dir}/00000125" and publish["staging_model"] is None
    assert plan["stage"] == [] and not plan["targets"][0]["staged"]
    assert plan["targets"][0]["unload_checks"] == [
        {"url": "http://127.0.0.1:8501/v1/models/half_plus_two", "versions": [125]}]


@pytest.mark.parametrize(
    ("entry", "versions", "labels"),
    [
        # The canary label stays on 124, so 124 stays served whatever keep_previous says.
        ({"labels": ["stable"], "keep_previous": 0}, [124, 125], {"stable": 125, "canary": 124}),
        ({"labels": ["stable", "canary"], "keep_previous": 0}, [125], {"stable": 125, "canary": 125}),
        ({"labels": ["stable", "canary"], "keep_previous": "all"}, [123, 124, 125], {"stable": 125, "canary": 125}),
        ({"labels": "all", "versions": [124, 125]}, [124, 125], {"stable": 125, "canary": 125}),
        # A label the model does not have yet is created on the new version.
        ({"labels": ["shadow"]}, [123, 124, 125], {"stable": 123, "canary": 124, "shadow": 125}),
    ],
)
def test_retirement_by_policy(host_dir, source, entry, versions, labels):
    rollout = [{"model": "half_plus_two", "version": 125, "source": str(source), **entry}]
    plan = make_plan(inventory(), rollout, host_dir)
    assert plan["problems"] == []
    assert plan["targets"][0]["after"] == {"version_policy": "specific", "versions": versions, "labels": labels}


def test_versions_that_leave_a_label_dangling_are_refused(host_dir, source):
    rollout = [{"model": "half_plus_two", "version": 125, "source": str(source), "labels": ["stable"],
                "versions": [125]}]
    plan = make_plan(inventory(), rollout, host_dir)
    assert len(plan["problems"]) == 1 and "leave label(s) canary -> 124 pointing at a version" in plan["problems"][0]


def test_latest_policy_stays_latest_and_needs_the_newest_version(tmp_path, source):
    instances = [{"name": "main", "models": [{"name": "m", "source": "/srv/m", "version_policy": "latest",
                                               "num_versions": 2}]}]
    root = tmp_path / "host" / "main" / "m"
    for number in (123, 124):
        version_dir(root, number)
    configs = rendered(instances, {"main/m": [123, 124]})
    statuses = {"main": {"m": [{"version": 124, "state": "AVAILABLE"}, {"version": 123, "state": "AVAILABLE"},
                               {"version": 122, "state": "END"}]}}
    plan = make_plan(instances, [{"model": "m", "version": 125, "source": str(source)}], root, configs=configs,
                     statuses=statuses)
    assert plan["problems"] == []
    target = plan["targets"][0]
    assert target["previous"]["versions"] == [123, 124]
    assert target["after"] == {"version_policy": "latest", "num_versions": 2, "labels": {}}
    serve = plan["serve"][0]["models"][0]
    assert serve["version_policy"] == "specific" and serve["versions"] == [123, 124, 125]
    assert target["promote_expectations"] == [{"name": "m", "all_versions": True}, {"name": "m", "version": 125}]
    older = tmp_path / "older"
    version_dir(older, 100)
    version_dir(root, 130)
    plan = make_plan(instances, [{"model": "m", "version": 100, "source": str(older)}], root, configs=configs,
                     statuses=statuses)
    assert "host has newer version 130" in plan["problems"][0]
    plan = make_plan(instances, [{"model": "m", "version": 100, "source": str(older), "keep_previous": 1}], root,
                     configs=configs, statuses=statuses)
    assert plan["problems"] == [] and plan["targets"][0]["after"]["versions"] == [100, 124]


def test_a_rollback_serves_a_version_already_on_the_host(host_dir):
    rollout = [{"model": "half_plus_two", "version": 123, "on_host_only": True, "labels": "all",
                "keep_previous": "all"}]
    plan = make_plan(inventory(), rollout, host_dir)
    target = plan["targets"][0]
    assert plan["problems"] == [] and plan["publish"] == [] and target["publish"] is None
    assert target["labels"] == ["canary", "stable"]
    assert not target["serve_changes"] and not plan["serve_needed"] and plan["stage"] == []
    assert target["after"] == {"version_policy": "specific", "versions": [123, 124],
                               "labels": {"stable": 123, "canary": 123}}
    assert target["unload_checks"] == []
    missing = make_plan(inventory(), [{**rollout[0], "version": 999}], host_dir)
    assert "version 999 is not on the host" in missing["problems"][0] and "has 123, 124" in missing["problems"][0]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not_in_source", "has 125; expected a directory named 126 (or zero-padded, like 00000126)"),
        ("no_source_dir", "does not exist"),
        ("no_source", "the model has no source"),
        ("archive_source", "must be a directory for a rollout"),
        ("broken_on_host", "holds no saved_model.pb"),
        ("not_served", "the server does not serve this model yet"),
        ("base_path", "is read from base_path s3://bucket/m"),
        ("unreadable_config", "its models.config cannot be read"),
    ],
)
def test_plan_problems_name_what_to_do(tmp_path, host_dir, source, case, message):
    instances = inventory()
    entry = {"model": "half_plus_two", "version": 126, "source": str(source)}
    kwargs = {}
    if case == "no_source_dir":
        entry["source"] = str(tmp_path / "nowhere")
    elif case == "no_source":
        del entry["source"]
        del instances[0]["models"][0]["source"]
    elif case == "archive_source":
        entry["version"] = 125
        kwargs["source_listing"] = {**tmv.inspect(str(source)), "kind": "archive"}
    elif case == "broken_on_host":
        entry["version"] = 125
        version_dir(host_dir, 125, saved_model=False)
    elif case == "not_served":
        kwargs["configs"] = {"main": 'model_config_list { config { name: "other" base_path: "/models/other" } }'}
    elif case == "base_path":
        instances[0]["models"][0] = {"name": "half_plus_two", "base_path": "s3://bucket/m"}
    elif case == "unreadable_config":
        kwargs["configs"] = {"main": "model_config_list {"}
    plan = make_plan(instances, [entry], host_dir, **kwargs)
    assert any(message in p for p in plan["problems"]), plan["problems"]
    assert all(p.startswith("instance main") for p in plan["problems"])


def test_a_model_name_too_long_for_the_check_model_is_refused(tmp_path, source):
    name = "m" * 60
    instances = [{"name": "main", "models": [{"name": name, "source": "/s", "versions": [123]}]}]
    root = tmp_path / "host" / "main" / name
    version_dir(root, 123)
    plan = make_plan(instances, [{"model": name, "version": 125, "source": str(source)}], root,
                     configs=rendered(instances, {}))
    assert "too long for the check model" in plan["problems"][0]


def test_previous_checks_and_snapshot():
    instances = inventory()
    targets = tgt.targets([{"model": "half_plus_two", "version": 125}, {"model": "half_plus_two_tf2", "version": 2}],
                          instances)
    configs = rendered(instances, {})
    checks = flt.previous_checks(targets, {"main": configs["main"], "tf2": None})
    assert [(c["instance"], c["check_address"], c["rest_port"]) for c in checks] == [
        ("main", "127.0.0.1", 8501), ("tf2", "10.1.2.3", 9501)]
    assert checks[0]["models"][0] == {"name": "half_plus_two", "version": 123}
    assert checks[1]["models"] == [{"name": "half_plus_two_tf2"}]
    import base64

    slurped = [{"item": "/etc/tfserving/main/models.config", "content": base64.b64encode(b"abc").decode()},
               {"item": "/etc/tfserving/tf2/models.config", "failed": True, "msg": "file not found"}]
    assert flt.snapshot(targets, slurped) == {"main": "abc", "tf2": None}


# -- outcomes and summaries ------------------------------------------------------------------------------
OUTCOMES = {
    "a": {"tfserving_rollout_outcome": {"result": "deployed", "detail": "main/m: specific [2]"}},
    "b": {"tfserving_rollout_outcome": {"result": "rolled_back", "detail": "check step failed"}},
    "c": {"tfserving_rollout_outcome": {}},
}


def test_outcomes_summary_and_verdicts():
    outcomes = report.outcomes(["a", "b", "c", "d"], OUTCOMES)
    assert [o["result"] for o in outcomes] == ["deployed", "rolled_back", "untouched", "untouched"]
    assert report.summary(outcomes) == [
        "a     deployed: main/m: specific [2]",
        "b     ROLLED BACK: check step failed",
        "c     untouched (not reached): the rollout stopped before this host",
        "d     untouched (not reached): the rollout stopped before this host",
    ]
    assert [o["host"] for o in report.failed(outcomes)] == ["b"]
    assert report.verdict(outcomes).startswith("ROLLOUT STOPPED: a batch failed and was restored")
    assert report.verdict(outcomes[:1]) == "ROLLOUT COMPLETE: every host deployed"
    assert report.verdict([{"result": "nothing_to_do"}], "rollback") == (
        "ROLLBACK COMPLETE: every host had nothing to do")
    assert report.verdict([outcomes[0], outcomes[2]]) == "ROLLOUT IN PROGRESS"
    assert report.verdict([{"result": "refused"}]).startswith("ROLLOUT STOPPED: refused before any change")
    assert report.verdict([{"result": "rollback_failed"}, outcomes[1]]).startswith(
        "ROLLOUT STOPPED: a host could not be restored")


def test_markdown_summary_has_a_row_per_host_and_the_records():
    outcomes = report.outcomes(["a", "b", "c"], {
        "a": {"tfserving_rollout_outcome": {
            "result": "deployed", "detail": "x | y",
            "record": [{"instance": "main", "model": "m", "version_policy": "specific", "versions": [2],
                        "labels": {"stable": 2}}]}},
        "b": OUTCOMES["b"]})
    text = report.markdown(outcomes, report.verdict(outcomes))
    assert text.splitlines() == [
        "# ROLLOUT STOPPED: a batch failed and was restored; hosts not reached are untouched",
        "",
        "| Host | Result | Detail |",
        "|---|---|---|",
        "| a | deployed | x \\| y |",
        "| b | ROLLED BACK | check step failed |",
        "| c | untouched (not reached) | the rollout stopped before this host |",
        "",
        "## Record in the inventory",
        "",
        "- a: main/m: specific [2], labels stable -> 2",
    ]


def test_failure_text_of_loops_and_plain_results():
    loop = {"msg": "One or more items failed", "results": [
        {"failed": False, "item": "x"},
        {"failed": True, "_ansible_item_label": "main/m 125", "msg": "answered\n [3.5]"}]}
    assert report.failure_text(loop) == "main/m 125: answered [3.5]"
    assert report.failure_text({"msg": "plain   message"}) == "plain message"
    assert report.failure_text({"msg": "x" * 700}, limit=50) == "x" * 47 + "..."
    assert report.failure_text("text") == "text"


def test_restored_text_and_descriptions(host_dir, source):
    plan = make_plan(inventory(), [{"model": "half_plus_two", "version": 125, "source": str(source),
                                    "labels": ["stable"]}], host_dir)
    text = report.restored_text(plan, "check step failed:\n  wrong", 3)
    assert text == (
        "check step failed: wrong Restored: half_plus_two v123, half_plus_two v124, half_plus_two label canary "
        "-> 124, half_plus_two label stable -> 123 AVAILABLE again, 3 prediction(s) answered; new version "
        f"directories removed: {host_dir}/00000125.")
    assert report.describe(plan["targets"][0]["record"]) == (
        "main/half_plus_two: specific [124, 125], labels canary -> 124, stable -> 125")
    assert report.describe({"instance": "i", "model": "m", "version_policy": "latest", "num_versions": 2}) == (
        "i/m: latest 2")
    assert report.expectation_text([{"name": "m", "all_versions": True}]) == ["m (every loaded version)"]


@pytest.mark.parametrize("step", ["stage", "serve", "promote", "restore"])
def test_a_step_writes_what_role_tfserving_renders_for_its_instances(host_dir, source, step):
    """The rollout writes a step's models.config from the deployed plan (tfserving_config_plan, no
    listing read); role tfserving, run with the step's instances on a host holding the versions, renders
    the same text. Other instances are not written; the written one keeps its ports, flags, container."""
    instances = inventory()
    rollout = [{"model": "half_plus_two", "version": 125, "source": str(source), "labels": ["stable"],
                "check": CHECK}]
    plan = make_plan(instances, rollout, host_dir)
    on_host = {"main/half_plus_two": [123, 124, 125], "main/half_plus_two.rollout": [125]}
    deployed = tfserving_plan.plan(
        [{**i, "models": [{k: v for k, v in m.items() if k != "source"} for m in i["models"]]} for i in instances],
        {"host": "h"},
        {ref["key"]: {"host": {"exists": True, "kind": "directory", "other": [], "versions": [
            {"name": f"{v:08d}", "version": v, "saved_model": "saved_model.pb"} for v in [123, 124]]}}
         for ref in tfserving_tasks.model_refs(instances)})
    written = tfserving_plan.config_plan(plan[step], deployed, {"host": "h"}, ["main"])
    assert [inst["name"] for inst in written] == ["main"]
    assert tfserving_config.render_models_config(written[0]) == rendered(plan[step], on_host)["main"]
    assert {k: v for k, v in written[0].items() if k != "models"} == {
        k: v for k, v in deployed[0].items() if k != "models"}
    every = tfserving_plan.config_plan(plan[step], deployed, {"host": "h"})
    assert [tfserving_config.render_models_config(i) for i in every] == [
        tfserving_config.render_models_config(i) for i in [*written, deployed[1]]]


def test_plan_does_not_modify_its_inputs(host_dir, source):
    instances = inventory()
    frozen = copy.deepcopy(instances)
    make_plan(instances, [{"model": "half_plus_two", "version": 125, "source": str(source), "labels": "all"}],
              host_dir)
    assert instances == frozen


def test_filters_are_registered():
    names = (set(flt.FilterModule().filters()) | set(tgt.FilterModule().filters())
             | set(report.FilterModule().filters()))
    assert "tfserving_models_config_parse" in tfserving_config.FilterModule().filters()
    assert {"tfserving_rollout_validate", "tfserving_rollout_targets",
            "tfserving_rollout_plan", "tfserving_rollout_previous_checks", "tfserving_rollout_snapshot",
            "tfserving_rollout_outcomes", "tfserving_rollout_summary", "tfserving_rollout_verdict",
            "tfserving_rollout_markdown",
            "tfserving_rollout_failed", "tfserving_rollout_failure_text", "tfserving_rollout_restored_text",
            "tfserving_rollout_describe", "tfserving_rollout_proofs",
            "tfserving_rollout_expectation_text"} == names


# -- first-prediction budget ------------------------------------------------------------------------------
def test_first_predict_budget_comes_from_the_entry_or_the_inventory_model(host_dir, source):
    instances = inventory(str(source), first_predict_budget_ms=250)
    entry = {"model": "half_plus_two", "version": 125, "check": CHECK}
    (target,) = tgt.targets([entry], instances)
    assert target["first_predict_budget_ms"] == 250
    (target,) = tgt.targets([{**entry, "first_predict_budget_ms": 900}], instances)
    assert target["first_predict_budget_ms"] == 900
    (target,) = tgt.targets([entry], inventory(str(source)))
    assert target["first_predict_budget_ms"] is None
    # The plan hands it to the tasks with each target.
    plan = make_plan(instances, [entry], host_dir)
    assert [t["first_predict_budget_ms"] for t in plan["targets"]] == [250]


def test_an_inventory_budget_without_a_check_is_refused_except_for_rollbacks(source):
    instances = inventory(str(source), first_predict_budget_ms=250)
    with pytest.raises(AnsibleFilterError, match="has first_predict_budget_ms 250 in the inventory, expected a check"):
        tgt.targets([{"model": "half_plus_two", "version": 125}], instances)
    (target,) = tgt.targets([{"model": "half_plus_two", "version": 124, "on_host_only": True}], instances)
    assert target["first_predict_budget_ms"] is None
