"""Training input: LR images only, streamed from HDF5 or from arrays.

h5py serializes every HDF5 call behind one lock, so the reader never asks for
one sample at a time: each epoch visits shuffled *blocks* of contiguous,
sorted indices (aligned to the per-configuration chunks), reads each block with
one call, and shuffles samples in a small pool of blocks. The whole file is
never loaded: at most ``pool_blocks * block`` LR images are in memory.

Augmentation uses only exact symmetries of the Hamiltonians, so every
augmented image is again a genuine LR image of a ground state:

* a stored sub-pixel *phase* (LR image of the HR state shifted by whole HR
  pixels, written at generation time as ``lr_phases/x{r}``);
* a 90-degree rotation of the lattice together with the in-plane spin
  components (exchange, both DMI kinds, dipolar and easy-axis terms are all
  invariant); on the LR grid this is ``rot90`` because the LR pixel grid is
  mapped onto itself up to a whole-LR-pixel translation;
* the global spin flip S -> -S (every term is quadratic in S).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import h5py
import numpy as np

from magsr_tf.errors import MagsrError

# Spin component index of the vector along array axis 1 and axis 2. Spins are
# stored [.., row, col, (x, y, z)] with x along columns and y along rows.
_COMPONENT_OF_AXIS = {1: 1, 2: 0}


def rotate_spins(lr: np.ndarray, k: int) -> np.ndarray:
    """Rotates maps ``[n, h, w, C]`` by ``k`` quarter turns, lattice and spins together.

    ``np.rot90`` over axes (1, 2) maps position (a1, a2) -> (-a2, a1) (up to a
    lattice translation), i.e. the vector (v1, v2) along (axis 1, axis 2)
    becomes (-v2, v1); the spin's in-plane components turn the same way.
    """
    k = k % 4
    if k == 0:
        return lr
    out = np.rot90(lr, k, axes=(1, 2))
    if lr.shape[-1] != 3:
        return np.ascontiguousarray(out)
    out = out.copy()
    c1, c2 = _COMPONENT_OF_AXIS[1], _COMPONENT_OF_AXIS[2]
    v1, v2 = out[..., c1].copy(), out[..., c2].copy()
    for _ in range(k):
        v1, v2 = -v2, v1
    out[..., c1], out[..., c2] = v1, v2
    return out


def augment(lr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random quarter-turn rotation and global spin flip per sample."""
    out = np.empty_like(lr)
    turns = rng.integers(0, 4, size=len(lr))
    for k in range(4):
        sel = np.flatnonzero(turns == k)
        if sel.size:
            out[sel] = rotate_spins(lr[sel], k)
    flips = np.where(rng.random(len(lr)) < 0.5, -1.0, 1.0).astype(lr.dtype)
    return out * flips[:, None, None, None]


@dataclass(frozen=True)
class H5Source:
    """LR training images in a magsr-tf HDF5 dataset.

    Attributes:
        path: the HDF5 file.
        ratio: which ``lr/x{ratio}`` to read.
        stop: rows ``[0, stop)`` are training rows (the test split follows).
        use_phases: also draw the stored sub-pixel phases ``lr_phases/x{ratio}``.
    """

    path: str
    ratio: int
    stop: int
    use_phases: bool = True

    def __post_init__(self):
        if self.stop < 1:
            raise MagsrError(f"no training rows in {self.path}. Received: stop={self.stop}")

    def shape(self) -> tuple[int, int, int]:
        with h5py.File(self.path, "r") as f:
            return tuple(f[f"lr/x{self.ratio}"].shape[1:])

    def n_phases(self) -> int:
        if not self.use_phases:
            return 0
        with h5py.File(self.path, "r") as f:
            key = f"lr_phases/x{self.ratio}"
            return int(f[key].shape[1]) if key in f else 0

    def blocks(
        self, rng: np.random.Generator, block: int, shard: int = 0, n_shards: int = 1
    ) -> Iterator[np.ndarray]:
        """Yields LR blocks of contiguous rows in shuffled order, one phase per sample."""
        starts = np.arange(0, self.stop, block)
        starts = starts[rng.permutation(len(starts))][shard::n_shards]
        phases = self.n_phases()
        with h5py.File(self.path, "r") as f:
            lr = f[f"lr/x{self.ratio}"]
            extra = f[f"lr_phases/x{self.ratio}"] if phases else None
            for s in starts:
                e = min(s + block, self.stop)
                x = lr[s:e]
                if extra is not None:
                    pick = rng.integers(0, phases + 1, size=e - s)
                    shifted = np.flatnonzero(pick > 0)
                    if shifted.size:
                        alt = extra[s:e]
                        x[shifted] = alt[shifted, pick[shifted] - 1]
                yield x


@dataclass(frozen=True)
class ArraySource:
    """LR training images held in memory (e.g. patches cut from a microscope image).

    Attributes:
        lr: ``[n, h, w, C]`` float32.
    """

    lr: np.ndarray

    def shape(self) -> tuple[int, int, int]:
        return tuple(self.lr.shape[1:])

    def blocks(
        self, rng: np.random.Generator, block: int, shard: int = 0, n_shards: int = 1
    ) -> Iterator[np.ndarray]:
        order = rng.permutation(len(self.lr))[shard::n_shards]
        for s in range(0, len(order), block):
            yield self.lr[np.sort(order[s : s + block])]


def batches(
    source,
    batch_size: int,
    seed: int,
    first_epoch: int = 0,
    augment_data: bool = True,
    block: int = 64,
    pool_blocks: int = 4,
    shard: int = 0,
    n_shards: int = 1,
) -> Iterator[np.ndarray]:
    """Endless stream of shuffled, augmented LR batches ``[batch_size, h, w, C]``.

    Epoch e draws its order and augmentation from ``default_rng([seed, e, shard])``,
    so a run resumed at epoch e sees exactly the data it would have seen.
    """
    epoch = first_epoch
    pool: list[np.ndarray] = []
    leftover = None
    while True:
        rng = np.random.default_rng([seed, epoch, shard])
        for x in source.blocks(rng, block, shard, n_shards):
            pool.append(x)
            if sum(len(p) for p in pool) < pool_blocks * block:
                continue
            leftover = yield from _drain(pool, leftover, rng, batch_size, augment_data)
            pool = []
        if pool:
            leftover = yield from _drain(pool, leftover, rng, batch_size, augment_data)
            pool = []
        epoch += 1


def _drain(pool, leftover, rng, batch_size, augment_data):
    x = np.concatenate(([leftover] if leftover is not None else []) + pool)
    x = x[rng.permutation(len(x))]
    if augment_data:
        x = augment(x, rng)
    n_full = len(x) // batch_size
    for i in range(n_full):
        yield np.ascontiguousarray(x[i * batch_size : (i + 1) * batch_size], dtype=np.float32)
    rest = x[n_full * batch_size :]
    return rest if len(rest) else None
