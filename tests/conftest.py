"""The test session: where TensorFlow is not installed (the ``backend`` tests run
under JAX and PyTorch too), test modules that import it at the top are not collected."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

_IMPORTS_TF = re.compile(r"^(import tensorflow|from tensorflow)", re.MULTILINE)

collect_ignore: list[str] = []
if importlib.util.find_spec("tensorflow") is None:
    here = Path(__file__).parent
    collect_ignore = sorted(str(p.relative_to(here)) for p in here.rglob("test_*.py")
                            if _IMPORTS_TF.search(p.read_text(encoding="utf-8")))
