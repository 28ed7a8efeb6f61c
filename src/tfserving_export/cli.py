"""Command line entry point (filled in by the model export work)."""


def main() -> int:
    raise SystemExit("tfserving-export: not implemented yet")
