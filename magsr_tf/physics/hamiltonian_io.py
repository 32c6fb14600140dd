"""Hamiltonians to and from their JSON descriptions (files, CLI options, dataset attributes).

One reader, :func:`resolve_hamiltonian`, validates every description: a dict needs a ``kind``
and may hold only that Hamiltonian's fields (plus ``dipolar_convention``, which
:func:`magsr_tf.physics.hamiltonian.hamiltonian_attrs` writes into every Type II dataset).
:func:`hamiltonian_to_json` writes what it reads back. The dataset readers build on it:
:func:`dataset_hamiltonian` opens the file, :func:`hamiltonian_from_attrs` takes an attribute
already read and falls back to the dataset's kind when there is none.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from magsr_tf.errors import MagsrError
from magsr_tf.physics.hamiltonian import Hamiltonian, TypeI, TypeII, make_hamiltonian

__all__ = [
    "dataset_hamiltonian",
    "hamiltonian_from_attrs",
    "hamiltonian_to_json",
    "resolve_hamiltonian",
]


def resolve_hamiltonian(spec) -> Hamiltonian:
    """A Hamiltonian from a name, a JSON file, an attribute dict or an instance.

    Args:
        spec: a :class:`TypeI`/:class:`TypeII` instance; ``"typeI"``/``"typeII"``;
            the path of a JSON file such as ``{"kind": "typeI", "J": 1, "D": 0.25}``;
            a dict of that form (the ``hamiltonian`` attribute of a dataset); or a
            JSON string of that form.

    Raises:
        MagsrError: unknown name, unreadable file, or a dict with a missing
            ``kind`` or unknown fields.
    """
    if isinstance(spec, (TypeI, TypeII)):
        return spec
    if isinstance(spec, bytes):
        spec = spec.decode()
    if isinstance(spec, Path) or (isinstance(spec, str) and spec.strip().lower().endswith(".json")):
        path = Path(spec)
        if not path.is_file():
            raise MagsrError(f"no Hamiltonian file at {path}")
        try:
            spec = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise MagsrError(f"cannot read the Hamiltonian file {path}: {exc}") from exc
        if not isinstance(spec, dict):
            raise MagsrError(f"{path} must hold a JSON object with a 'kind' field")
    elif isinstance(spec, str) and spec.strip().startswith("{"):
        try:
            spec = json.loads(spec)
        except ValueError as exc:
            raise MagsrError(f"unreadable Hamiltonian JSON: {exc}") from exc
    if isinstance(spec, dict):
        if "kind" not in spec:
            raise MagsrError(
                "a Hamiltonian description needs a 'kind' field ('typeI' or 'typeII'). "
                f"Received: {sorted(spec)}"
            )
        ham = make_hamiltonian(spec["kind"])
        names = {f.name for f in dataclasses.fields(ham)}
        # Descriptive keys that hamiltonian_attrs writes next to the parameters.
        ignored = {"kind", "dipolar_convention"}
        unknown = sorted(set(spec) - names - ignored)
        if unknown:
            raise MagsrError(
                f"unknown fields {unknown} for a {ham.kind} Hamiltonian; allowed: {sorted(names)}"
            )
        try:
            values = {k: str(v) if k == "dmi" else float(v) for k, v in spec.items() if k in names}
        except (TypeError, ValueError) as exc:
            raise MagsrError(f"Hamiltonian parameters must be numbers: {exc}") from exc
        return dataclasses.replace(ham, **values)
    if isinstance(spec, str):
        return make_hamiltonian(spec)
    raise MagsrError(f"cannot make a Hamiltonian from {type(spec).__name__}. Received: {spec!r}")


def hamiltonian_to_json(ham: Hamiltonian) -> dict:
    """The JSON-able description that :func:`resolve_hamiltonian` reads back."""
    return {"kind": ham.kind, **dataclasses.asdict(ham)}


def hamiltonian_from_attrs(attrs, kind: str) -> Hamiltonian:
    """The Hamiltonian of a dataset's ``hamiltonian`` attribute, or the default one of `kind`.

    Args:
        attrs: the attribute, parsed (a dict) or as stored (a JSON string), or None when the
            dataset has none; a dict without ``kind`` is taken to describe `kind`.
        kind: the dataset's kind (``"typeI"``/``"typeII"``), used when `attrs` is empty or
            names no kind.

    Raises:
        MagsrError: as :func:`resolve_hamiltonian`, for an unknown kind or unknown fields.
    """
    if not attrs:
        return make_hamiltonian(kind)
    if isinstance(attrs, dict) and "kind" not in attrs:
        attrs = {"kind": kind, **attrs}
    return resolve_hamiltonian(attrs)


def dataset_hamiltonian(path) -> Hamiltonian | None:
    """The Hamiltonian recorded in a magsr-tf dataset's ``hamiltonian`` attribute, or None.

    Raises:
        MagsrError: the file cannot be opened, or the attribute is unreadable.
    """
    # Lazy: most users of this module never open a dataset.
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("hamiltonian")
    except OSError as exc:
        raise MagsrError(f"cannot read {path}: {exc}") from exc
    if raw is None:
        return None
    return resolve_hamiltonian(raw.decode() if isinstance(raw, bytes) else str(raw))
