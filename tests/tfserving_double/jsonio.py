"""TF Serving's REST JSON, byte for byte where it can be.

TF Serving parses and writes REST bodies with rapidjson (`util/json_tensor.cc`) and prints status and
metadata with protobuf's JSON printer (`model_servers/http_rest_api_util.cc`). This module reproduces
both: a rapidjson-compatible parser (its number typing and its error messages and offsets), rapidjson's
PrettyWriter (4-space indent, the single-line array quirk that gives `[2.5, 3.0, 4.5\\n    ]`), the
request-to-tensor rules with their messages, and the protobuf printer's field order and indentation.
Pure Python + numpy + protobuf: no TensorFlow import, so it is unit-testable on its own.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import math

import numpy as np

from .errors import TFError, invalid_argument, unimplemented

# ----------------------------------------------------------------------------------------------------
# TensorFlow data types (tensorflow/core/framework/types.proto) and DataTypeString().

DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 1, 2, 3, 4, 5, 6, 7
DT_COMPLEX64, DT_INT64, DT_BOOL = 8, 9, 10
DT_BFLOAT16, DT_UINT16, DT_COMPLEX128, DT_HALF = 14, 17, 18, 19
DT_UINT32, DT_UINT64 = 22, 23

DTYPE_NAMES = {
    1: "float",
    2: "double",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    7: "string",
    8: "complex64",
    9: "int64",
    10: "bool",
    11: "qint8",
    12: "quint8",
    13: "qint32",
    14: "bfloat16",
    15: "qint16",
    16: "quint16",
    17: "uint16",
    18: "complex128",
    19: "half",
    20: "resource",
    21: "variant",
    22: "uint32",
    23: "uint64",
}

NUMPY_OF_DTYPE = {
    DT_FLOAT: np.float32,
    DT_DOUBLE: np.float64,
    DT_INT32: np.int32,
    DT_UINT8: np.uint8,
    DT_INT16: np.int16,
    DT_INT8: np.int8,
    DT_STRING: object,
    DT_INT64: np.int64,
    DT_BOOL: np.bool_,
    DT_UINT16: np.uint16,
    DT_HALF: np.float16,
    DT_UINT32: np.uint32,
    DT_UINT64: np.uint64,
    DT_COMPLEX64: np.complex64,
    DT_COMPLEX128: np.complex128,
}


def dtype_name(dtype: int) -> str:
    return DTYPE_NAMES.get(dtype, f"unknown dtype enum ({dtype})")


def dtype_of_numpy(array: np.ndarray) -> int:
    kind = array.dtype
    if kind.kind in ("O", "S", "U"):
        return DT_STRING
    for dt, np_type in NUMPY_OF_DTYPE.items():
        if np_type is not object and kind == np.dtype(np_type):
            return dt
    return 0


# ----------------------------------------------------------------------------------------------------
# A rapidjson-compatible parser (kParseNanAndInfFlag, no encoding validation, as TF Serving calls it).


class JObject:
    """A JSON object: members in document order, duplicates kept; lookups find the first (FindMember)."""

    __slots__ = ("members",)

    def __init__(self, members=None):
        self.members = list(members or [])

    def find(self, key):
        for name, value in self.members:
            if name == key:
                return True, value
        return False, None

    def __len__(self):
        return len(self.members)

    def __eq__(self, other):
        return isinstance(other, JObject) and self.members == other.members

    __hash__ = None


class JSONParseError(Exception):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset


_UINT64_MAX = 2**64 - 1
_INT64_MIN = -(2**63)
_WS = b" \n\r\t"


class _Parser:
    def __init__(self, data: bytes):
        self.s = data
        self.n = len(data)
        self.i = 0

    def peek(self) -> int:
        return self.s[self.i] if self.i < self.n else 0

    def consume(self, ch: str) -> bool:
        if self.peek() == ord(ch):
            self.i += 1
            return True
        return False

    def skip_ws(self):
        while self.i < self.n and self.s[self.i] in _WS:
            self.i += 1

    def error(self, message: str, offset: int | None = None):
        raise JSONParseError(message, self.i if offset is None else offset)

    def document(self):
        self.skip_ws()
        if self.peek() == 0:
            self.error("The document is empty.")
        value = self.value()
        self.skip_ws()
        if self.i < self.n:
            self.error("The document root must not be followed by other values.")
        return value

    def value(self):
        c = self.peek()
        if c == ord("n"):
            return self.literal("null", None)
        if c == ord("t"):
            return self.literal("true", True)
        if c == ord("f"):
            return self.literal("false", False)
        if c == ord('"'):
            return self.string()
        if c == ord("{"):
            return self.obj()
        if c == ord("["):
            return self.array()
        return self.number()

    def literal(self, word: str, result):
        self.i += 1
        for ch in word[1:]:
            if not self.consume(ch):
                self.error("Invalid value.")
        return result

    def obj(self):
        self.i += 1
        self.skip_ws()
        members = []
        if self.consume("}"):
            return JObject(members)
        while True:
            if self.peek() != ord('"'):
                self.error("Missing a name for object member.")
            name = self.string()
            self.skip_ws()
            if not self.consume(":"):
                self.error("Missing a colon after a name of object member.")
            self.skip_ws()
            members.append((name, self.value()))
            self.skip_ws()
            if self.consume(","):
                self.skip_ws()
                continue
            if self.consume("}"):
                return JObject(members)
            self.error("Missing a comma or '}' after an object member.")

    def array(self):
        self.i += 1
        self.skip_ws()
        items = []
        if self.consume("]"):
            return items
        while True:
            items.append(self.value())
            self.skip_ws()
            if self.consume(","):
                self.skip_ws()
                continue
            if self.consume("]"):
                return items
            self.error("Missing a comma or ']' after an array element.")

    def hex4(self, escape_offset: int) -> int:
        chunk = self.s[self.i : self.i + 4]
        if len(chunk) < 4 or any(ch not in b"0123456789abcdefABCDEF" for ch in chunk):
            self.error("Incorrect hex digit after \\u escape in string.", escape_offset)
        self.i += 4
        return int(chunk, 16)

    def string(self) -> str:
        self.i += 1
        out = bytearray()
        escapes = {
            ord('"'): b'"',
            ord("\\"): b"\\",
            ord("/"): b"/",
            ord("b"): b"\b",
            ord("f"): b"\f",
            ord("n"): b"\n",
            ord("r"): b"\r",
            ord("t"): b"\t",
        }
        while True:
            c = self.peek()
            if c == ord("\\"):
                escape_offset = self.i
                self.i += 1
                e = self.peek()
                if e in escapes:
                    self.i += 1
                    out += escapes[e]
                elif e == ord("u"):
                    self.i += 1
                    code = self.hex4(escape_offset)
                    if 0xD800 <= code <= 0xDBFF:
                        if not (self.consume("\\") and self.consume("u")):
                            self.error("The surrogate pair in string is invalid.", escape_offset)
                        low = self.hex4(escape_offset)
                        if not 0xDC00 <= low <= 0xDFFF:
                            self.error("The surrogate pair in string is invalid.", escape_offset)
                        code = (((code - 0xD800) << 10) | (low - 0xDC00)) + 0x10000
                    out += chr(code).encode("utf-8", errors="surrogatepass")
                else:
                    self.error("Invalid escape character in string.", escape_offset)
            elif c == ord('"'):
                self.i += 1
                return out.decode("utf-8", errors="surrogateescape")
            elif c < 0x20:
                if c == 0:
                    self.error("Missing a closing quotation mark in string.")
                self.error("Invalid encoding in string.")
            else:
                out.append(c)
                self.i += 1

    def number(self):
        start = self.i
        minus = self.consume("-")
        c = self.peek()
        if c == ord("0"):
            self.i += 1
        elif ord("1") <= c <= ord("9"):
            while ord("0") <= self.peek() <= ord("9"):
                self.i += 1
        elif c in (ord("N"), ord("I")):
            if self.consume("N"):
                if self.consume("a") and self.consume("N"):
                    return math.nan
            elif self.consume("I") and self.consume("n") and self.consume("f"):
                if self.peek() == ord("i"):
                    for ch in "inity":
                        if not self.consume(ch):
                            self.error("Invalid value.")
                return -math.inf if minus else math.inf
            self.error("Invalid value.")
        else:
            self.error("Invalid value.")
        is_double = False
        if self.consume("."):
            if not ord("0") <= self.peek() <= ord("9"):
                self.error("Missing fraction part in number.")
            while ord("0") <= self.peek() <= ord("9"):
                self.i += 1
            is_double = True
        if self.peek() in (ord("e"), ord("E")):
            self.i += 1
            if not (self.consume("+") or self.consume("-")):
                pass
            if not ord("0") <= self.peek() <= ord("9"):
                self.error("Missing exponent in number.")
            while ord("0") <= self.peek() <= ord("9"):
                self.i += 1
            is_double = True
        text = self.s[start : self.i].decode("ascii")
        if not is_double:
            value = int(text)
            if _INT64_MIN <= value <= _UINT64_MAX:
                return value
        result = float(text)
        if math.isinf(result):
            self.error("Number too big to be stored in double.", start)
        return result


def parse_json(body: bytes):
    """json_tensor.cc ParseJson(): the document, or INVALID_ARGUMENT with rapidjson's message."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        return _Parser(body).document()
    except JSONParseError as err:
        raise invalid_argument("JSON Parse error: ", err.message, " at offset: ", err.offset) from None


# rapidjson Value type predicates over the parsed Python values.
def is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float)


def is_double(v) -> bool:
    return isinstance(v, float)


def is_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and -(2**31) <= v <= 2**31 - 1


def is_uint(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and 0 <= v <= 2**32 - 1


def is_int64(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and _INT64_MIN <= v <= 2**63 - 1


def is_uint64(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, int) and 0 <= v <= _UINT64_MAX


def json_type_string(v) -> str:
    if v is None:
        return "Null"
    if v is False:
        return "False"
    if v is True:
        return "True"
    if isinstance(v, JObject):
        return "Object"
    if isinstance(v, list):
        return "Array"
    if isinstance(v, str):
        return "String"
    return "Number"


# ----------------------------------------------------------------------------------------------------
# Number formatting: rapidjson's Writer::Double (Grisu2 + Prettify) and json_tensor's WriteDecimal.


def _shortest_digits(value: float):
    """Shortest round-trip digits and decimal exponent: value == int(digits) * 10**exp."""
    sign, digits, exponent = decimal.Decimal(repr(value)).as_tuple()
    text = "".join(str(d) for d in digits).lstrip("0") or "0"
    stripped = text.rstrip("0")
    exponent += len(text) - len(stripped)
    return sign, stripped or "0", exponent


def rapidjson_double(value: float) -> str:
    """rapidjson Writer::Double (maxDecimalPlaces = 324)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign, digits, k = _shortest_digits(value)
    prefix = "-" if sign else ""
    length = len(digits)
    kk = length + k
    if 0 <= k and kk <= 21:
        body = digits + "0" * (kk - length) + ".0"
    elif 0 < kk <= 21:
        body = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        body = "0." + "0" * (-kk) + digits
    elif kk < -324:
        body = "0.0"
    elif length == 1:
        body = digits + "e" + str(kk - 1)
    else:
        body = digits[0] + "." + digits[1:] + "e" + str(kk - 1)
    return prefix + body


def write_decimal(value, is_float32: bool = True) -> str:
    """json_tensor.cc WriteDecimal(): %g with six digits, full precision if that does not round-trip,
    and '.0' appended to whole numbers not in scientific notation."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    if is_float32:
        roundtrip = np.float32(float(text)) == np.float32(value)
        if not roundtrip:
            text = f"{value:.9g}"
    elif float(text) != value:
        text = f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


# ----------------------------------------------------------------------------------------------------
# rapidjson's PrettyWriter.


def _escape_rapidjson(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20:
            short = {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(code)
            out.append(short or f"\\u{code:04X}")
        else:
            out.append(ch)
    return "".join(out)


class PrettyWriter:
    """rapidjson::PrettyWriter<StringBuffer> with its default 4-space indent."""

    def __init__(self):
        self.parts: list[str] = []
        self.stack: list[list] = []  # [in_array, value_count]
        self.single_line_array = False

    def set_single_line_array(self, enabled: bool):
        self.single_line_array = enabled

    def _indent(self):
        self.parts.append(" " * (4 * len(self.stack)))

    def _prefix(self):
        if not self.stack:
            return
        level = self.stack[-1]
        if level[0]:
            if level[1] > 0:
                self.parts.append(",")
                if self.single_line_array:
                    self.parts.append(" ")
            if not self.single_line_array:
                self.parts.append("\n")
                self._indent()
        else:
            if level[1] > 0:
                self.parts.append(",\n" if level[1] % 2 == 0 else ": ")
            else:
                self.parts.append("\n")
            if level[1] % 2 == 0:
                self._indent()
        level[1] += 1

    def start_object(self):
        self._prefix()
        self.parts.append("{")
        self.stack.append([False, 0])

    def end_object(self):
        level = self.stack.pop()
        if level[1] > 0:
            self.parts.append("\n")
            self._indent()
        self.parts.append("}")

    def start_array(self):
        self._prefix()
        self.parts.append("[")
        self.stack.append([True, 0])

    def end_array(self):
        level = self.stack.pop()
        if level[1] > 0 and not self.single_line_array:
            self.parts.append("\n")
            self._indent()
        self.parts.append("]")

    def key(self, name: str):
        self.string(name)

    def string(self, text: str):
        self._prefix()
        self.parts.append('"' + _escape_rapidjson(text) + '"')

    def raw_number(self, text: str):
        self._prefix()
        self.parts.append(text)

    def boolean(self, value: bool):
        self.raw_number("true" if value else "false")

    def null(self):
        self.raw_number("null")

    def value(self, v):
        """Value::Accept(writer): write a parsed document as rapidjson would."""
        if v is None:
            self.null()
        elif isinstance(v, bool):
            self.boolean(v)
        elif isinstance(v, int):
            self.raw_number(str(v))
        elif isinstance(v, float):
            self.raw_number(rapidjson_double(v))
        elif isinstance(v, str):
            self.string(v)
        elif isinstance(v, JObject):
            self.start_object()
            for name, item in v.members:
                self.key(name)
                self.value(item)
            self.end_object()
        else:
            self.start_array()
            for item in v:
                self.value(item)
            self.end_array()

    def getvalue(self) -> str:
        return "".join(self.parts)


def json_value_to_string(v) -> str:
    """json_tensor.cc JsonValueToString(): for error messages."""
    if isinstance(v, float):
        if -3.4028234e38 <= v <= 3.4028234e38:
            return write_decimal(np.float32(v), True)
        return write_decimal(v, False)
    writer = PrettyWriter()
    writer.value(v)
    return writer.getvalue()


def error_body(message: str) -> str:
    """json_tensor.cc MakeJsonFromStatus(): {"error": "<message>"} through the PrettyWriter."""
    writer = PrettyWriter()
    writer.start_object()
    writer.key("error")
    writer.string(message)
    writer.end_object()
    return writer.getvalue()


# ----------------------------------------------------------------------------------------------------
# Request JSON -> tensors (json_tensor.cc FillPredictRequestFromJson and friends).


class TensorValues:
    """A dense tensor being filled from JSON: dtype, shape, flat values (TensorProto-like)."""

    def __init__(self, dtype: int):
        self.dtype = dtype
        self.shape: list[int] = []
        self.values: list = []

    def to_numpy(self) -> np.ndarray:
        np_type = NUMPY_OF_DTYPE.get(self.dtype)
        if self.dtype == DT_STRING:
            array = np.empty(len(self.values), dtype=object)
            array[:] = self.values
        elif self.dtype in (DT_INT8, DT_INT16, DT_UINT8, DT_UINT16):
            # int_val holds int32s; Tensor::FromProto truncates them to the narrower type.
            array = np.array(self.values, dtype=np.int64).astype(np_type)
        else:
            array = np.array(self.values, dtype=np_type)
        return array.reshape(self.shape)


def _type_error(val, dtype) -> TFError:
    return invalid_argument(
        "JSON Value: ",
        json_value_to_string(val),
        " Type: ",
        json_type_string(val),
        " is not of expected type: ",
        dtype_name(dtype),
    )


def _format_error(val, *parts) -> TFError:
    return invalid_argument("JSON Value: ", json_value_to_string(val), " ", *parts)


def _lossy_error(val, target) -> TFError:
    return invalid_argument(
        "Cannot convert JSON value: ",
        json_value_to_string(val),
        " to ",
        target,
        " without loss of precision.",
    )


def _is_lossless(val, is_float32: bool) -> bool:
    if not math.isfinite(float(val)):
        return True
    digits = 24 if is_float32 else 53
    max_int = (1 << digits) - 1
    if isinstance(val, int):
        return abs(val) <= max_int
    limit = float(np.finfo(np.float32).max) if is_float32 else float(np.finfo(np.float64).max)
    return -limit <= val <= limit


def _add_value(val, dtype, tensor: TensorValues):
    if dtype == DT_FLOAT or dtype == DT_DOUBLE:
        if not is_number(val):
            raise _type_error(val, dtype)
        if not _is_lossless(val, dtype == DT_FLOAT):
            raise _lossy_error(val, "float" if dtype == DT_FLOAT else "double")
        tensor.values.append(float(val))
    elif dtype in (DT_INT32, DT_INT16, DT_INT8, DT_UINT8):
        if not is_int(val):
            raise _type_error(val, dtype)
        tensor.values.append(val)
    elif dtype == DT_STRING:
        if not isinstance(val, str):
            raise _type_error(val, dtype)
        tensor.values.append(val.encode("utf-8", errors="surrogateescape"))
    elif dtype == DT_INT64:
        if not is_int64(val):
            raise _type_error(val, dtype)
        tensor.values.append(val)
    elif dtype == DT_BOOL:
        if not isinstance(val, bool):
            raise _type_error(val, dtype)
        tensor.values.append(val)
    elif dtype == DT_UINT32:
        if not is_uint(val):
            raise _type_error(val, dtype)
        tensor.values.append(val)
    elif dtype == DT_UINT64:
        if not is_uint64(val):
            raise _type_error(val, dtype)
        tensor.values.append(val)
    else:
        raise unimplemented(
            "Conversion of JSON Value: ", json_value_to_string(val), " to type: ", dtype_name(dtype)
        )


def _dense_shape(val) -> list[int]:
    shape = []
    while isinstance(val, list):
        shape.append(len(val))
        if not val:
            break
        val = val[0]
    return shape


def _is_b64_object(val) -> bool:
    if isinstance(val, JObject) and len(val) == 1:
        found, inner = val.find("b64")
        return found and isinstance(inner, str)
    return False


def _decode_b64_object(val) -> bytes:
    if not _is_b64_object(val):
        raise invalid_argument(
            "JSON Value: ", json_value_to_string(val), " not formatted correctly for base64 data"
        )
    _found, text = val.find("b64")
    try:
        return base64.b64decode(text.encode("utf-8", errors="surrogateescape"), validate=True)
    except (binascii.Error, ValueError):
        # absl::Base64Unescape also accepts unpadded input.
        try:
            padded = text + "=" * (-len(text) % 4)
            return base64.b64decode(padded.encode("utf-8", errors="surrogateescape"), validate=True)
        except (binascii.Error, ValueError):
            raise invalid_argument("Unable to base64 decode") from None


def _fill(val, level: int, dtype: int, tensor: TensorValues) -> int:
    rank = len(tensor.shape)
    if not isinstance(val, list):
        if level != rank:
            raise invalid_argument(
                "JSON Value: ",
                json_value_to_string(val),
                " found at incorrect level: ",
                level + 1,
                " in the JSON DOM. Expected at level: ",
                rank,
            )
        if isinstance(val, JObject):
            if dtype != DT_STRING:
                raise _type_error(val, dtype)
            tensor.values.append(_decode_b64_object(val))
        else:
            _add_value(val, dtype, tensor)
        return 1
    if level >= rank:
        raise invalid_argument("Encountered list at unexpected level: ", level, " expected < ", rank)
    if len(val) != tensor.shape[level]:
        raise invalid_argument(
            "Encountered list at unexpected size: ",
            len(val),
            " at level: ",
            level,
            " expected size: ",
            tensor.shape[level],
        )
    count = 0
    for item in val:
        count += _fill(item, level + 1, dtype, tensor)
    return count


def _shape_to_string(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _fill_instances(instances: list, tensorinfo: dict) -> dict[str, TensorValues]:
    """FillTensorMapFromInstancesList(). tensorinfo: alias -> dtype."""
    if not isinstance(instances[0], JObject) and len(tensorinfo) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )

    def is_element_object(v):
        return isinstance(v, JObject) and not _is_b64_object(v)

    elements_are_objects = is_element_object(instances[0])
    input_names = sorted(tensorinfo)
    tensors: dict[str, TensorValues] = {}
    sizes: dict[str, int] = {}
    shapes: dict[str, list] = {}

    def add_item(item, name):
        if name not in tensorinfo:
            raise invalid_argument("JSON object: does not have named input: ", name)
        tensor = tensors.setdefault(name, TensorValues(tensorinfo[name]))
        tensor.shape = _dense_shape(item)
        size = _fill(item, 0, tensorinfo[name], tensor)
        if name not in sizes:
            sizes[name] = size
            shapes[name] = list(tensor.shape)
        elif sizes[name] != size:
            raise invalid_argument("Expecting tensor size: ", sizes[name], " but got: ", size)
        elif shapes[name] != tensor.shape:
            raise invalid_argument(
                "Expecting shape ",
                _shape_to_string(shapes[name]),
                " but got: ",
                _shape_to_string(tensor.shape),
            )

    for count, elem in enumerate(instances):
        if elements_are_objects:
            if not is_element_object(elem):
                raise invalid_argument("Expecting object but got list at item ", count, " of input list")
            keys = set()
            for name, item in elem.members:
                keys.add(name)
                try:
                    add_item(item, name)
                except TFError as err:
                    raise invalid_argument(
                        "Failed to process element: ",
                        count,
                        " key: ",
                        name,
                        " of 'instances' list. Error: ",
                        str(err),
                    ) from None
            if keys != set(input_names):
                raise invalid_argument(
                    "Failed to process element: ",
                    count,
                    " of 'instances' list. JSON object: ",
                    json_value_to_string(elem),
                    " must only have keys: ",
                    ",".join(input_names),
                )
        else:
            if is_element_object(elem):
                raise invalid_argument(
                    "Expecting value/list but got object at item ", count, " of input list"
                )
            try:
                add_item(elem, input_names[0])
            except TFError as err:
                raise invalid_argument(
                    "Failed to process element: ", count, " of 'instances' list. Error: ", str(err)
                ) from None
    for name, tensor in tensors.items():
        tensor.shape = [len(instances), *shapes[name]]
    return tensors


def _fill_inputs(val, tensorinfo: dict) -> dict[str, TensorValues]:
    """FillTensorMapFromInputsMap()."""
    tensors: dict[str, TensorValues] = {}
    if not isinstance(val, JObject) or _is_b64_object(val):
        if len(tensorinfo) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        name = next(iter(sorted(tensorinfo)))
        tensor = TensorValues(tensorinfo[name])
        tensor.shape = _dense_shape(val)
        _fill(val, 0, tensor.dtype, tensor)
        tensors[name] = tensor
        return tensors
    for name in sorted(tensorinfo):
        found, item = val.find(name)
        if not found:
            raise invalid_argument("Missing named input: ", name, " in 'inputs' object.")
        tensor = TensorValues(tensorinfo[name])
        tensor.shape = _dense_shape(item)
        _fill(item, 0, tensor.dtype, tensor)
        tensors[name] = tensor
    return tensors


def parse_signature_name(doc) -> str:
    """FillSignature(): the optional signature_name, which must be a string."""
    found, value = doc.find("signature_name")
    if not found:
        return ""
    if not isinstance(value, str):
        raise invalid_argument(
            "JSON Value: ",
            json_value_to_string(doc),
            " not formatted correctly. 'signature_name' key must be a string value.",
        )
    return value


def parse_object_document(body: bytes) -> JObject:
    doc = parse_json(body)
    if not isinstance(doc, JObject):
        raise _format_error(doc, "Is not object")
    return doc


def parse_predict_request(body: bytes, get_tensorinfo):
    """FillPredictRequestFromJson(). get_tensorinfo(signature_name) -> {alias: dtype} (may raise).

    Returns (signature_name, {alias: numpy array}, format) with format "row" or "columnar".
    """
    doc = parse_object_document(body)
    signature_name = parse_signature_name(doc)
    tensorinfo = get_tensorinfo(signature_name)
    if not tensorinfo:
        raise invalid_argument("Failed to get input map for signature: ", signature_name or "DEFAULT")
    has_instances, instances = doc.find("instances")
    has_inputs, inputs = doc.find("inputs")
    if has_instances:
        if has_inputs:
            raise _format_error(
                doc, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
            )
        if not isinstance(instances, list):
            raise _format_error(doc, "Excepting 'instances' to be an list/array")
        if not instances:
            raise _format_error(doc, "No values in 'instances' array")
        tensors = _fill_instances(instances, tensorinfo)
        return signature_name, {k: v.to_numpy() for k, v in tensors.items()}, "row"
    if has_inputs:
        tensors = _fill_inputs(inputs, tensorinfo)
        return signature_name, {k: v.to_numpy() for k, v in tensors.items()}, "columnar"
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# ----------------------------------------------------------------------------------------------------
# Classify / regress request JSON -> tf.Example protos (FillClassifyRegressRequestFromJson).


def _feature_kind(feature) -> str | None:
    return feature.WhichOneof("kind")


def _incompatible_kind(name, feature) -> TFError:
    kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
        _feature_kind(feature), "UNKNOWN"
    )
    return invalid_argument("Unexpected element type in feature: ", name, " expecting type: ", kind)


def _add_value_to_feature(val, name, feature):
    kind = _feature_kind(feature)
    if val is None or isinstance(val, list):
        raise invalid_argument(
            "Feature: ", name, " has element with unexpected JSON type: ", json_type_string(val)
        )
    if isinstance(val, bool):
        if kind not in (None, "int64_list"):
            raise _incompatible_kind(name, feature)
        feature.int64_list.value.append(1 if val else 0)
    elif isinstance(val, JObject):
        if not _is_b64_object(val):
            raise invalid_argument(
                "Feature: ", name, " has element with unexpected JSON type: ", json_type_string(val)
            )
        if kind not in (None, "bytes_list"):
            raise _incompatible_kind(name, feature)
        feature.bytes_list.value.append(_decode_b64_object(val))
    elif isinstance(val, str):
        if kind not in (None, "bytes_list"):
            raise _incompatible_kind(name, feature)
        feature.bytes_list.value.append(val.encode("utf-8", errors="surrogateescape"))
    elif isinstance(val, float):
        if kind not in (None, "float_list"):
            raise _incompatible_kind(name, feature)
        if not _is_lossless(val, True):
            raise _lossy_error(val, "float")
        feature.float_list.value.append(val)
    else:
        if kind not in (None, "int64_list"):
            raise _incompatible_kind(name, feature)
        if not is_int64(val):
            raise invalid_argument("Feature: ", name, " has uint64 element. Only int64 is supported.")
        feature.int64_list.value.append(val)


def _example_from_json(val, example):
    if not isinstance(val, JObject):
        raise invalid_argument("Example must be JSON object but got JSON ", json_type_string(val))
    for name, content in val.members:
        feature = example.features.feature[name]
        feature.Clear()
        if isinstance(content, list):
            for item in content:
                _add_value_to_feature(item, name, feature)
        else:
            _add_value_to_feature(content, name, feature)


def parse_classify_regress_request(body: bytes, example_cls):
    """Returns (signature_name, [serialized tf.Example bytes]) with the context merged into each example."""
    doc = parse_object_document(body)
    signature_name = parse_signature_name(doc)
    context_bytes = b""
    has_context, context = doc.find("context")
    if has_context:
        context_example = example_cls()
        _example_from_json(context, context_example)
        context_bytes = context_example.SerializeToString()
    found, examples = doc.find("examples")
    if not found:
        raise _format_error(doc, "When method is classify, key 'examples' is expected and was not found")
    if not isinstance(examples, list):
        raise _format_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(doc, "'examples' value is an empty array")
    serialized = []
    for item in examples:
        example = example_cls()
        _example_from_json(item, example)
        # ExampleListWithContext: the context is merged under each example, as TF Serving's
        # InputToSerializedExampleTensor does by concatenating the serialized protos.
        serialized.append(context_bytes + example.SerializeToString())
    return signature_name, serialized


# ----------------------------------------------------------------------------------------------------
# Tensors -> response JSON (MakeJsonFromTensors, MakeJsonFromClassificationResult/RegressionResult).


def _write_scalar(writer: PrettyWriter, value, dtype: int, as_bytes: bool):
    if dtype == DT_FLOAT:
        writer.raw_number(write_decimal(value, True))
    elif dtype == DT_DOUBLE:
        writer.raw_number(write_decimal(value, False))
    elif dtype in (DT_INT32, DT_INT16, DT_INT8, DT_UINT8, DT_INT64, DT_UINT32, DT_UINT64):
        writer.raw_number(str(int(value)))
    elif dtype == DT_BOOL:
        writer.boolean(bool(value))
    elif dtype == DT_STRING:
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        if as_bytes:
            writer.start_object()
            writer.key("b64")
            writer.string(base64.b64encode(raw).decode("ascii"))
            writer.end_object()
        else:
            writer.string(raw.decode("utf-8", errors="surrogateescape"))
    else:
        raise invalid_argument("Failed to write JSON value for tensor type: ", dtype_name(dtype))


def _write_values(writer, array: np.ndarray, dtype: int, as_bytes: bool, dim: int, index: tuple):
    if dim > array.ndim - 1:
        _write_scalar(writer, array[index], dtype, as_bytes)
        return
    writer.start_array()
    for i in range(array.shape[dim]):
        _write_values(writer, array, dtype, as_bytes, dim + 1, (*index, i))
    writer.end_array()


def _is_named_bytes(name: str, dtype: int) -> bool:
    return dtype == DT_STRING and name.endswith("_bytes")


def make_json_from_tensors(outputs: dict[str, np.ndarray], fmt: str) -> str:
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    writer = PrettyWriter()
    many = len(names) > 1
    if fmt == "row":
        batch_size = 0
        for name in names:
            array = outputs[name]
            if array.ndim == 0:
                raise invalid_argument("Tensor name: ", name, " has no shape information ")
            current = array.shape[0]
            if current < 1:
                raise invalid_argument("Tensor name: ", name, " has invalid batch size: ", current)
            if batch_size not in (0, current):
                raise invalid_argument(
                    "Tensor name: ",
                    name,
                    " has inconsistent batch size: ",
                    current,
                    " expecting: ",
                    batch_size,
                )
            batch_size = current
        writer.start_object()
        writer.key("predictions")
        writer.start_array()
        for item in range(batch_size):
            if many:
                writer.start_object()
            writer.set_single_line_array(True)
            for name in names:
                array = outputs[name]
                dtype = dtype_of_numpy(array)
                if many:
                    writer.key(name)
                _write_values(writer, array, dtype, _is_named_bytes(name, dtype), 1, (item,))
            writer.set_single_line_array(False)
            if many:
                writer.end_object()
        writer.end_array()
        writer.end_object()
        return writer.getvalue()
    writer.start_object()
    writer.key("outputs")
    if many:
        writer.start_object()
    for name in names:
        array = outputs[name]
        dtype = dtype_of_numpy(array)
        if many:
            writer.key(name)
        _write_values(writer, array, dtype, _is_named_bytes(name, dtype), 0, ())
    if many:
        writer.end_object()
    writer.end_object()
    return writer.getvalue()


def make_json_from_classification(classifications: list[list[tuple[str | bytes, float]]]) -> str:
    if not classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    writer = PrettyWriter()
    writer.start_object()
    writer.key("results")
    writer.start_array()
    for classes in classifications:
        writer.set_single_line_array(True)
        writer.start_array()
        for label, score in classes:
            writer.start_array()
            text = label.decode("utf-8", errors="surrogateescape") if isinstance(label, bytes) else label
            writer.string(text)
            writer.raw_number(write_decimal(score, True))
            writer.end_array()
        writer.end_array()
        writer.set_single_line_array(False)
    writer.end_array()
    writer.end_object()
    return writer.getvalue()


def make_json_from_regression(values: list[float]) -> str:
    if not values:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    writer = PrettyWriter()
    writer.start_object()
    writer.key("results")
    writer.set_single_line_array(True)
    writer.start_array()
    for value in values:
        writer.raw_number(write_decimal(value, True))
    writer.end_array()
    writer.end_object()
    return writer.getvalue()


# ----------------------------------------------------------------------------------------------------
# protobuf's JSON printer as TF Serving calls it (add_whitespace, always_print_primitive_fields).


def _escape_proto_json(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            short = {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(code)
            out.append(short or f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


_WRAPPERS = {
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.StringValue",
    "google.protobuf.BoolValue",
    "google.protobuf.FloatValue",
    "google.protobuf.DoubleValue",
    "google.protobuf.BytesValue",
}


def _proto_scalar(field, value) -> str:
    from google.protobuf.descriptor import FieldDescriptor as F

    t = field.type
    if t == F.TYPE_ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return f'"{enum_value.name}"' if enum_value else str(value)
    if t in (F.TYPE_INT64, F.TYPE_UINT64, F.TYPE_SINT64, F.TYPE_FIXED64, F.TYPE_SFIXED64):
        return f'"{value}"'
    if t == F.TYPE_BOOL:
        return "true" if value else "false"
    if t == F.TYPE_STRING:
        return '"' + _escape_proto_json(value) + '"'
    if t == F.TYPE_BYTES:
        return '"' + base64.b64encode(value).decode("ascii") + '"'
    if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
        if math.isnan(value):
            return '"NaN"'
        if math.isinf(value):
            return '"Infinity"' if value > 0 else '"-Infinity"'
        return repr(float(np.float32(value))) if t == F.TYPE_FLOAT else repr(float(value))
    return str(value)


class _ProtoJsonWriter:
    """protobuf's JsonObjectWriter with a one-space indent."""

    def __init__(self, preserve_names: bool):
        self.preserve_names = preserve_names
        self.parts: list[str] = []

    def write(self, text):
        self.parts.append(text)

    def message(self, msg, depth: int):
        desc = msg.DESCRIPTOR
        if desc.full_name in _WRAPPERS:
            self.write(_proto_scalar(desc.fields_by_name["value"], msg.value))
            return
        # The old DefaultValueObjectWriter order: every non-oneof field in declaration order (primitive,
        # repeated and map fields even when empty; messages only when set), then the set oneof members.
        entries = []
        for field in desc.fields:
            if field.containing_oneof is not None:
                continue
            if field.type == field.TYPE_MESSAGE and not field.is_repeated:
                if not msg.HasField(field.name):
                    continue
            entries.append(field)
        for field in desc.fields:
            if field.containing_oneof is not None and msg.HasField(field.name):
                entries.append(field)
        if not entries:
            self.write("{}")
            return
        self.write("{")
        for i, field in enumerate(entries):
            self.write(("," if i else "") + "\n" + " " * (depth + 1))
            name = field.name if self.preserve_names else field.json_name
            self.write(f'"{name}": ')
            self.field_value(msg, field, depth + 1)
        self.write("\n" + " " * depth + "}")

    def field_value(self, msg, field, depth):
        value = getattr(msg, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            key_field = field.message_type.fields_by_name["key"]
            if not len(value):
                self.write("{}")
                return
            self.write("{")
            for i, key in enumerate(value):
                self.write(("," if i else "") + "\n" + " " * (depth + 1))
                key_text = key if key_field.type == key_field.TYPE_STRING else str(key)
                self.write('"' + _escape_proto_json(str(key_text)) + '": ')
                if value_field.type == value_field.TYPE_MESSAGE:
                    self.message(value[key], depth + 1)
                else:
                    self.write(_proto_scalar(value_field, value[key]))
            self.write("\n" + " " * depth + "}")
            return
        if field.is_repeated:
            if not len(value):
                self.write("[]")
                return
            self.write("[")
            for i, item in enumerate(value):
                self.write(("," if i else "") + "\n" + " " * (depth + 1))
                if field.type == field.TYPE_MESSAGE:
                    self.message(item, depth + 1)
                else:
                    self.write(_proto_scalar(field, item))
            self.write("\n" + " " * depth + "]")
            return
        if field.type == field.TYPE_MESSAGE:
            self.message(value, depth)
        else:
            self.write(_proto_scalar(field, value))


def proto_to_json(msg, preserve_names: bool = False) -> str:
    """MessageToJsonString(add_whitespace, always_print_primitive_fields): ends with a newline."""
    writer = _ProtoJsonWriter(preserve_names)
    writer.message(msg, 0)
    return "".join(writer.parts) + "\n"


def metadata_to_json(model_spec, signature_def_map) -> str:
    """http_rest_api_util.cc ToJsonString(GetModelMetadataResponse): two printed protos, concatenated."""
    spec = proto_to_json(model_spec, preserve_names=True)
    sigs = proto_to_json(signature_def_map, preserve_names=True)
    return (
        "{\n" + '"model_spec":' + spec + ",\n" + '"metadata": {' + '"signature_def": ' + sigs + "}\n" + "}\n"
    )


def status_to_json(response) -> str:
    return proto_to_json(response, preserve_names=False)
