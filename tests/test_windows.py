"""Open boundaries: texture continuation of LR windows, predict/refine/API with --boundary open."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import call_main, unit_maps

from magsr_tf import MagsrError
from magsr_tf.ops.downsample import downsample
from magsr_tf.ops.windows import (
    MIN_WINDOW,
    OpenBoundary,
    check_boundary,
    choose_extension,
    crop,
    default_boundary,
    extend,
)

SEED = 2718
RATIO = 4


def spiral(lattice: int, q: float, phase: float = 0.3) -> np.ndarray:
    """A Néel cycloid along x, ``[1, L, L, 3]`` unit spins."""
    x = np.arange(lattice)[None, :] + 0 * np.arange(lattice)[:, None]
    angle = q * x + phase
    return np.stack([np.sin(angle), np.zeros_like(angle), np.cos(angle)], -1)[None]


def domains(lattice: int, width: float = 3.0) -> np.ndarray:
    """Two tanh walls crossing at an angle: out-of-plane domains, ``[1, L, L, 3]``."""
    y, x = np.mgrid[0:lattice, 0:lattice].astype(float)
    u = (x + 0.4 * y - lattice / 2) / width
    mz = np.tanh(u)
    mx = np.sqrt(np.clip(1 - mz**2, 0, 1))
    return np.stack([mx, np.zeros_like(mz), mz], -1)[None]


def test_extend_shapes_and_lengths():
    lr = unit_maps((2, 5, 6, 3), SEED) * 0.9
    for method in ("auto", "odd", "ar", "symmetric"):
        wide = extend(lr, 8, method)  # margin larger than the window: repeated extension
        assert wide.shape == (2, 21, 22, 3)
        np.testing.assert_allclose(wide[:, 8:-8, 8:-8], lr, atol=1e-6)
        assert np.linalg.norm(wide, axis=-1).max() <= 1 + 1e-5
    assert extend(lr, 0).shape == lr.shape
    with pytest.raises(MagsrError, match="extension"):
        extend(lr, 2, "mirror")


def test_odd_extension_continues_a_straight_gradient():
    ramp = np.linspace(-0.5, 0.5, 8)
    lr = np.zeros((1, 8, 8, 3), np.float32)
    lr[..., 2] = ramp[None, :]
    wide = extend(lr, 3, "odd")
    step = ramp[1] - ramp[0]
    expected = np.concatenate(
        [ramp[0] - step * np.arange(3, 0, -1), ramp, ramp[-1] + step * np.arange(1, 4)]
    )
    np.testing.assert_allclose(wide[0, 3, :, 2], expected, atol=1e-5)


def test_linear_prediction_continues_a_downsized_spiral():
    # The LR image of a cycloid keeps oscillating: the AR continuation must match the
    # LR image of the larger state, where a mirror reverses the rotation.
    q = np.arctan(0.3)
    big = downsample(spiral(96, q), RATIO)
    window = big[:, 4:20, 4:20]
    truth = big[:, 1:23, 1:23]  # 3 LR pixels more on each side
    ar = extend(window, 3, "ar")
    mirror = extend(window, 3, "symmetric")
    err_ar = np.mean((ar - truth) ** 2)
    err_mirror = np.mean((mirror - truth) ** 2)
    assert err_ar < 1e-3 and err_ar < 0.05 * err_mirror


def test_auto_picks_linear_prediction_for_spirals_and_reflection_for_domains():
    lr = np.concatenate(
        [downsample(spiral(64, np.arctan(0.3)), RATIO), downsample(domains(64), RATIO)]
    )
    assert list(choose_extension(lr)) == ["ar", "odd"]
    assert list(choose_extension(lr[..., 2:])) == ["odd", "odd"]


def test_boundary_names_and_defaults():
    assert check_boundary(None) is None
    assert check_boundary("open") == "open"
    with pytest.raises(MagsrError, match="boundary must be 'periodic' or 'open'"):
        check_boundary("wrap")
    assert default_boundary("maps.npy") == "periodic"
    assert default_boundary("data/typeI.h5:lr/x8[0:4]") == "periodic"
    for picture in ("scan.png", "film.tif", "afm.gwy", "mx.png, my.png, mz.png"):
        assert default_boundary(picture) == "open"


def test_open_boundary_hides_the_wrap_around():
    # A periodic "network": nearest up-sampling of a 3x3 periodic box average. Changed
    # pixels at the far edge of the window must not reach the near border.
    def periodic_net(lr):
        smooth = sum(
            np.roll(np.roll(lr, dy, axis=1), dx, axis=2) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
        )
        return np.repeat(np.repeat(smooth / 9, RATIO, axis=1), RATIO, axis=2)

    lr = unit_maps((1, 12, 12, 3), SEED) * 0.5
    other = lr.copy()
    other[:, -1] = -other[:, -1]  # the last row flipped
    wrapped = OpenBoundary(periodic_net, RATIO)
    top = slice(0, 2 * RATIO)
    assert not np.allclose(periodic_net(lr)[:, top], periodic_net(other)[:, top])
    np.testing.assert_allclose(wrapped(lr)[:, top], wrapped(other)[:, top], atol=1e-6)
    assert wrapped(lr).shape == (1, 48, 48, 3)
    assert crop(np.zeros((1, 40, 40, 3)), 2, RATIO).shape == (1, 24, 24, 3)
    with pytest.raises(MagsrError, match=f"at least {MIN_WINDOW}x{MIN_WINDOW}"):
        wrapped(lr[:, :3, :5])


tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def spin_model(tmp_path_factory):
    from magsr_tf.inference.export import export_saved_model
    from magsr_tf.nn.model import ModelConfig, build_models

    root = tmp_path_factory.mktemp("saved_models")
    sr_model, _ = build_models(ModelConfig(ratio=RATIO, channels=3))
    (root / "spins").mkdir()
    sr_model.save(root / "spins" / "model.keras")
    export_saved_model(sr_model, root / "spins", version=1)
    return root, sr_model


def test_predict_open_equals_the_api_and_the_wrapper(spin_model, tmp_path):
    from magsr_tf.inference.apply import apply_model, super_resolve
    from magsr_tf.jobs.predict import PredictConfig, predict

    root, sr_model = spin_model
    lr = (unit_maps((2, 10, 9, 3), SEED) * 0.8).astype(np.float32)
    np.save(tmp_path / "win.npy", lr)
    config = PredictConfig(
        model="spins",
        inputs=(str(tmp_path / "win.npy"),),
        out_dir=tmp_path,
        models_root=root,
        boundary="open",
        noise=0.0,
    )
    (result,) = predict(config)
    direct = OpenBoundary(lambda x: apply_model(sr_model, x), RATIO)(lr)
    np.testing.assert_allclose(result.sr, direct, atol=1e-5)
    api = super_resolve(lr, sr_model, boundary="open")
    np.testing.assert_allclose(api, direct, atol=1e-5)
    periodic = super_resolve(lr, sr_model)
    assert np.abs(periodic - direct).max() > 1e-3  # the border differs
    import json

    assert json.loads((tmp_path / "win_predict.json").read_text())["boundary"] == "open"


def test_refine_open_fits_only_the_window(spin_model):
    from magsr_tf.priors.refine import RefineConfig, refine

    state = spiral(64, np.arctan(0.3))
    lr = downsample(state, RATIO)[:, 2:12, 3:11]
    config = RefineConfig(boundary="open", padding="reflect", steps=20)
    result = refine(lr, RATIO, "typeI", config=config)
    assert result.sr.shape == (1, 40, 32, 3)
    np.testing.assert_allclose(np.linalg.norm(result.sr, axis=-1), 1, atol=1e-5)
    assert result.lr_misfit[0] < 1e-3
    with pytest.raises(MagsrError, match="at least 4x4"):
        refine(lr[:, :3], RATIO, "typeI", config=config)


def test_cli_bad_boundary_and_small_window_write_nothing(spin_model, tmp_path, monkeypatch, capsys):
    root, _ = spin_model
    np.save(tmp_path / "win.npy", unit_maps((1, 3, 8, 3), SEED) * 0.5)
    out = tmp_path / "out"
    cases = [
        (["predict", "spins", tmp_path / "win.npy", "--boundary", "wrap"], "boundary must be"),
        (["predict", "spins", tmp_path / "win.npy", "--boundary", "open"], "at least 4x4"),
        (
            [
                "refine",
                tmp_path / "win.npy",
                "--ratio",
                "4",
                "--hamiltonian",
                "typeI",
                "--boundary",
                "open",
            ],
            "at least 4x4",
        ),
    ]
    for args, fragment in cases:
        code, captured = call_main(monkeypatch, capsys, *args, "--out", out, "--root", root)
        assert code == 1
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], captured.err
        assert not out.exists()


def test_server_with_open_boundary_gives_the_local_answer(spin_model, tmp_path):
    import threading

    from magsr_tf.jobs.predict import PredictConfig, predict
    from magsr_tf.serving.protocol import ServeConfig
    from magsr_tf.serving.rest import make_server

    root, _ = spin_model
    srv = make_server(ServeConfig(models_root=root, port=0))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        np.save(tmp_path / "win.npy", unit_maps((2, 9, 7, 3), SEED) * 0.8)
        inputs = (str(tmp_path / "win.npy"),)
        common = {"model": "spins", "inputs": inputs, "boundary": "open", "noise": 0.0}
        local = predict(PredictConfig(**common, out_dir=tmp_path / "a", models_root=root))
        remote = predict(PredictConfig(**common, out_dir=tmp_path / "b", server=srv.url))
        np.testing.assert_allclose(remote[0].sr, local[0].sr, atol=1e-5)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)
