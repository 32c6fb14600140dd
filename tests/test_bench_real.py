"""`bench real`: rows per method on a synthetic native image, Lanczos and SSIM, bad input."""

import numpy as np
import pytest
from conftest import call_main
from PIL import Image

from magsr_tf import MagsrError
from magsr_tf.benchmarks.real import bench_real, ssim
from magsr_tf.ops.lanczos import lanczos, lanczos_matrix
from magsr_tf.priors.image_prior import synthetic_domains

SEED = 3


@pytest.fixture(scope="module")
def maze(tmp_path_factory):
    native = synthetic_domains((80, 96), 16.0, 2.0, SEED)
    path = tmp_path_factory.mktemp("bench") / "maze.png"
    Image.fromarray(np.round((native + 1) * 32767.5).astype(np.uint16)).save(path)
    return path


def test_lanczos_is_aligned_and_interpolating():
    lr = np.random.default_rng(SEED).normal(size=(7, 9, 1))
    hr = lanczos(lr, 4)
    np.testing.assert_allclose(hr[::4, ::4], lr, atol=1e-6)
    np.testing.assert_allclose(lanczos_matrix(7, 4).sum(axis=1), 1.0)


def test_ssim():
    x = synthetic_domains((48, 48), 12.0, 1.0, SEED)[..., None]
    noisy = x + np.random.default_rng(SEED).normal(scale=0.3, size=x.shape)
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, noisy) < ssim(x, 0.5 * (x + noisy)) < 1.0


def test_bench_real_rows(maze):
    rows = bench_real(maze, ratio=4, crop=None, methods=("bicubic", "lanczos", "prior"))
    by = {row["method"]: row for row in rows}
    assert list(by) == ["bicubic", "lanczos", "prior"]
    assert by["bicubic"]["r_minus_bicubic"] == 0.0 and by["bicubic"]["mse_vs_bicubic"] == 1.0
    assert by["prior"]["pearson_r"] > by["bicubic"]["pearson_r"]
    assert by["prior"]["anisotropy"] > 0
    for row in rows:
        assert set(row) >= {"pearson_r", "mse", "ssim", "seconds", "cpu_seconds"}


def test_bench_real_unresolved_domains_fall_back_to_bicubic(tmp_path):
    # Domains 7 px wide seen through an 8 px LR grid (like the MFM image at x8): not
    # resolved, two in three LR neighbours change sign. The prior's row is then the
    # bicubic one (the default) unless the prior is forced.
    native = synthetic_domains((128, 128), 14.0, 0.5, SEED)
    path = tmp_path / "fine.png"
    Image.fromarray(np.round((native + 1) * 32767.5).astype(np.uint16)).save(path)
    methods = ("bicubic", "prior")
    rows = bench_real(path, ratio=8, crop=None, methods=methods)
    by = {row["method"]: row for row in rows}
    assert by["prior"]["lr_sign_changes"] > 0.5 and by["prior"]["prior_method"] == "bicubic"
    assert by["prior"]["pearson_r"] == pytest.approx(by["bicubic"]["pearson_r"], abs=1e-6)
    forced = bench_real(path, ratio=8, crop=None, methods=methods, unresolved="prior")
    assert forced[1]["prior_method"] == "prior"
    assert forced[1]["pearson_r"] != pytest.approx(by["bicubic"]["pearson_r"], abs=1e-6)


def test_bench_real_skips_the_network_at_ratio_2(maze):
    rows = bench_real(maze, ratio=2, crop=(40, 48), methods=("bicubic", "network"))
    assert [row["method"] for row in rows] == ["bicubic"]


def test_bench_real_bad_input(maze, tmp_path, capsys, monkeypatch):
    with pytest.raises(MagsrError, match="methods"):
        bench_real(maze, methods=("bicubic", "magic"))
    with pytest.raises(MagsrError, match="divisible"):
        bench_real(maze, ratio=4, crop=(30, 30))
    with pytest.raises(MagsrError, match="larger than the image"):
        bench_real(maze, ratio=4, crop=(512, 512))
    (tmp_path / "bad.png").write_text("not a picture")
    for args in (
        [tmp_path / "bad.png"],
        [maze, "--crop", "10by10"],
        [maze, "--ratio", "1"],
        [maze, "--degradation", "blur"],
        [maze, "--unresolved", "lanczos"],
    ):
        code, captured = call_main(monkeypatch, capsys, "bench", "real", *args, "--no-network")
        err = captured.err
        assert code not in (0, None), (args, err)
        assert "Traceback" not in err and "Error" in err, (args, err)
