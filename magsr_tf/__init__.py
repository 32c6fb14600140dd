"""magsr-tf: unsupervised super-resolution of magnetic spin textures.

Reproduces and extends Lee et al., "Super-resolution of magnetic systems using
deep learning", Sci. Rep. 13, 11526 (2023).
"""

__version__ = "0.1.0"

RATIOS = (4, 8, 16)
"""Super-resolution ratios supported by the paper's architecture."""

from magsr_tf.errors import MagsrError  # noqa: E402  (after the constants it re-exports)

__all__ = ["RATIOS", "MagsrError", "__version__"]
