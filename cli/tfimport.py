"""Import TensorFlow without its start-up chatter on the terminal.

TF 2.21 writes oneDNN/CUDA notices straight to file descriptor 2 before its
logging is initialized, ignoring ``TF_CPP_MIN_LOG_LEVEL``. The CLI imports it
through :func:`import_tensorflow_quietly` so that users see progress bars and
results, not driver probes. Python exceptions still surface (stderr is
restored before they propagate).
"""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly():
    """Imports TensorFlow and initializes its devices with stderr silenced; returns ``tf``."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_logical_devices()  # the CUDA probe logs here
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf
