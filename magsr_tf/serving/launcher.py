"""Starting the REST server and, if configured, the gRPC server beside it on one core."""

from __future__ import annotations

import threading
from pathlib import Path

from magsr_tf.errors import MagsrError
from magsr_tf.serving.core import ServingCore
from magsr_tf.serving.protocol import ServeConfig
from magsr_tf.serving.rest import ModelServer, make_server


class Servers:
    """The running REST server and, if configured, the gRPC server beside it.

    Attributes:
        core: the shared :class:`ServingCore`.
        rest: the REST :class:`ModelServer`.
        grpc: the ``grpc.Server`` (None without ``grpc_port``).
        grpc_port: the bound gRPC port (None without gRPC).
    """

    def __init__(self, core: ServingCore, rest: ModelServer, grpc_server, grpc_port: int | None):
        self.core = core
        self.rest = rest
        self.grpc = grpc_server
        self.grpc_port = grpc_port
        self._thread = threading.Thread(target=rest.serve_forever, daemon=True, name="rest")
        self._thread.start()

    @property
    def rest_url(self) -> str:
        """``http://HOST:PORT`` of the REST API."""
        return self.rest.url

    @property
    def grpc_target(self) -> str | None:
        """``HOST:PORT`` of the gRPC API (None without gRPC)."""
        if self.grpc_port is None:
            return None
        return f"{_grpc_host(self.core.config.host)}:{self.grpc_port}"

    @property
    def alive(self) -> bool:
        """Whether the REST server is still serving."""
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Blocks while the REST server runs (until :meth:`stop` or Ctrl-C)."""
        self._thread.join(timeout)

    def stop(self, grace: float = 1.0) -> None:
        """Stops both servers and closes their sockets."""
        if self.grpc is not None:
            self.grpc.stop(grace).wait(grace + 5)
        self.rest.shutdown()
        self.rest.server_close()
        self._thread.join(timeout=10)
        self.core.close()


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def start_servers(config: ServeConfig) -> Servers:
    """Starts REST on ``config.port`` and gRPC on ``config.grpc_port`` (if set), in threads.

    Raises:
        MagsrError: no models root, a port that cannot be bound, or gRPC asked
            for without ``grpcio`` / ``tensorflow-serving-api``.
    """
    core = ServingCore(config)
    grpc_server = grpc_port = None
    if config.grpc_port is not None:
        if not Path(config.models_root).is_dir():
            raise MagsrError(f"models root {config.models_root} does not exist")
        from magsr_tf.serving.grpc_api import make_grpc_server

        grpc_server, grpc_port = make_grpc_server(config, core)
    try:
        rest = make_server(config, core)
    except MagsrError:
        if grpc_server is not None:
            grpc_server.stop(0)
        raise
    if grpc_server is not None:
        grpc_server.start()
    return Servers(core, rest, grpc_server, grpc_port)


def available_models(root: Path) -> dict[str, list[int]]:
    """Models and versions the server would answer for."""
    from magsr_tf.inference.export import list_served_models

    return list_served_models(root)
