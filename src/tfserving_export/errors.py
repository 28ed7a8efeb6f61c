"""The one error type of tfserving-export: a message that says what was expected and what to do."""


class ExportError(Exception):
    """A conversion, inspection or validation failed for a reason the user can fix.

    ``str(error)`` reads "<what went wrong>: expected <...>, found <...>. Fix: <...>" so the CLI and
    the Ansible module can print it as is.
    """

    def __init__(self, problem: str, *, expected: str = "", found: str = "", fix: str = ""):
        self.problem = problem
        self.expected = expected
        self.found = found
        self.fix = fix
        parts = [problem]
        if expected or found:
            detail = ", ".join(
                p for p in (f"expected {expected}" if expected else "", f"found {found}" if found else "") if p
            )
            parts[0] = f"{problem}: {detail}"
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(". ".join(parts))


class MissingDependency(ExportError):
    """An optional Python package (TensorFlow, onnx2tf) is not installed."""

    def __init__(self, package: str, extra: str, reason: str):
        self.package = package
        self.extra = extra
        super().__init__(
            f"{reason} needs the Python package '{package}', which is not installed",
            fix=f"pip install 'tfserving-ansible[{extra}]' in the Python environment that runs tfserving-export",
        )
