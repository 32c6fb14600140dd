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
from magsr_tf.serving.protocol import RequestError

logger = logging.getLogger(__name__)


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
        self._lock = threading.Lock()

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
                try:
                    self._loaded[key] = tf.saved_model.load(str(path))
                except Exception as exc:
                    logger.exception("cannot load %s", path)
                    raise RequestError(
                        HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot load {name} v{version}: {exc}"
                    ) from exc
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
            raise RequestError(
                HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot read {name} v{version}: {exc}"
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
        raise RequestError(HTTPStatus.BAD_REQUEST, str(exc).splitlines()[0]) from exc
