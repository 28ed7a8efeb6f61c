"""tfserving-export: turn frozen graphs, Keras and ONNX models into servable SavedModels.

Exit status: 0 success (or a valid model), 1 an error or an invalid model, 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from tfserving_export import __version__
from tfserving_export.errors import ExportError

EPILOG = """\
examples:
  tfserving-export from-graphdef frozen.pb --base-path /srv/models/resnet \\
      --input image=input_tensor:0 --output scores=softmax_tensor:0
  tfserving-export from-keras model.keras --base-path /srv/models/churn --version 7
  tfserving-export from-onnx model.onnx --base-path /srv/models/bert --input tokens=input_ids
  tfserving-export from-keras model.keras --base-path /srv/models/churn --warmup-requests samples.json
  tfserving-export warmup /srv/build/churn/7 --requests samples.json
  tfserving-export inspect /srv/models/resnet/3 --json
  tfserving-export validate /srv/models/resnet
"""


def _add_export_arguments(parser: argparse.ArgumentParser, *, mapping_required: bool) -> None:
    parser.add_argument("source", type=pathlib.Path, help="the model file to convert")
    parser.add_argument("--base-path", "-o", type=pathlib.Path, required=True,
                        help="the model's directory in the repository (TF Serving's base_path); "
                             "the export becomes a numbered version directory inside it")
    parser.add_argument("--version", type=int, default=None,
                        help="version number to write (default: the next free one, or nothing when the "
                             "latest version already holds this export)")
    parser.add_argument("--signature-name", default="serving_default",
                        help="signature key clients address (default: %(default)s)")
    kind = "tensor in the graph, e.g. image=input:0" if mapping_required else "name in the model"
    parser.add_argument("--input", "-i", action="append", default=[], metavar="NAME=SOURCE",
                        required=mapping_required,
                        help=f"signature input NAME fed to SOURCE ({kind}); repeat per input")
    parser.add_argument("--output", "-O", action="append", default=[], metavar="NAME=SOURCE",
                        required=mapping_required,
                        help="signature output NAME fetched from SOURCE; repeat per output")
    parser.add_argument("--warmup-requests", type=pathlib.Path, default=None, metavar="SAMPLES.json",
                        help="also write assets.extra/tf_serving_warmup_requests from these sample inputs "
                             "(TF Serving REST predict bodies: one, or a list), replayed by TF Serving at load")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip comparing the export's predictions with the source model's")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfserving-export",
        description="Turn frozen graphs, Keras and ONNX models into SavedModels that TensorFlow Serving "
                    "loads, written atomically as a numbered version of a model; inspect and validate "
                    "SavedModels.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version-info", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    graphdef = sub.add_parser("from-graphdef", help="frozen TensorFlow graph (.pb/.pbtxt) -> SavedModel",
                              description="Wrap a frozen GraphDef into a SavedModel with the 'serve' tag "
                                          "and a predict signature with the names given.")
    _add_export_arguments(graphdef, mapping_required=True)

    keras = sub.add_parser("from-keras", help="Keras model (.keras/.h5) -> SavedModel",
                           description="Export a Keras model; inputs and outputs keep their Keras names "
                                       "unless renamed with --input/--output NEW=KERAS_NAME.")
    _add_export_arguments(keras, mapping_required=False)

    onnx = sub.add_parser("from-onnx", help="ONNX model (e.g. from PyTorch) -> SavedModel (extra 'onnx')",
                          description="Convert an ONNX model through onnx2tf; names default to the ONNX "
                                      "graph's input and output names.")
    _add_export_arguments(onnx, mapping_required=False)
    onnx.add_argument("--channels-last", action="store_true",
                      help="let onnx2tf transpose 3-5D inputs to channels-last (NHWC); default keeps the "
                           "ONNX layout so clients send what the PyTorch model took")

    inspect = sub.add_parser("inspect", help="signatures, inputs, outputs, dtypes and shapes of a SavedModel",
                             description="Show what TF Serving will expose; a model base path shows its "
                                         "latest version.")
    inspect.add_argument("path", type=pathlib.Path, help="a version directory or a model base path")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")

    warm = sub.add_parser("warmup", help="write a SavedModel's warm-up requests from sample inputs (extra 'warmup')",
                          description="Write assets.extra/tf_serving_warmup_requests (TFRecord of PredictionLog, "
                                      "as TF Serving reads it at load) into a version directory from sample "
                                      "inputs in TF Serving's REST predict format, then read the records back "
                                      "and run each on the model. Use it before the version is published: "
                                      "TF Serving reads the file only when it loads the version.")
    warm.add_argument("path", type=pathlib.Path, help="a SavedModel version directory")
    warm.add_argument("--requests", "-r", type=pathlib.Path, required=True, metavar="SAMPLES.json",
                      help='JSON: {"instances": [...]} or {"inputs": ...} (optionally "signature_name"), or a '
                           "list of such bodies, one warm-up record each (at most 1000)")
    warm.add_argument("--model-name", default="", help="model name recorded in each request (TF Serving ignores it)")
    warm.add_argument("--signature-name", default="serving_default",
                      help="signature of samples that name none (default: %(default)s)")
    warm.add_argument("--json", action="store_true", help="print the result as JSON")

    validate = sub.add_parser("validate", help="check a SavedModel the way TF Serving loads it",
                              description="Checks: saved_model.pb parses, a MetaGraph has exactly the "
                                          "tag set, the signature exists, its tensors exist, variables "
                                          "are present, TensorFlow's session loader loads it. A base path "
                                          "checks every numeric version.")
    validate.add_argument("path", type=pathlib.Path, help="a version directory or a model base path")
    validate.add_argument("--signature-name", default=None,
                          help="signature that must exist (default: warn when serving_default is missing)")
    validate.add_argument("--tags", default="serve",
                          help="comma-separated tag set, as TF Serving's --saved_model_tags (default: serve)")
    validate.add_argument("--run", action="store_true",
                          help="also run the signature once on zero-filled inputs")
    validate.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _print_export(result: dict) -> None:
    print(result["msg"])
    signature = result.get("signature")
    if signature:
        print(f"signature {signature['name']!r}:")
        for kind in ("inputs", "outputs"):
            for name, info in signature[kind].items():
                print(f"  {kind[:-1]} {name}: {info['dtype']} {info['shape']}")
    verification = result.get("verification")
    if verification:
        print(("verified: " if verification["verified"] else "not verified: ") + verification["detail"])
    if result.get("warmup"):
        print(f"warm-up: {result['warmup']['records']} record(s) in {result['warmup']['path']}")


def _run(args: argparse.Namespace) -> int:
    if args.command.startswith("from-"):
        from tfserving_export import api

        request = api.ExportRequest(
            format=args.command.removeprefix("from-"),
            source=args.source,
            base_path=args.base_path,
            version=args.version,
            signature_name=args.signature_name,
            inputs=api.parse_mapping(args.input, "input"),
            outputs=api.parse_mapping(args.output, "output"),
            channels_last=getattr(args, "channels_last", False),
            verify=not args.no_verify,
            warmup_requests=args.warmup_requests,
        )
        result = api.export(request)
        if args.json:
            print(json.dumps(result, indent=2, sort_keys=True))
        else:
            _print_export(result)
        return 0

    if args.command == "warmup":
        from tfserving_export import warmup

        result = warmup.write(args.path, warmup.load_samples(args.requests), model_name=args.model_name,
                              signature_name=args.signature_name)
        print(json.dumps(result, indent=2, sort_keys=True) if args.json else result["msg"])
        return 0

    from tfserving_export import savedmodel

    if args.command == "inspect":
        report = savedmodel.inspect_savedmodel(args.path)
        print(json.dumps(report, indent=2, sort_keys=True) if args.json else savedmodel.format_inspection(report))
        return 0

    tags = tuple(t.strip() for t in args.tags.split(",") if t.strip())
    result = savedmodel.validate_path(args.path, tags=tags, signature_name=args.signature_name, run=args.run)
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else savedmodel.format_validation(result))
    return 0 if result["valid"] else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (ExportError, OSError) as exc:
        message = str(exc) if isinstance(exc, ExportError) else (
            f"file system error: {exc}: expected readable sources and a writable base path. "
            "Fix: check the path, its permissions and the free space; nothing was published")
        if getattr(args, "json", False):
            print(json.dumps({"failed": True, "msg": message}, indent=2))
        print(f"tfserving-export: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tfserving-export: interrupted; nothing was published", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
