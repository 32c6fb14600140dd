"""The serving core that REST and gRPC share: models, limits and the model call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus

import numpy as np

from magsr_tf.serving.batcher import Batcher
from magsr_tf.serving.gate import Gate
from magsr_tf.serving.protocol import RequestError, ServeConfig
from magsr_tf.serving.repository import ModelRepository, Servable, run_model


class ServingCore:
    """What REST and gRPC share: the models, the limits and the model call.

    Args:
        config: the server's configuration.
    """

    def __init__(self, config: ServeConfig):
        self.config = config
        self.repo = ModelRepository(config.models_root)
        self.gate = Gate(
            config.max_inflight, config.max_concurrent, config.memory_budget, config.queue_timeout
        )
        self._batchers: dict[tuple[str, int], Batcher] = {}
        self._batchers_lock = threading.Lock()

    def batcher(self, servable: Servable) -> Batcher:
        """The :class:`Batcher` of ``servable`` (started on first use)."""
        key = (servable.name, servable.version)
        with self._batchers_lock:
            if key not in self._batchers:
                self._batchers[key] = Batcher(
                    servable,
                    self.gate,
                    self.config.batch_maps,
                    self.config.batch_timeout,
                    self.config.max_concurrent,
                )
            return self._batchers[key]

    def close(self) -> None:
        """Stops the batchers' threads (the server has stopped taking requests)."""
        with self._batchers_lock:
            for batcher in self._batchers.values():
                batcher.close()
            self._batchers.clear()

    def check_input(self, servable: Servable, lr: np.ndarray) -> int:
        """Checks an LR batch against the model and the limits; returns the answer's size."""
        if servable.channels is not None and lr.shape[-1] != servable.channels:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"{servable.name} expects {servable.channels} component(s), got "
                f"{lr.shape[-1]}. Received: shape={list(lr.shape)}",
            )
        out_values = lr.size * servable.ratio**2
        if out_values > self.config.max_output_values:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the answer would hold {out_values} values (x{servable.ratio}); the limit "
                f"is {self.config.max_output_values} per request: send smaller tiles",
            )
        return out_values

    @contextmanager
    def predict(
        self, servable: Servable, lr: np.ndarray, bytes_per_value: int
    ) -> Iterator[np.ndarray]:
        """The SR batch of ``lr``, its memory reserved until the ``with`` block ends.

        Args:
            servable: the model.
            lr: float32 ``[batch, h, w, C]``, already checked by :func:`check_input`.
            bytes_per_value: memory one answer value holds until it is sent
                (:data:`~magsr_tf.serving.protocol.JSON_BYTES_PER_VALUE` or
                :data:`~magsr_tf.serving.protocol.BINARY_BYTES_PER_VALUE`).
        """
        out_values = self.check_input(servable, lr)
        with self.gate.reserve(lr.nbytes + out_values * bytes_per_value):
            if 0 < lr.shape[0] < self.config.batch_maps:
                sr = self.batcher(servable).run(lr)
            else:
                with self.gate.slot():
                    sr = run_model(servable, lr)
            yield sr
