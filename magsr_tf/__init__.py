"""magsr-tf: unsupervised super-resolution of magnetic spin textures.

Reproduces and extends Lee et al., "Super-resolution of magnetic systems using
deep learning", Sci. Rep. 13, 11526 (2023).

``import magsr_tf`` is light: TensorFlow is imported only when a function that
needs it runs. The notebook API (docs/api.md)::

    import magsr_tf
    sr = magsr_tf.super_resolve(lr, "typeI_x8")          # [h, w, 3] -> [8h, 8w, 3]
    sr, record = magsr_tf.refine(lr, init="typeI_x8")    # under the Hamiltonian
    model = magsr_tf.load_model("typeI_x8")              # the Keras model

The package's custom Keras layers are registered as soon as Keras is loaded,
so ``keras.saving.load_model(".../model.keras")`` works after ``import magsr_tf``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import sys

__version__ = "0.1.0"

from magsr_tf.errors import MagsrError  # noqa: E402  (after the version: errors is a leaf)
from magsr_tf.lazy import lazy_exports  # noqa: E402

_EXPORTS = {
    "RATIOS": "magsr_tf.ops.kernels",
    **{
        name: "magsr_tf.api"
        for name in ("super_resolve", "refine", "load_model", "generate", "fit", "evaluate")
    },
}
_LAYER_MODULES = ("magsr_tf.nn.layers", "magsr_tf.nn.batchnorm")

__all__ = ["MagsrError", "__version__", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

_log = logging.getLogger(__name__)


def _register_layers() -> None:
    """Imports the modules whose import registers the custom layers with Keras."""
    for module in _LAYER_MODULES:
        try:
            importlib.import_module(module)
        except Exception as exc:  # never break the user's `import keras`
            _log.debug("could not register the magsr-tf layers (%s): %s", module, exc)


class _RegisterOnKerasImport(importlib.abc.MetaPathFinder):
    """Registers the layers right after Keras itself is imported, whoever imports it.

    TensorFlow also *looks up* Keras (``importlib.util.find_spec``) without
    importing it, so the finder stays until the import really runs.
    """

    def __init__(self):
        self._searching = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or self._searching:
            return None
        self._searching = True
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            self._searching = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_keras = spec.loader.exec_module

        def exec_module(module):
            exec_keras(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _register_layers()

        spec.loader.exec_module = exec_module
        return spec


if "keras" in sys.modules:
    _register_layers()
elif not any(isinstance(finder, _RegisterOnKerasImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterOnKerasImport())
