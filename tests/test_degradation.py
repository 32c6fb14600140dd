"""Selectable degradation: specs, kernels, operators, the Keras layer, sigma estimation."""

import numpy as np
import pytest

from magsr_tf import MagsrError
from magsr_tf.ops.degradation import (
    DEFAULT,
    Degradation,
    DegradationOperator,
    degrade,
    estimate_sigma,
    parse_degradation,
)
from magsr_tf.ops.downsample import downsample, downsample_matrix
from magsr_tf.ops.kernels import gaussian_kernel

SEED = 11


@pytest.fixture
def maps():
    return np.random.default_rng(SEED).normal(size=(2, 32, 24, 2)).astype("float32")


def test_parse_specs_and_names():
    assert parse_degradation(None) is DEFAULT
    assert parse_degradation("gaussian").is_default
    assert parse_degradation("gaussian:2.5").sigma == 2.5
    assert parse_degradation("gaussian:2.5").name == "gaussian:2.5"
    assert parse_degradation("box").name == "box"
    assert parse_degradation("box:3").width == 3
    for spec in ("gaussian:1.5", "box", "box:4"):
        deg = parse_degradation(spec)
        assert parse_degradation(deg.name) == deg
        assert Degradation.from_config(deg.to_config()) == deg


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("gauss:1", "gaussian"),
        ("gaussian:abc", "needs a number"),
        ("gaussian:0", "sigma"),
        ("gaussian:-1", "sigma"),
        ("box:2.5", "integer"),
        ("box:0", "width"),
        ("psf:", "needs a file"),
        ("psf:/nonexistent/psf.npy", "cannot read"),
    ],
)
def test_bad_specs_name_the_problem(spec, match):
    with pytest.raises(MagsrError, match=match):
        parse_degradation(spec)


@pytest.mark.parametrize(
    ("psf", "match"),
    [
        (np.ones((4, 5)), "odd sides"),
        (np.ones((3, 3, 3)), "2-D"),
        (np.zeros((3, 3)), "positive sum"),
        (np.array([[1.0, np.nan, 1.0]]), "non-finite"),
    ],
)
def test_bad_psf_files_are_one_line_errors(tmp_path, psf, match):
    path = tmp_path / "psf.npy"
    np.save(path, psf)
    with pytest.raises(MagsrError, match=match):
        parse_degradation(f"psf:{path}")


def test_default_is_bit_identical_to_the_papers_gaussian(maps):
    np.testing.assert_array_equal(DEFAULT.kernel(), gaussian_kernel())
    for padding in ("periodic", "reflect"):
        np.testing.assert_array_equal(
            downsample_matrix(32, 4, padding, "gaussian:1"), downsample_matrix(32, 4, padding)
        )
        np.testing.assert_array_equal(
            downsample(maps, 4, padding, degradation=DEFAULT), downsample(maps, 4, padding)
        )
        np.testing.assert_array_equal(degrade(maps, 4, None, padding), downsample(maps, 4, padding))


def test_box_is_the_centred_mean():
    # Even width 4: taps 1/8, 1/4, 1/4, 1/4, 1/8 centred on the sample.
    np.testing.assert_allclose(
        parse_degradation("box").taps_1d(4), [0.125, 0.25, 0.25, 0.25, 0.125]
    )
    np.testing.assert_allclose(parse_degradation("box:3").taps_1d(8), [1 / 3] * 3)
    image = np.arange(64.0).reshape(8, 8)
    lr = degrade(image, 4, "box:3", padding="periodic")
    assert lr[1, 1] == pytest.approx(image[3:6, 3:6].mean())


def test_wide_gaussian_grows_its_kernel():
    taps = parse_degradation("gaussian:4").taps_1d()
    assert taps.size == 2 * 16 + 1 and taps.sum() == pytest.approx(1.0)


def test_psf_is_applied_as_a_convolution(tmp_path):
    # A one-pixel-shift PSF: the image of a point at p appears at p + (0, 1),
    # so LR pixel k reads native pixel k r - 1 along x.
    psf = np.zeros((3, 3))
    psf[1, 2] = 1.0
    path = tmp_path / "shift.npy"
    np.save(path, psf)
    deg = parse_degradation(f"psf:{path}")
    image = np.random.default_rng(SEED).normal(size=(16, 16))
    lr = degrade(image, 4, deg, padding="periodic")
    np.testing.assert_allclose(lr, image[::4, np.arange(0, 16, 4) - 1], atol=1e-6)
    assert deg.name == "psf:shift.npy"
    assert Degradation.from_config(deg.to_config()) == deg


def test_separable_psf_equals_the_separable_operator(tmp_path, maps):
    taps = parse_degradation("gaussian:1.7").taps_1d()
    path = tmp_path / "g.npy"
    np.save(path, np.outer(taps, taps))
    for padding in ("periodic", "reflect"):
        np.testing.assert_allclose(
            degrade(maps, 4, f"psf:{path}", padding),
            degrade(maps, 4, "gaussian:1.7", padding),
            atol=1e-6,
        )


@pytest.mark.parametrize("spec", ["gaussian:2", "box", "psf"])
def test_operator_adjoint(tmp_path, spec):
    if spec == "psf":
        path = tmp_path / "p.npy"
        np.save(path, np.random.default_rng(SEED).uniform(size=(5, 7)))
        spec = f"psf:{path}"
    op = DegradationOperator((24, 16), 4, parse_degradation(spec), "reflect")
    rng = np.random.default_rng(SEED + 1)
    x, y = rng.normal(size=(24, 16)), rng.normal(size=(6, 4))
    assert np.sum(op(x) * y) == pytest.approx(np.sum(x * op.adjoint(y)))
    np.testing.assert_allclose(op(x), degrade(x, 4, spec, "reflect"), atol=1e-5)


@pytest.mark.parametrize("spec", ["gaussian:2", "box", "psf"])
def test_layer_keeps_its_degradation_and_matches_numpy(tmp_path, maps, spec):
    import keras
    import tensorflow as tf

    from magsr_tf.nn.layers import GaussianDownsample

    if spec == "psf":
        path = tmp_path / "p.npy"
        np.save(path, np.random.default_rng(SEED).uniform(size=(5, 5)))
        spec = f"psf:{path}"
    layer = GaussianDownsample(4, "reflect", degradation=spec)
    expected = degrade(maps, 4, spec, "reflect")
    np.testing.assert_allclose(np.asarray(layer(maps)), expected, atol=1e-5)
    fn = tf.function(layer.call, input_signature=[tf.TensorSpec([None, None, None, 2])])
    np.testing.assert_allclose(np.asarray(fn(maps)), expected, atol=1e-5)
    config = layer.get_config()
    assert config["degradation"] == parse_degradation(spec).to_config()
    # Through a saved model: the blur is in its metadata, no file needed.
    inputs = keras.Input((32, 24, 2))
    model = keras.Model(inputs, GaussianDownsample(4, "reflect", degradation=spec)(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded(maps)), expected, atol=1e-5)


def test_default_layer_config_is_unchanged():
    from magsr_tf.nn.layers import GaussianDownsample

    config = GaussianDownsample(4, "reflect").get_config()
    assert "degradation" not in config
    assert GaussianDownsample(4, degradation="gaussian:1", name="g").get_config() == (
        GaussianDownsample(4, name="g").get_config()
    )


def _binary_labyrinth(size: int, period: float, seed: int) -> np.ndarray:
    """A sharp-walled two-level maze: the sign of band-passed noise (period in pixels)."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(size)
    kk = np.hypot(*np.meshgrid(k, k, indexing="ij"))
    ring = np.exp(-0.5 * ((kk - 1.0 / period) / (0.15 / period)) ** 2)
    field = np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * ring).real
    return np.where(field > 0, 1.0, -1.0)


# Measured accuracy of the sigma estimate (docs/real_images.md): relative error
# bound on sharp mazes of domain width 12 native pixels at x4 (largest seen: 7 % at 0.5).
SIGMA_TOLERANCE = 0.25


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.0])
def test_estimate_sigma_on_degraded_mazes(sigma):
    native = _binary_labyrinth(512, 24.0, SEED)
    lr = degrade(native, 4, f"gaussian:{sigma}", "reflect")
    estimate = estimate_sigma(lr, 4)
    assert abs(estimate - sigma) < SIGMA_TOLERANCE * sigma


def test_estimate_sigma_needs_walls():
    with pytest.raises(MagsrError, match="contrast"):
        estimate_sigma(np.zeros((16, 16)), 4)
