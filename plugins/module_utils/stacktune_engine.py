"""Load the plan engine that ships in this collection (its ``stacktune/`` directory).

Controller side only: the action and filter plugins import this module before they
import ``stacktune``, so the engine they run is the one from the same collection as
the roles and templates, with no clone and no pip package. A copy of the package
already imported in this process (or none shipped beside the plugins) is left alone.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# plugins/module_utils/ -> the collection's root, where stacktune/ is.
ENGINE_DIR = Path(__file__).resolve().parents[2] / "stacktune"


def load_engine() -> None:
    if "stacktune" in sys.modules or not (ENGINE_DIR / "__init__.py").is_file():
        return
    spec = importlib.util.spec_from_file_location(
        "stacktune", ENGINE_DIR / "__init__.py", submodule_search_locations=[str(ENGINE_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["stacktune"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["stacktune"]
        raise


load_engine()
