"""Physical observables of spin maps: length scale, topology and domain walls.

Image metrics (MSE, Corr) say how close an SR map is to the ground truth site
by site; these say whether it has the ground truth's *physics*. All take
``[n, L, L, C]`` arrays indexed ``[k, iy, ix, c]`` (site r = (ix, iy),
lattice constant 1, periodic boundaries; the convention of
:mod:`magsr_tf.physics.hamiltonian`) and return one value per map.

- :func:`structure_factor` / :func:`structure_factor_peak`: the radially
  averaged spin structure factor S(q) and its peak wave number, the length
  scale of Type I labyrinths (q = atan(D/J) = 0.291 rad/site for the paper's
  J = 1, D = 0.3) and of Type II domains (with ``component=2``).
- :func:`topological_charge`: the skyrmion number Q, Berg and Luescher's
  lattice definition [Nucl. Phys. B 190, 412 (1981)].
- :func:`wall_fraction` and :func:`domain_wall_length`: how much of a Type II
  map is domain wall.
"""

from __future__ import annotations

import numpy as np

from magsr_tf.errors import MagsrError


def _maps(spins, min_channels: int = 1) -> np.ndarray:
    spins = np.asarray(spins, dtype=np.float64)
    if spins.ndim == 3:
        spins = spins[None]
    if spins.ndim != 4 or spins.shape[-1] < min_channels:
        raise MagsrError(
            f"expected maps shaped [n, L, L, C] with C >= {min_channels}. "
            f"Received: shape={spins.shape}"
        )
    return spins


def _select(spins: np.ndarray, component: int | None) -> np.ndarray:
    if component is None:
        return spins
    if not -spins.shape[-1] <= component < spins.shape[-1]:
        raise MagsrError(
            f"component must index the {spins.shape[-1]} channels. Received: component={component}"
        )
    return spins[..., component : component + 1]


def _wave_numbers(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    qy = 2 * np.pi * np.fft.fftfreq(h)
    qx = 2 * np.pi * np.fft.fftfreq(w)
    return np.meshgrid(qy, qx, indexing="ij")


def structure_factor_2d(spins, component: int | None = None) -> np.ndarray:
    """S(q) = |sum_r (s_r - <s>) e^{-i q.r}|^2 / N summed over components, ``[n, L, L]``.

    The uniform part (q = 0) is removed, so a uniform state has S = 0 everywhere.

    Args:
        spins: ``[n, L, L, C]`` maps.
        component: None for the full spin structure factor (sum over components),
            or a component index (2 for S_z).
    """
    s = _select(_maps(spins), component)
    s = s - s.mean(axis=(1, 2), keepdims=True)
    n_sites = s.shape[1] * s.shape[2]
    f = np.fft.fft2(s, axes=(1, 2))
    return np.sum(np.abs(f) ** 2, axis=-1) / n_sites


def structure_factor(spins, component: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged structure factor S(|q|).

    Modes are binned by |q| into shells of width 2 pi / L (L the smaller side),
    shell m holding m - 1/2 <= |q| L / (2 pi) < m + 1/2.

    Args:
        spins: ``[n, L, L, C]`` maps.
        component: None for the full spin structure factor, or a component index.

    Returns:
        ``(q, s_q)``: shell centres ``q`` [n_shells] in rad/site (q[0] = 0) and
        the shell averages ``s_q`` [n, n_shells].
    """
    s2d = structure_factor_2d(spins, component)
    _, h, w = s2d.shape
    qy, qx = _wave_numbers(h, w)
    dq = 2 * np.pi / min(h, w)
    shell = np.rint(np.hypot(qx, qy) / dq).astype(np.int64).ravel()
    n_shells = int(shell.max()) + 1
    counts = np.bincount(shell, minlength=n_shells).astype(np.float64)
    sums = np.stack([np.bincount(shell, weights=s.ravel(), minlength=n_shells) for s in s2d])
    s_q = sums / np.maximum(counts, 1.0)
    return np.arange(n_shells) * dq, s_q


def structure_factor_peak(spins, component: int | None = None) -> np.ndarray:
    """Wave number of the structure-factor peak, ``[n]``, in rad/site.

    The peak shell of the radially averaged S(q) (full spin structure factor
    unless ``component`` is given) is refined by the S-weighted mean of |q|
    over the 2-D modes within one shell of it, so a helix with wave vector q
    returns |q| exactly and a labyrinth's ring is located between shells.
    The period is 2 pi / q sites. A map with no structure (uniform) gives 0.
    """
    s2d = structure_factor_2d(spins, component)
    q_shells, s_q = structure_factor(spins, component)
    _, h, w = s2d.shape
    qy, qx = _wave_numbers(h, w)
    q_abs = np.hypot(qx, qy)
    dq = q_shells[1] if q_shells.size > 1 else 1.0
    peaks = np.zeros(s2d.shape[0])
    for k in range(s2d.shape[0]):
        if not np.any(s_q[k, 1:] > 0):
            continue
        q_peak = q_shells[1 + int(np.argmax(s_q[k, 1:]))]
        near = np.abs(q_abs - q_peak) <= 1.5 * dq
        weights = s2d[k][near]
        peaks[k] = float(np.sum(weights * q_abs[near]) / np.sum(weights))
    return peaks


def _solid_angle(s1: np.ndarray, s2: np.ndarray, s3: np.ndarray) -> np.ndarray:
    """Signed solid angle of the spherical triangle (s1, s2, s3) (Berg and Luescher)."""
    triple = np.sum(s1 * np.cross(s2, s3), axis=-1)
    denom = 1.0 + np.sum(s1 * s2, axis=-1) + np.sum(s2 * s3, axis=-1) + np.sum(s3 * s1, axis=-1)
    return 2.0 * np.arctan2(triple, denom)


def topological_charge(spins) -> np.ndarray:
    """Skyrmion number Q per map, ``[n]``: Berg and Luescher's lattice definition.

    Every plaquette (r, r + x, r + x + y, r + y) is split into the triangles
    (r, r + x, r + x + y) and (r, r + x + y, r + y), counter-clockwise in the
    (x, y) plane; Q = sum of their signed solid angles / 4 pi. This is the
    lattice form of Q = (1/4 pi) int m . (d_x m x d_y m) dx dy, and on a
    periodic lattice it is an integer for every configuration (no triangle
    with antiparallel-spanning spins). A skyrmion whose core points against
    the background has |Q| = 1; the sign follows m . (d_x m x d_y m).

    Spins are normalized first; three components are required.
    """
    s = _maps(spins, min_channels=3)
    if s.shape[-1] != 3:
        raise MagsrError(f"topological charge needs 3-vector spins. Received: shape={s.shape}")
    s = s / np.maximum(np.linalg.norm(s, axis=-1, keepdims=True), 1e-12)
    right = np.roll(s, -1, axis=2)  # r + x
    up = np.roll(s, -1, axis=1)  # r + y
    diag = np.roll(right, -1, axis=1)  # r + x + y
    omega = _solid_angle(s, right, diag) + _solid_angle(s, diag, up)
    # The sum is an integer up to float rounding; drop the rounding noise (and -0).
    return np.round(omega.sum(axis=(1, 2)) / (4 * np.pi), 9) + 0.0


def _sz(spins) -> np.ndarray:
    s = _maps(spins)
    if s.shape[-1] not in (1, 3):
        raise MagsrError(f"expected 1 (S_z) or 3 spin components. Received: shape={s.shape}")
    return s[..., -1]


def wall_fraction(spins, threshold: float = 0.9) -> np.ndarray:
    """Fraction of sites inside domain walls, ``|S_z| < threshold``, ``[n]``.

    One-component maps are taken as S_z.
    """
    if not 0.0 < threshold <= 1.0:
        raise MagsrError(f"threshold must be in (0, 1]. Received: threshold={threshold}")
    return np.mean(np.abs(_sz(spins)) < threshold, axis=(1, 2))


def domain_wall_length(spins) -> np.ndarray:
    """Length of the S_z = 0 contour per map, ``[n]``, in lattice constants.

    Marching squares on the periodic lattice: in each plaquette the zero
    crossings on the edges are found by linear interpolation of S_z, and the
    segments joining them are summed (saddle plaquettes are resolved by the
    plaquette's mean S_z). A straight wall along a lattice axis across an
    L x L map has length L; a circular domain of radius R about 2 pi R.
    Divide by L^2 for a wall length per site. One-component maps are taken as S_z.
    """
    v00 = _sz(spins)
    v01 = np.roll(v00, -1, axis=2)  # (ix + 1, iy)
    v10 = np.roll(v00, -1, axis=1)  # (ix, iy + 1)
    v11 = np.roll(v01, -1, axis=1)
    pos = [v >= 0 for v in (v00, v01, v10, v11)]

    def crossing(a, b, sa, sb):
        cut = sa != sb
        t = np.where(cut, a / np.where(cut, a - b, 1.0), 0.0)
        return cut, t

    # Edge crossings in plaquette coordinates (x, y) in [0, 1]^2.
    c0, t0 = crossing(v00, v01, pos[0], pos[1])  # bottom: (t0, 0)
    c1, t1 = crossing(v01, v11, pos[1], pos[3])  # right: (1, t1)
    c2, t2 = crossing(v10, v11, pos[2], pos[3])  # top: (t2, 1)
    c3, t3 = crossing(v00, v10, pos[0], pos[2])  # left: (0, t3)
    points = {
        0: (t0, np.zeros_like(t0)),
        1: (np.ones_like(t1), t1),
        2: (t2, np.ones_like(t2)),
        3: (np.zeros_like(t3), t3),
    }

    def dist(a, b):
        return np.hypot(points[a][0] - points[b][0], points[a][1] - points[b][1])

    cuts = np.stack([c0, c1, c2, c3])
    n_cuts = cuts.sum(axis=0)
    length = np.zeros_like(v00)
    # Two crossings: one segment between them.
    for a in range(4):
        for b in range(a + 1, 4):
            both = (n_cuts == 2) & cuts[a] & cuts[b]
            length += np.where(both, dist(a, b), 0.0)
    # Four crossings (saddle): the plaquette mean decides which corners connect.
    saddle = n_cuts == 4
    centre_like_00 = ((v00 + v01 + v10 + v11) >= 0) == pos[0]
    split_01_10 = dist(0, 1) + dist(2, 3)  # cuts off corners (1,0) and (0,1)
    split_00_11 = dist(0, 3) + dist(1, 2)  # cuts off corners (0,0) and (1,1)
    length += np.where(saddle, np.where(centre_like_00, split_01_10, split_00_11), 0.0)
    return length.sum(axis=(1, 2))


def physical_summary(spins, kind: str | None = None) -> dict[str, np.ndarray]:
    """The observables that characterize a data type, per map.

    Args:
        spins: ``[n, L, L, C]`` unit-spin maps.
        kind: ``"typeI"`` (labyrinths: spiral wave number, Q), ``"typeII"``
            (domains: S_z peak, wall fraction and length, Q) or None (all).

    Returns:
        name -> ``[n]`` array. Names: ``q_peak`` (full S(q), rad/site),
        ``qz_peak`` (S_z structure factor), ``topological_charge``,
        ``wall_fraction`` (|S_z| < 0.9), ``wall_length`` (lattice constants).
    """
    s = _maps(spins)
    out: dict[str, np.ndarray] = {}
    three = s.shape[-1] == 3
    if kind in (None, "typeI") and three:
        out["q_peak"] = structure_factor_peak(s)
    if kind in (None, "typeII"):
        out["qz_peak"] = structure_factor_peak(s, component=s.shape[-1] - 1)
    if three:
        out["topological_charge"] = topological_charge(s)
    if kind in (None, "typeII"):
        out["wall_fraction"] = wall_fraction(s)
        out["wall_length"] = domain_wall_length(s)
    return out
