"""The TF Serving test double's JSON layer: rapidjson parsing and writing, TF Serving's request rules and
messages, and protobuf's JSON printer, without a server or TensorFlow."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tfserving_double import jsonio
from tfserving_double.errors import Code, TFError

# tensorflow-serving-api's status and example protos import TensorFlow.
pytestmark = pytest.mark.tensorflow


def parse_error(body: bytes) -> str:
    with pytest.raises(TFError) as caught:
        jsonio.parse_json(body)
    assert caught.value.code == Code.INVALID_ARGUMENT
    return caught.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"   ", "JSON Parse error: The document is empty. at offset: 3"),
        (
            b'{"a": 1} x',
            "JSON Parse error: The document root must not be followed by other values. at offset: 9",
        ),
        (b"{a: 1}", "JSON Parse error: Missing a name for object member. at offset: 1"),
        (b'{"a" 1}', "JSON Parse error: Missing a colon after a name of object member. at offset: 5"),
        (b'{"a": 1 "b": 2}', "JSON Parse error: Missing a comma or '}' after an object member. at offset: 8"),
        (b"[1 2]", "JSON Parse error: Missing a comma or ']' after an array element. at offset: 3"),
        (b"[1,]", "JSON Parse error: Invalid value. at offset: 3"),
        (b"tru", "JSON Parse error: Invalid value. at offset: 3"),
        (b"1.", "JSON Parse error: Missing fraction part in number. at offset: 2"),
        (b"1e", "JSON Parse error: Missing exponent in number. at offset: 2"),
        (b'"abc', "JSON Parse error: Missing a closing quotation mark in string. at offset: 4"),
        (b'"\\x"', "JSON Parse error: Invalid escape character in string. at offset: 1"),
        (b'"\\u12G4"', "JSON Parse error: Incorrect hex digit after \\u escape in string. at offset: 1"),
        (b'"a\x01"', "JSON Parse error: Invalid encoding in string. at offset: 2"),
        (b"1e999", "JSON Parse error: Number too big to be stored in double. at offset: 0"),
    ],
)
def test_parser_errors_are_rapidjsons(body, message):
    assert parse_error(body) == message


def test_parser_values_and_number_types():
    doc = jsonio.parse_json(
        b'{"i": 3, "d": 3.0, "e": 1e2, "big": 18446744073709551616, "s": "\\u00e9\\ud83d\\ude00",'
        b' "n": null, "t": true, "nan": NaN, "inf": -Infinity, "dup": 1, "dup": 2}'
    )
    values = dict(doc.members[:-1])
    assert values["i"] == 3 and isinstance(values["i"], int)
    assert values["d"] == 3.0 and isinstance(values["d"], float)
    assert isinstance(values["e"], float)
    assert isinstance(values["big"], float)  # beyond uint64: a double, as in rapidjson
    assert values["s"] == "é😀"
    assert values["n"] is None and values["t"] is True
    assert math.isnan(values["nan"]) and values["inf"] == -math.inf
    assert doc.find("dup") == (True, 1)  # FindMember: the first one


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (0.1, "0.1"),
        (-2.5, "-2.5"),
        (1e21, "1e21"),
        (1e20, "100000000000000000000.0"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (123456.789, "123456.789"),
        (0.0, "0.0"),
    ],
)
def test_rapidjson_double_formatting(value, text):
    assert jsonio.rapidjson_double(value) == text


@pytest.mark.parametrize(
    ("value", "float32", "text"),
    [
        (2.5, True, "2.5"),
        (3.0, True, "3.0"),
        (0.1, True, "0.1"),
        (1e6, True, "1e+06"),
        (123456.7, True, "123456.703"),
        (1 / 3, False, "0.33333333333333331"),
        (math.nan, True, "NaN"),
        (-math.inf, True, "-Infinity"),
        (42, True, "42.0"),
    ],
)
def test_write_decimal_is_json_tensors(value, float32, text):
    assert jsonio.write_decimal(np.float32(value) if float32 else value, float32) == text


def test_pretty_writer_single_line_arrays_quirk():
    outputs = {"y": np.array([2.5, 3.0, 4.5], dtype=np.float32)}
    assert jsonio.make_json_from_tensors(outputs, "row") == '{\n    "predictions": [2.5, 3.0, 4.5\n    ]\n}'
    assert jsonio.make_json_from_tensors(outputs, "columnar") == (
        '{\n    "outputs": [\n        2.5,\n        3.0,\n        4.5\n    ]\n}'
    )
    nested = {"y": np.array([[1, 2], [3, 4]], dtype=np.int64)}
    assert jsonio.make_json_from_tensors(nested, "row") == '{\n    "predictions": [[1, 2], [3, 4]\n    ]\n}'


def test_multiple_outputs_keep_their_names_and_bytes_become_b64():
    outputs = {
        "a": np.array([1, 2], dtype=np.int32),
        "img_bytes": np.array([b"\x00\xff", b"ok"], dtype=object),
    }
    parsed = json.loads(jsonio.make_json_from_tensors(outputs, "row"))
    assert parsed == {
        "predictions": [{"a": 1, "img_bytes": {"b64": "AP8="}}, {"a": 2, "img_bytes": {"b64": "b2s="}}]
    }
    parsed = json.loads(jsonio.make_json_from_tensors(outputs, "columnar"))
    assert parsed == {"outputs": {"a": [1, 2], "img_bytes": [{"b64": "AP8="}, {"b64": "b2s="}]}}


def test_row_format_needs_one_batch_size():
    with pytest.raises(TFError) as caught:
        jsonio.make_json_from_tensors({"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)}, "row")
    assert caught.value.message == "Tensor name: b has inconsistent batch size: 3 expecting: 2"
    with pytest.raises(TFError) as caught:
        jsonio.make_json_from_tensors({"a": np.float32(1.0)}, "row")
    assert caught.value.message == "Tensor name: a has no shape information "


def _predict(body, tensorinfo):
    return jsonio.parse_predict_request(json.dumps(body).encode(), lambda _sig: tensorinfo)


def test_predict_request_rows_objects_and_columns():
    sig, tensors, fmt = _predict({"instances": [[1.0, 2.0], [3.0, 4.0]]}, {"x": jsonio.DT_FLOAT})
    assert (sig, fmt) == ("", "row")
    assert tensors["x"].dtype == np.float32 and tensors["x"].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    sig, tensors, fmt = _predict(
        {"signature_name": "s", "instances": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]},
        {"a": jsonio.DT_INT64, "b": jsonio.DT_STRING},
    )
    assert (sig, fmt) == ("s", "row")
    assert tensors["a"].tolist() == [1, 2] and tensors["b"].tolist() == [b"x", b"y"]
    _sig, tensors, fmt = _predict(
        {"inputs": {"a": [[1, 2]], "b": {"b64": "aGk="}}}, {"a": jsonio.DT_INT32, "b": jsonio.DT_STRING}
    )
    assert fmt == "columnar" and tensors["a"].shape == (1, 2) and tensors["b"].tolist() == b"hi"


@pytest.mark.parametrize(
    ("body", "tensorinfo", "message"),
    [
        (
            {"instances": [1.5]},
            {"x": jsonio.DT_INT32},
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: 1.5 "
            "Type: Number "
            "is not of expected type: int32",
        ),
        (
            {"instances": [16777217]},
            {"x": jsonio.DT_FLOAT},
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: Cannot convert JSON "
            "value: "
            "16777217 to float without loss of precision.",
        ),
        (
            {"instances": [[1.0], [[2.0]]]},
            {"x": jsonio.DT_FLOAT},
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting shape [1] "
            "but got: "
            "[1,1]",
        ),
        (
            {"instances": [[1.0, 2.0], [3.0]]},
            {"x": jsonio.DT_FLOAT},
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor "
            "size: 2 but "
            "got: 1",
        ),
        (
            {"instances": [[[1.0], 2.0]]},
            {"x": jsonio.DT_FLOAT},
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: 2.0 "
            "found at "
            "incorrect level: 2 in the JSON DOM. Expected at level: 2",
        ),
        (
            {"instances": [1.0]},
            {"a": jsonio.DT_FLOAT, "b": jsonio.DT_FLOAT},
            "instances is a plain list, but expecting list of objects as multiple input tensors required as "
            "per "
            "tensorinfo_map",
        ),
        (
            {"instances": [{"a": 1.0}]},
            {"a": jsonio.DT_FLOAT, "b": jsonio.DT_FLOAT},
            "Failed to process element: 0 of 'instances' list. JSON object: {\n    \"a\": 1.0\n} must only "
            "have "
            "keys: a,b",
        ),
        (
            {"instances": [{"a": 1.0}, 2.0]},
            {"a": jsonio.DT_FLOAT},
            "Expecting object but got list at item 1 of input list",
        ),
        (
            {"inputs": {"a": [1.0]}},
            {"a": jsonio.DT_FLOAT, "b": jsonio.DT_FLOAT},
            "Missing named input: b in 'inputs' object.",
        ),
        (
            {"inputs": [1.0]},
            {"a": jsonio.DT_FLOAT, "b": jsonio.DT_FLOAT},
            "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
            "tensorinfo_map",
        ),
        (
            {"instances": 1.0},
            {"x": jsonio.DT_FLOAT},
            "JSON Value: {\n    \"instances\": 1.0\n} Excepting 'instances' to be an list/array",
        ),
        ({"inputs": {"b64": "!!"}}, {"x": jsonio.DT_STRING}, "Unable to base64 decode"),
        ({"inputs": [1]}, {"x": jsonio.DT_HALF}, "Conversion of JSON Value: 1 to type: half"),
        ({"instances": [1.0]}, {}, "Failed to get input map for signature: DEFAULT"),
    ],
)
def test_predict_request_errors(body, tensorinfo, message):
    with pytest.raises(TFError) as caught:
        _predict(body, tensorinfo)
    assert caught.value.message == message


def test_classify_regress_examples_features_and_context():
    from tensorflow.core.example import example_pb2

    body = {
        "context": {"c": "ctx"},
        "examples": [{"x": 1.5, "n": [1, 2], "flag": True, "raw": {"b64": "aGk="}}],
    }
    sig, serialized = jsonio.parse_classify_regress_request(json.dumps(body).encode(), example_pb2.Example)
    assert sig == ""
    example = example_pb2.Example.FromString(serialized[0])
    features = example.features.feature
    assert list(features["x"].float_list.value) == [1.5]
    assert list(features["n"].int64_list.value) == [1, 2]
    assert list(features["flag"].int64_list.value) == [1]
    assert list(features["raw"].bytes_list.value) == [b"hi"]
    assert list(features["c"].bytes_list.value) == [b"ctx"]
    with pytest.raises(TFError) as caught:
        jsonio.parse_classify_regress_request(b'{"examples": [{"x": [1, 2.5]}]}', example_pb2.Example)
    assert caught.value.message == "Unexpected element type in feature: x expecting type: int64"
    with pytest.raises(TFError) as caught:
        jsonio.parse_classify_regress_request(b'{"examples": [{"x": null}]}', example_pb2.Example)
    assert caught.value.message == "Feature: x has element with unexpected JSON type: Null"
    with pytest.raises(TFError) as caught:
        jsonio.parse_classify_regress_request(b'{"examples": []}', example_pb2.Example)
    assert caught.value.message == "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array"


def test_classification_and_regression_bodies():
    assert jsonio.make_json_from_regression([42.0, 3.5]) == '{\n    "results": [42.0, 3.5]\n}'
    assert jsonio.make_json_from_classification([[(b"a", 0.25), (b"b", 0.75)], [(b"", 1.0)]]) == (
        '{\n    "results": [[["a", 0.25], ["b", 0.75]], [["", 1.0]]\n    ]\n}'
    )


def test_error_body_is_pretty_and_escaped():
    assert jsonio.error_body('bad "x"\n') == '{\n    "error": "bad \\"x\\"\\n"\n}'


def test_status_json_prints_defaults_in_declaration_order():
    response = get_model_status_pb2.GetModelStatusResponse()
    entry = response.model_version_status.add(version=2, state=30)
    entry.status.SetInParent()
    failed = response.model_version_status.add(version=1, state=50)
    failed.status.error_code = 5
    failed.status.error_message = 'no "model"'
    assert jsonio.status_to_json(response) == (
        '{\n "model_version_status": [\n  {\n   "version": "2",\n   "state": "AVAILABLE",\n   "status": {\n'
        '    "error_code": "OK",\n    "error_message": ""\n   '
        '}\n  },\n  {\n   "version": "1",\n   "state": "END",\n'
        '   "status": {\n    "error_code": "NOT_FOUND",\n    "error_message": "no \\"model\\""\n   }\n  '
        "}\n ]\n}\n"
    )


def test_metadata_json_puts_oneof_members_last():
    from tensorflow_serving.apis import get_model_metadata_pb2

    spec = model_pb2.ModelSpec(name="m")
    spec.version.value = 7
    signatures = get_model_metadata_pb2.SignatureDefMap()
    info = signatures.signature_def["serving_default"].inputs["x"]
    info.name = "x:0"
    info.dtype = 1
    info.tensor_shape.dim.add(size=-1)
    text = jsonio.metadata_to_json(spec, signatures)
    assert text.startswith(
        '{\n"model_spec":{\n "name": "m",\n "signature_name": "",\n "version": "7"\n}\n,\n'
    )
    assert '"dtype": "DT_FLOAT",\n' in text and text.index('"dtype"') < text.index('"name": "x:0"')
    assert json.loads(text)["metadata"]["signature_def"]["signature_def"]["serving_default"]["defaults"] == {}
