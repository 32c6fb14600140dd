"""Physics-prior reconstruction of real images: gradient, K from the LR image, beats bicubic."""

import numpy as np
import pytest

from magsr_tf import MagsrError
from magsr_tf.evaluation.metrics import pearson
from magsr_tf.ops.degradation import DegradationOperator, degrade, parse_degradation
from magsr_tf.ops.interpolation import upsample
from magsr_tf.priors.image_prior import (
    ALIASED_SIGN_CHANGES,
    TANH_PER_ERF_BAND,
    TANH_PER_ERF_L2,
    PriorConfig,
    _energy_and_gradient,
    choose_anisotropy,
    reconstruct,
    synthetic_domains,
)

SEED = 5
NATIVE = 96
PERIOD = 16.0
WALL = 2.0


@pytest.fixture(scope="module")
def scene():
    native = synthetic_domains((NATIVE, NATIVE + 32), PERIOD, WALL, SEED)[..., None]
    return native, degrade(native, 4, None, "reflect")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("spec", ["gaussian:1", "psf"])
def test_gradient_matches_finite_differences(tmp_path, channels, spec):
    if spec == "psf":
        path = tmp_path / "p.npy"
        np.save(path, np.random.default_rng(SEED).uniform(size=(3, 5)))
        spec = f"psf:{path}"
    rng = np.random.default_rng(SEED)
    dims = 2 if channels == 1 else 3
    shape = (8, 12, dims)
    ops = DegradationOperator(shape[:2], 4, parse_degradation(spec), "reflect")
    y = rng.uniform(-1, 1, (2, 3, channels))
    v = rng.normal(size=shape).ravel()
    energy, grad = _energy_and_gradient(v, shape, ops, y, 50.0, 0.3, 1.0)
    step = 1e-6
    for i in rng.choice(v.size, 12, replace=False):
        dv = np.zeros_like(v)
        dv[i] = step
        e_plus = _energy_and_gradient(v + dv, shape, ops, y, 50.0, 0.3, 1.0)[0]
        e_minus = _energy_and_gradient(v - dv, shape, ops, y, 50.0, 0.3, 1.0)[0]
        assert grad[i] == pytest.approx((e_plus - e_minus) / (2 * step), rel=1e-4, abs=1e-6)
    assert np.isfinite(energy)


def test_anisotropy_from_the_lr_wall_width(scene):
    # A tanh wall of width delta is the exchange/anisotropy wall of K = 1 / (2 delta^2).
    _, lr = scene
    k, choice = choose_anisotropy(lr, 4)
    assert choice["delta"] == pytest.approx(WALL, rel=0.25)
    assert k == pytest.approx(1 / (2 * WALL**2), rel=0.5)


def test_tanh_per_erf_conversions():
    from scipy.optimize import minimize_scalar
    from scipy.special import erf, erfinv

    x = np.linspace(-40.0, 40.0, 160001)
    wall = erf(x / np.sqrt(2.0))
    best = minimize_scalar(
        lambda d: np.trapezoid((np.tanh(x / d) - wall) ** 2, x),
        bounds=(0.5, 2.0),
        method="bounded",
        options={"xatol": 1e-9},
    )
    assert best.x == pytest.approx(TANH_PER_ERF_L2, abs=1e-5)
    # Band matching: tanh(x / delta) = 1/2 where erf(x / sqrt 2) = 1/2.
    assert np.tanh(np.sqrt(2.0) * erfinv(0.5) / TANH_PER_ERF_BAND) == pytest.approx(0.5)


def test_prior_beats_bicubic_on_a_synthetic_labyrinth(scene):
    native, lr = scene
    bicubic = upsample(lr, 4, "bicubic", aligned=True, padding="reflect")
    result = reconstruct(lr, 4)
    assert result.image.shape == native.shape
    r_prior, r_bicubic = pearson(native, result.image), pearson(native, bicubic)
    assert r_prior > r_bicubic + 0.005, (r_prior, r_bicubic)
    # Consistent with the LR image it came from.
    assert result.lr_rms < 0.02
    assert np.all(np.abs(result.spins) <= 1.0 + 1e-6)


def test_intensity_scale_and_offset_come_from_the_lr_image(scene):
    _, lr = scene
    config = PriorConfig(anisotropy=0.1, max_iter=15)
    base = reconstruct(lr, 4, config=config)
    shifted = reconstruct(3.0 * lr + 7.0, 4, config=config)
    np.testing.assert_allclose(shifted.image, 3.0 * base.image + 7.0, atol=1e-3)


def test_three_components_stay_unit_spins():
    rng = np.random.default_rng(SEED)
    native = rng.normal(size=(32, 32, 3))
    native /= np.linalg.norm(native, axis=-1, keepdims=True)
    lr = degrade(native, 4, None, "reflect")
    result = reconstruct(lr, 4, config=PriorConfig("exchange", max_iter=20))
    # Each component is rescaled by its own LR percentiles; the spins are unit vectors.
    norms = np.linalg.norm(result.spins, axis=-1)
    assert result.image.shape == (32, 32, 3) and np.all(norms <= 1.0 + 1e-5)


def test_network_start_is_used(scene):
    native, lr = scene
    config = PriorConfig(anisotropy=0.1, max_iter=1)
    start = np.clip(native, -0.9, 0.9)
    result = reconstruct(lr, 4, config=config, init=start)
    # One iteration from the truth stays far closer to it than bicubic is.
    bicubic = upsample(lr, 4, "bicubic", aligned=True, padding="reflect")
    assert pearson(native, result.image) > pearson(native, bicubic)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prior": "dipolar"}, "prior must be"),
        ({"anisotropy": -1.0}, "anisotropy"),
        ({"consistency": 0.0}, "consistency"),
        ({"max_iter": 0}, "max_iter"),
        ({"unresolved": "bicubic"}, "unresolved must be"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(MagsrError, match=match):
        PriorConfig(**kwargs)


def test_bad_inputs(scene):
    _, lr = scene
    with pytest.raises(MagsrError, match="1 or 3"):
        reconstruct(np.zeros((8, 8, 2)), 4)
    with pytest.raises(MagsrError, match="too small"):
        reconstruct(np.zeros((1, 8)), 4)
    with pytest.raises(MagsrError, match="no contrast"):
        reconstruct(np.zeros((8, 8)), 4)
    with pytest.raises(MagsrError, match="init must be"):
        reconstruct(lr, 4, init=np.zeros((4, 4, 1)))


def test_aliased_lr_image_is_flagged(caplog):
    # Independent pixels: neighbours disagree half the time, a checkerboard always.
    checker = np.indices((16, 16)).sum(axis=0) % 2 * 2.0 - 1.0
    with caplog.at_level("WARNING", logger="magsr_tf.priors.image_prior"):
        result = reconstruct(checker, 2, config=PriorConfig("exchange", max_iter=2))
    assert result.sign_changes == 1.0 and "narrower than the LR grid" in caplog.text


def test_unresolved_lr_image_falls_back_to_bicubic():
    # A checkerboard LR image: no domain is resolved. By default the result is
    # the aligned bicubic up-sampling, marked as such; "prior" runs the prior.
    checker = np.indices((16, 16)).sum(axis=0) % 2 * 2.0 - 1.0
    bicubic = upsample(checker[..., None], 2, "bicubic", aligned=True, padding="reflect")
    fallback = reconstruct(checker, 2, config=PriorConfig("exchange", max_iter=5))
    assert fallback.method == "bicubic" and fallback.iterations == 0
    np.testing.assert_allclose(fallback.image, bicubic, atol=1e-6)
    assert np.all(np.abs(fallback.spins) <= 1.0)
    forced = reconstruct(checker, 2, config=PriorConfig("exchange", max_iter=5, unresolved="prior"))
    assert forced.method == "prior" and forced.iterations > 0
    assert not np.allclose(forced.image, bicubic, atol=1e-3)


def test_resolved_lr_image_runs_the_prior(scene):
    _, lr = scene
    result = reconstruct(lr, 4, config=PriorConfig(anisotropy=0.1, max_iter=3))
    assert result.sign_changes < ALIASED_SIGN_CHANGES and result.method == "prior"
