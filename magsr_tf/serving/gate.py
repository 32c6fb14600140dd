"""Admission of predict requests: in-flight count, model slots and the memory budget."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus

from magsr_tf.serving.protocol import Busy, RequestError


class Gate:
    """Admission, model slots and the memory budget shared by every request.

    Args:
        max_inflight: requests admitted at once (more: :class:`Busy` at once).
        max_concurrent: model calls at once (more wait, up to ``queue_timeout``).
        memory_budget: bytes the admitted requests may reserve together.
        queue_timeout: seconds to wait for a model slot or for memory.
    """

    def __init__(
        self, max_inflight: int, max_concurrent: int, memory_budget: int, queue_timeout: float
    ):
        self.max_inflight = max_inflight
        self.memory_budget = memory_budget
        self.queue_timeout = queue_timeout
        self._lock = threading.Lock()
        self._inflight = 0
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._memory = threading.Condition()
        self._reserved = 0
        self.rejected = 0
        """Requests answered 503 / RESOURCE_EXHAUSTED so far."""

    @property
    def inflight(self) -> int:
        """Requests admitted now."""
        return self._inflight

    @property
    def reserved(self) -> int:
        """Bytes reserved now."""
        return self._reserved

    def _busy(self, message: str) -> Busy:
        with self._lock:
            self.rejected += 1
        return Busy(message)

    @contextmanager
    def admit(self) -> Iterator[None]:
        """One admitted request, from reading its body to its answer."""
        with self._lock:
            full = self._inflight >= self.max_inflight
            if not full:
                self._inflight += 1
        if full:
            raise self._busy(
                f"server busy: {self.max_inflight} requests in progress; retry shortly"
            )
        try:
            yield
        finally:
            with self._lock:
                self._inflight -= 1

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Holds ``nbytes`` of the memory budget (waits for it up to ``queue_timeout``)."""
        if nbytes > self.memory_budget:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the request needs ~{nbytes} bytes; the server's budget is {self.memory_budget}",
            )
        with self._memory:
            fits = self._memory.wait_for(
                lambda: self._reserved + nbytes <= self.memory_budget, self.queue_timeout
            )
            if fits:
                self._reserved += nbytes
        if not fits:
            raise self._busy("server busy: memory budget in use; retry shortly")
        try:
            yield
        finally:
            with self._memory:
                self._reserved -= nbytes
                self._memory.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One model call (waits for a free slot up to ``queue_timeout``)."""
        if not self._slots.acquire(timeout=self.queue_timeout):
            raise self._busy("server busy: all model slots in use; retry shortly")
        try:
            yield
        finally:
            self._slots.release()
