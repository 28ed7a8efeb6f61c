"""Entry point: `python -m tfserving_double [tensorflow_model_server flags]` (a TF Serving TEST DOUBLE)."""

import sys

from .server import main

sys.exit(main())
