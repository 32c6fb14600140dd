"""Observables on constructed states with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from magsr_tf import MagsrError
from magsr_tf.physics.observables import (
    domain_wall_length,
    physical_summary,
    structure_factor,
    structure_factor_peak,
    topological_charge,
    wall_fraction,
)

SEED = 11
L = 64


def _grid(size=L):
    iy, ix = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return ix.astype(np.float64), iy.astype(np.float64)


def _neel_helix(q_x, q_y, size=L):
    """Cycloid rotating in the plane of (q, z): m = cos(q.r) z + sin(q.r) q_hat."""
    ix, iy = _grid(size)
    phase = q_x * ix + q_y * iy
    qn = np.hypot(q_x, q_y)
    s = np.stack([np.sin(phase) * q_x / qn, np.sin(phase) * q_y / qn, np.cos(phase)], axis=-1)
    return s[None]


def _skyrmion(radius, size=L, vorticity=1, width=2.0):
    """Neel skyrmion, core down in an up background, centred in the map."""
    ix, iy = _grid(size)
    x, y = ix - size / 2 + 0.5, iy - size / 2 + 0.5
    r = np.hypot(x, y)
    theta = 2 * np.arctan(np.exp(-(r - radius) / width))  # pi at the core, 0 far away
    phi = vorticity * np.arctan2(y, x)
    s = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
    return s[None]


@pytest.mark.parametrize("m", [3, 6, 10])
def test_helix_peak_is_its_wave_number(m):
    q = 2 * np.pi * m / L
    assert structure_factor_peak(_neel_helix(q, 0.0))[0] == pytest.approx(q, rel=1e-9)
    # A diagonal helix (wave vector (m, m)) too: |q| = sqrt(2) q.
    assert structure_factor_peak(_neel_helix(q, q))[0] == pytest.approx(np.sqrt(2) * q, 1e-9)


def test_radial_average_peaks_in_the_helix_shell():
    m = 7
    q_shells, s_q = structure_factor(_neel_helix(2 * np.pi * m / L, 0.0))
    assert q_shells[1] == pytest.approx(2 * np.pi / L)
    assert int(np.argmax(s_q[0])) == m
    assert s_q[0, 0] == pytest.approx(0.0, abs=1e-9)  # uniform part removed


def test_structure_factor_sum_rule():
    # Parseval: sum_q S(q) = sum_r |s_r - <s>|^2.
    rng = np.random.default_rng(SEED)
    s = rng.normal(size=(2, 16, 16, 3))
    from magsr_tf.physics.observables import structure_factor_2d

    expected = np.sum((s - s.mean(axis=(1, 2), keepdims=True)) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(structure_factor_2d(s).sum(axis=(1, 2)), expected)


def test_uniform_state_has_no_peak_and_no_charge():
    up = np.zeros((2, L, L, 3))
    up[..., 2] = 1
    np.testing.assert_allclose(structure_factor_peak(up), 0.0)
    np.testing.assert_allclose(topological_charge(up), 0.0, atol=1e-12)
    np.testing.assert_allclose(domain_wall_length(up), 0.0)
    np.testing.assert_allclose(wall_fraction(up), 0.0)


def test_skyrmion_charge():
    q_sk = topological_charge(_skyrmion(8.0))[0]
    assert abs(q_sk) == pytest.approx(1.0, abs=1e-6)
    # Antiskyrmion (vorticity -1) has the opposite charge; two skyrmions add.
    assert topological_charge(_skyrmion(8.0, vorticity=-1))[0] == pytest.approx(-q_sk, abs=1e-6)
    two = np.concatenate([_skyrmion(6.0, size=32)] * 2, axis=2)  # 32 x 64 map, two skyrmions
    assert topological_charge(two)[0] == pytest.approx(2 * q_sk, abs=1e-6)


def test_charge_is_integer_for_any_periodic_configuration():
    rng = np.random.default_rng(SEED)
    s = rng.normal(size=(4, 12, 12, 3))
    q = topological_charge(s)
    np.testing.assert_allclose(q, np.rint(q), atol=1e-9)


def test_stripes_wall_length_and_fraction():
    # S_z = cos(2 pi m x / L): 2 m straight walls, each L long.
    m = 4
    s = _neel_helix(2 * np.pi * m / L, 0.0)
    assert domain_wall_length(s)[0] == pytest.approx(2 * m * L, rel=1e-9)
    expected_fraction = np.mean(np.abs(s[0, ..., 2]) < 0.9)
    assert wall_fraction(s, 0.9)[0] == pytest.approx(expected_fraction)
    assert 0.2 < expected_fraction < 0.8


def test_circular_domain_wall_length():
    radius = 15.0
    s = _skyrmion(radius, width=1.5)
    assert domain_wall_length(s)[0] == pytest.approx(2 * np.pi * radius, rel=0.02)
    # The 1-channel S_z map gives the same length.
    assert domain_wall_length(s[..., 2:])[0] == pytest.approx(domain_wall_length(s)[0])


def test_physical_summary_keys():
    s = _skyrmion(8.0)
    assert set(physical_summary(s, "typeI")) == {"q_peak", "topological_charge"}
    assert set(physical_summary(s, "typeII")) == {
        "qz_peak",
        "topological_charge",
        "wall_fraction",
        "wall_length",
    }


def test_bad_input_is_user_error():
    with pytest.raises(MagsrError):
        topological_charge(np.zeros((1, 4, 4, 1)))
    with pytest.raises(MagsrError):
        wall_fraction(np.zeros((1, 4, 4, 3)), threshold=0.0)
