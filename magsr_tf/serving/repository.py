"""The served models: SavedModels under ``models_root/NAME/VERSION/``, loaded on first use.

The newest version answers when none is named.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import numpy as np

from magsr_tf.inference.export import SIGNATURE_KEY, saved_model_versions
from magsr_tf.serving.protocol import RequestError, relative_paths

logger = logging.getLogger(__name__)

ERROR_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}
"""``tensorflow.error.Code``: the ``error_code`` of TF Serving's model status."""
_CODE_NAMES = {number: name for name, number in ERROR_CODES.items()}


class LoadError(RequestError):
    """A model version that cannot be loaded: 500, and its status is END with ``error_code``."""

    def __init__(self, message: str, error_code: str):
        super().__init__(HTTPStatus.INTERNAL_SERVER_ERROR, message)
        self.error_code = error_code


@dataclass(frozen=True)
class VersionStatus:
    """One version's entry in TF Serving's model status.

    Attributes:
        version: version number.
        state: ``AVAILABLE`` (loaded, answers) or ``END`` (its load failed:
            TF Serving's state for a version that will not serve).
        error_code: ``OK`` or the ``tensorflow.error.Code`` name of the failure.
        error_message: empty, or why the load failed (paths relative to the root).
    """

    version: int
    state: str
    error_code: str
    error_message: str


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _error_code(exc: Exception) -> str:
    code = getattr(exc, "error_code", None)  # tf.errors.OpError
    if isinstance(code, int) and code in _CODE_NAMES:
        return _CODE_NAMES[code]
    # TF's reader says "Can't parse ... as binary proto" with DATA_LOSS; Python says OSError.
    if isinstance(exc, OSError) and "parse" in str(exc).lower():
        return "DATA_LOSS"
    return "UNKNOWN"


@dataclass(frozen=True)
class Servable:
    """One loaded model version and its signature's names.

    Attributes:
        name: model name.
        version: version number.
        fn: the ``serving_default`` concrete function.
        input_name: its one input (``lr``).
        output_name: its one output (``sr``).
        channels: the input's component count (None: any).
        ratio: the up-sampling ratio.
    """

    name: str
    version: int
    fn: object
    input_name: str
    output_name: str
    channels: int | None
    ratio: int


class ModelRepository:
    """SavedModels under a root folder, loaded lazily and cached per (name, version)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._loaded: dict[tuple[str, int], object] = {}
        self._ratios: dict[tuple[str, int], int] = {}
        self._servables: dict[tuple[str, int], Servable] = {}
        self._failed: dict[tuple[str, int], tuple[object, LoadError]] = {}
        self._lock = threading.Lock()

    def public(self, text: str) -> str:
        """``text`` with paths relative to the models root, fit for a client."""
        return relative_paths(text, self.root)

    def _stamp(self, path: Path):
        try:
            stat = (path / "saved_model.pb").stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def versions(self, name: str) -> list[int]:
        """The versions of model ``name``, oldest first (none for hidden or nested names)."""
        if name.startswith(".") or "/" in name:
            return []
        return saved_model_versions(self.root / name)

    def resolve(self, name: str, version: int | None) -> int:
        """The version that answers for ``version`` (the newest when None).

        Raises:
            RequestError: 404 when the model or that version does not exist.
        """
        versions = self.versions(name)
        if not versions:
            raise RequestError(HTTPStatus.NOT_FOUND, f"Servable not found for request: {name}")
        if version is None:
            return versions[-1]
        if version not in versions:
            raise RequestError(
                HTTPStatus.NOT_FOUND,
                f"Servable not found for request: Specific({name}, {version})",
            )
        return version

    def signature(self, name: str, version: int):
        """The ``serving_default`` concrete function (loading the SavedModel once)."""
        key = (name, version)
        with self._lock:
            if key not in self._loaded:
                import tensorflow as tf

                path = self.root / name / str(version)
                stamp = self._stamp(path)
                failed = self._failed.get(key)
                if failed is not None and failed[0] == stamp:  # unchanged on disk: same answer
                    raise LoadError(str(failed[1]), failed[1].error_code)
                try:
                    self._loaded[key] = tf.saved_model.load(str(path))
                except Exception as exc:
                    logger.exception("cannot load %s", path)
                    error = LoadError(
                        f"cannot load {name} v{version}: {self.public(_first_line(exc))}",
                        _error_code(exc),
                    )
                    self._failed[key] = (stamp, error)
                    raise error from exc
                self._failed.pop(key, None)
            loaded = self._loaded[key]
        if SIGNATURE_KEY not in loaded.signatures:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{name} has no {SIGNATURE_KEY} signature")
        return loaded.signatures[SIGNATURE_KEY]

    def ratio(self, name: str, version: int) -> int:
        """The model's up-sampling ratio: from its magsr_tf metadata, else one tiny probe."""
        key = (name, version)
        if key not in self._ratios:
            from magsr_tf.inference.export import read_metadata

            ratio = read_metadata(self.root / name / str(version)).get("ratio")
            if not isinstance(ratio, int) or ratio < 1:
                import tensorflow as tf

                fn = self.signature(name, version)
                _, spec = fn.structured_input_signature
                ((input_name, tensor_spec),) = spec.items()
                probe = tf.zeros((1, 4, 4, tensor_spec.shape[-1] or 1), tf.float32)
                (out,) = fn(**{input_name: probe}).values()
                ratio = max(1, int(out.shape[1]) // 4)
            self._ratios[key] = ratio
        return self._ratios[key]

    def servable(self, name: str, version: int | None) -> Servable:
        """The loaded model ``name`` (newest version when ``version`` is None)."""
        version = self.resolve(name, version)
        key = (name, version)
        if key not in self._servables:
            fn = self.signature(name, version)
            _, spec = fn.structured_input_signature
            ((input_name, tensor_spec),) = spec.items()
            (output_name,) = fn.structured_outputs
            channels = tensor_spec.shape[-1]
            self._servables[key] = Servable(
                name,
                version,
                fn,
                input_name,
                output_name,
                None if channels is None else int(channels),
                self.ratio(name, version),
            )
        return self._servables[key]

    def status(self, name: str, version: int | None) -> list[VersionStatus]:
        """TF Serving's model status: the version named, or all of them newest first.

        TF Serving loads its models at start and reports a version whose load
        failed as END with the error; this server loads on first use, so the
        status loads each version shown (once; a failure is retried when its
        ``saved_model.pb`` changes).

        Raises:
            RequestError: 404 when the model or that version does not exist.
        """
        resolved = self.resolve(name, version)
        shown = [resolved] if version is not None else self.versions(name)[::-1]
        answer = []
        for v in shown:
            try:
                self.servable(name, v)
            except RequestError as exc:
                code = exc.error_code if isinstance(exc, LoadError) else "FAILED_PRECONDITION"
                answer.append(VersionStatus(v, "END", code, str(exc)))
            else:
                answer.append(VersionStatus(v, "AVAILABLE", "OK", ""))
        return answer

    def signature_def_map(self, name: str, version: int):
        """The SavedModel's signatures as TF Serving's ``SignatureDefMap`` proto."""
        from tensorflow.python.saved_model import loader_impl

        try:
            from tensorflow_serving.apis import get_model_metadata_pb2
        except ImportError as exc:
            raise RequestError(
                HTTPStatus.NOT_IMPLEMENTED,
                'metadata needs tensorflow-serving-api: pip install "magsr-tf[deploy]"',
            ) from exc

        try:
            saved = loader_impl.parse_saved_model(str(self.root / name / str(version)))
        except Exception as exc:
            logger.exception("cannot read %s v%s", name, version)
            raise RequestError(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"cannot read {name} v{version}: {self.public(_first_line(exc))}",
            ) from exc
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in saved.meta_graphs[0].signature_def.items():
            if not key.startswith("__"):
                sig_map.signature_def[key].CopyFrom(sig)
        return sig_map

    def metadata(self, name: str, version: int) -> dict:
        """TF Serving's ``GetModelMetadata`` answer (the SignatureDefMap as JSON)."""
        from google.protobuf import json_format

        sig_map = self.signature_def_map(name, version)
        return {
            "model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {
                "signature_def": json_format.MessageToDict(
                    sig_map, preserving_proto_field_name=True
                )
            },
        }


def run_model(servable: Servable, lr: np.ndarray) -> np.ndarray:
    """The SR batch of ``lr`` from one call of ``servable``.

    Raises:
        RequestError: 400 when the model refuses the input (its first line).
    """
    import tensorflow as tf

    try:
        out = servable.fn(**{servable.input_name: tf.constant(lr)})
        return out[servable.output_name].numpy()
    except (tf.errors.InvalidArgumentError, ValueError) as exc:
        message = relative_paths(_first_line(exc), Path("/"))
        raise RequestError(HTTPStatus.BAD_REQUEST, message) from exc
