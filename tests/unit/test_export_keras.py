"""tfserving-export from-keras: .keras and .h5 models built here become SavedModels TF Serving loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from export_models import keras_sequential, keras_two_headed, tf, tree

from tfserving_export.cli import main

pytestmark = pytest.mark.tensorflow


def batch(seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {"features": rng.standard_normal((6, 4)).astype(np.float32),
            "extra": rng.standard_normal((6, 2)).astype(np.float32)}


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_model_becomes_a_savedmodel_with_the_new_names_and_the_same_predictions(tmp_path, capsys, suffix):
    model = keras_two_headed()
    source = tmp_path / f"model{suffix}"
    model.save(source)
    data = batch()
    score, embed = model.predict([data["features"], data["extra"]], verbose=0)

    base = tmp_path / "churn"
    code = main(["from-keras", str(source), "-o", str(base), "--input", "customer=features",
                 "--output", "churn_probability=score", "--signature-name", "predict", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["version"] == 1 and result["verification"]["verified"] is True

    loaded = tf.saved_model.load(str(base / "1"), tags=["serve"])
    signature = loaded.signatures["predict"]
    # Renamed where asked, the Keras name elsewhere.
    assert set(signature.structured_input_signature[1]) == {"customer", "extra"}
    assert set(signature.structured_outputs) == {"churn_probability", "embed"}
    out = signature(customer=tf.constant(data["features"]), extra=tf.constant(data["extra"]))
    np.testing.assert_allclose(out["churn_probability"].numpy(), score, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["embed"].numpy(), embed, rtol=1e-5, atol=1e-6)
    # Keras also registers the first endpoint as serving_default, which requests without a name use.
    assert sorted(k for k in loaded.signatures) == ["predict", "serving_default"]
    assert result["signature"]["inputs"]["customer"]["shape"] == [-1, 4]


def test_sequential_h5_keeps_its_keras_names(tmp_path, capsys):
    model = keras_sequential()
    source = tmp_path / "seq.h5"
    model.save(source)
    x = np.random.default_rng(2).standard_normal((3, 3)).astype(np.float32)
    base = tmp_path / "seq"
    assert main(["from-keras", str(source), "-o", str(base), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    inputs, outputs = result["signature"]["inputs"], result["signature"]["outputs"]
    assert list(outputs) == ["logits"] and len(inputs) == 1
    (input_name,) = inputs
    signature = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
    out = signature(**{input_name: tf.constant(x)})["logits"].numpy()
    np.testing.assert_allclose(out, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_renaming_an_input_the_model_lacks_names_the_model_inputs(tmp_path, capsys):
    source = tmp_path / "model.keras"
    keras_two_headed().save(source)
    base = tmp_path / "m"
    code = main(["from-keras", str(source), "-o", str(base), "--input", "x=not_an_input"])
    err = capsys.readouterr().err
    assert code == 1
    assert "input 'not_an_input' is not in the model" in err and "features, extra" in err
    assert not base.exists()


def test_missing_and_misnamed_keras_files_are_refused(tmp_path, capsys):
    base = tmp_path / "m"
    assert main(["from-keras", str(tmp_path / "gone.keras"), "-o", str(base)]) == 1
    assert "gone.keras does not exist" in capsys.readouterr().err
    wrong = tmp_path / "weights.bin"
    wrong.write_bytes(b"\x00" * 16)
    assert main(["from-keras", str(wrong), "-o", str(base)]) == 1
    err = capsys.readouterr().err
    assert "is not a Keras model file" in err and ".keras, .h5, .hdf5" in err
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 truncated zip")
    assert main(["from-keras", str(broken), "-o", str(base)]) == 1
    assert "Keras cannot load" in capsys.readouterr().err
    assert tree(base) == []
