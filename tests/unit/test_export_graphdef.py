"""tfserving-export from-graphdef: a frozen graph built here becomes a SavedModel TF Serving loads."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from export_models import frozen_graph, tf, tree, unfrozen_graph

from tfserving_export.cli import main

pytestmark = pytest.mark.tensorflow

MAPPING = ["--input", "features=input:0", "--output", "probabilities=head/probs:0",
           "--output", "logits=head/logits"]


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    return frozen_graph(tmp_path_factory.mktemp("graph") / "frozen.pb")


def session_predict(version_dir: pathlib.Path, signature: str, feeds: dict) -> dict:
    """Load the way TF Serving does (session loader, tag 'serve') and run the signature by its names."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
        sig = meta.signature_def[signature]
        return session.run({k: v.name for k, v in sig.outputs.items()},
                           {sig.inputs[k].name: v for k, v in feeds.items()})


def test_frozen_graph_becomes_a_savedmodel_with_the_new_names_and_the_same_predictions(frozen, tmp_path, capsys):
    source, reference = frozen
    base = tmp_path / "models" / "classifier"
    code = main(["from-graphdef", str(source), "--base-path", str(base), *MAPPING,
                 "--signature-name", "classify", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["changed"] is True and result["version"] == 1 and result["path"] == str(base / "1")
    assert tree(base)[:1] == ["1"] and not [p for p in tree(base) if p.startswith(".")]

    # TF2 loader: the signature carries exactly the new names.
    loaded = tf.saved_model.load(str(base / "1"), tags=["serve"])
    assert list(loaded.signatures) == ["classify"]
    signature = loaded.signatures["classify"]
    assert set(signature.structured_input_signature[1]) == {"features"}
    assert set(signature.structured_outputs) == {"probabilities", "logits"}
    out = signature(features=tf.constant(reference["x"]))
    np.testing.assert_allclose(out["probabilities"].numpy(), reference["probs"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["logits"].numpy(), reference["logits"], rtol=1e-6, atol=1e-6)

    # TF1 session loader, which is what TF Serving's C++ LoadSavedModel does.
    out = session_predict(base / "1", "classify", {"features": reference["x"]})
    np.testing.assert_allclose(out["probabilities"], reference["probs"], rtol=1e-6, atol=1e-6)

    assert result["signature"]["inputs"]["features"]["shape"] == [-1, 3]
    assert result["signature"]["outputs"]["probabilities"]["dtype_enum"] == "DT_FLOAT"
    assert result["verification"]["verified"] is True
    provenance = json.loads((base / "1" / "assets.extra" / "tfserving_export.json").read_text())
    assert provenance["fingerprint"] == result["fingerprint"]
    assert provenance["params"]["inputs"] == [["features", "input:0"]]
    assert oct((base / "1").stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_repeated_export_is_unchanged_and_a_new_graph_takes_the_next_version(frozen, tmp_path, capsys):
    source, _ = frozen
    base = tmp_path / "m"
    assert main(["from-graphdef", str(source), "-o", str(base), *MAPPING, "--json"]) == 0
    capsys.readouterr()
    assert main(["from-graphdef", str(source), "-o", str(base), *MAPPING, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["changed"] is False and again["version"] == 1 and "unchanged" in again["msg"]

    retrained, reference = frozen_graph(tmp_path / "retrained.pb", seed=7)
    assert main(["from-graphdef", str(retrained), "-o", str(base), *MAPPING, "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["changed"] is True and second["version"] == 2 and second["existing_versions"] == [1]
    out = session_predict(base / "2", "serving_default", {"features": reference["x"]})
    np.testing.assert_allclose(out["probabilities"], reference["probs"], rtol=1e-6, atol=1e-6)

    assert main(["from-graphdef", str(source), "-o", str(base), *MAPPING, "--version", "10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(base / "10")
    assert [p for p in tree(base) if "/" not in p] == ["1", "10", "2"]


def test_a_taken_version_is_refused_and_nothing_is_written(frozen, tmp_path, capsys):
    source, _ = frozen
    base = tmp_path / "m"
    assert main(["from-graphdef", str(source), "-o", str(base), *MAPPING]) == 0
    retrained, _ = frozen_graph(tmp_path / "retrained.pb", seed=3)
    before = tree(base)
    capsys.readouterr()
    assert main(["from-graphdef", str(retrained), "-o", str(base), *MAPPING, "--version", "1"]) == 1
    err = capsys.readouterr().err
    assert "version 1 already exists" in err and "expected a free version number" in err
    assert tree(base) == before


def test_a_missing_file_is_named_and_nothing_is_created(tmp_path, capsys):
    base = tmp_path / "repo" / "m"
    code = main(["from-graphdef", str(tmp_path / "no_such.pb"), "-o", str(base), *MAPPING])
    err = capsys.readouterr().err
    assert code == 1
    assert f"source model {tmp_path / 'no_such.pb'} does not exist" in err
    assert "expected a frozen TensorFlow graph" in err and "Fix:" in err
    assert "Traceback" not in err
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("tensor,kind,says", [
    ("--input=features=missing_input:0", "input", "input tensor 'missing_input:0' is not in the graph"),
    ("--output=probabilities=head/nope", "output", "output tensor 'head/nope:0' is not in the graph"),
    ("--output=probabilities=head/probs:3", "output", "expected an output index below 1"),
])
def test_a_tensor_name_not_in_the_graph_is_named_with_the_candidates(frozen, tmp_path, capsys, tensor, kind, says):
    source, _ = frozen
    base = tmp_path / "m"
    assert main(["from-graphdef", str(source), "-o", str(base), *MAPPING]) == 0
    before = tree(base)
    capsys.readouterr()
    args = ["--input", "features=input:0", "--output", "probabilities=head/probs:0"]
    args = [tensor, *args[2:]] if kind == "input" else [*args[:2], tensor]
    assert main(["from-graphdef", str(source), "-o", str(base), *args, "--version", "2"]) == 1
    err = capsys.readouterr().err
    assert says in err
    if kind == "input":
        assert "placeholders are: input:0 (float32, (None, 3))" in err
    elif "index" not in says:
        assert "graph outputs are: head/probs:0 (float32, (None, 2))" in err  # ops nothing consumes
    assert tree(base) == before  # no version 2, no staging directory left behind


def test_an_unfrozen_graph_is_refused(tmp_path, capsys):
    source = unfrozen_graph(tmp_path / "live.pb")
    code = main(["from-graphdef", str(source), "-o", str(tmp_path / "m"),
                 "--input", "x=input:0", "--output", "y=out:0"])
    err = capsys.readouterr().err
    assert code == 1 and "is not a frozen graph" in err and "variable op(s), for example w" in err
    assert not (tmp_path / "m").exists()


def test_a_file_that_is_not_a_graph_is_refused(tmp_path, capsys):
    garbage = tmp_path / "model.pb"
    garbage.write_bytes(b"\xff\xfe this is not a protobuf \x00\x01")
    code = main(["from-graphdef", str(garbage), "-o", str(tmp_path / "m"), *MAPPING])
    err = capsys.readouterr().err
    assert code == 1 and f"{garbage}" in err and ("is not a TensorFlow GraphDef" in err or "holds no graph" in err)
    assert not (tmp_path / "m").exists()


def test_graphdef_needs_inputs_and_outputs(frozen, tmp_path, capsys):
    source, _ = frozen
    with pytest.raises(SystemExit) as exit_info:
        main(["from-graphdef", str(source), "-o", str(tmp_path / "m")])
    assert exit_info.value.code == 2
    assert "--input" in capsys.readouterr().err


def test_the_console_script_prints_clean_json(frozen, tmp_path):
    source, reference = frozen
    script = pathlib.Path(sys.executable).with_name("tfserving-export")
    base = tmp_path / "m"
    done = subprocess.run([str(script), "from-graphdef", str(source), "-o", str(base), *MAPPING, "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # stdout holds the JSON and nothing else
    assert result["version"] == 1 and result["verification"]["verified"] is True
    out = session_predict(base / "1", "serving_default", {"features": reference["x"]})
    np.testing.assert_allclose(out["logits"], reference["logits"], rtol=1e-6, atol=1e-6)
