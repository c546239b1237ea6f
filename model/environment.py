"""The environment lock: the Python and library versions a model was trained with.

Training writes it beside the model; `models.diabetes.score.init()` refuses a model whose lock disagrees with
the running environment (MLOpsPython's users lost deployments to an unpinned scikit-learn, its issue 127).
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

# The libraries whose versions decide whether a pickled model loads and predicts the same.
LOCKED_LIBRARIES: tuple[str, ...] = ("scikit-learn", "numpy", "scipy", "joblib", "pandas")


def capture() -> dict[str, Any]:
    """Return `{"python": "3.11.7", "libraries": {name: version}}` for the running interpreter."""
    return {
        "python": platform.python_version(),
        "libraries": {name: metadata.version(name) for name in LOCKED_LIBRARIES},
    }
