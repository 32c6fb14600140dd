"""Shared test set-up: quiet TensorFlow, tiny deterministic inputs."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
