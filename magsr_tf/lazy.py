"""Lazy re-exports for package ``__init__`` files (PEP 562).

A subpackage re-exports its public names for users (``from magsr_tf.physics
import TypeI``) without importing its modules up front: importing one module of
a subpackage never loads its siblings, so ``physics`` stays free of numba until
a sweep runs, and nothing loads TensorFlow before a function needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package that re-exports ``name -> module``.

    Args:
        package: the package's ``__name__`` (for error messages).
        exports: public name -> the module that defines it.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
