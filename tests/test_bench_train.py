"""The training benchmark measures what it claims: its reference is the paper's graph."""

import numpy as np
import pytest

from magsr_tf.benchmarks.train import (
    bench_train,
    build_reference_training_model,
    conv_flops_per_image,
)
from magsr_tf.nn.model import ModelConfig, build_models

SEED = 13


@pytest.mark.parametrize("ratio", [4, 8])
def test_reference_is_the_papers_graph(ratio):
    # Same weights, same function: the stock-Keras build and our unfused, no-skip graph.
    config = ModelConfig(ratio=ratio, residual=False, fused_upsampling=False)
    _, ours = build_models(config)
    reference = build_reference_training_model(ratio)
    weights = ours.get_weights()
    assert [w.shape for w in reference.get_weights()] == [w.shape for w in weights]
    rng = np.random.default_rng(SEED)
    # Perturb every trainable-side weight (not the fixed Gaussian, the last one).
    noisy = [w + rng.normal(0, 0.05, w.shape).astype("float32") for w in weights[:-1]]
    reference.set_weights([*noisy, weights[-1]])
    ours.set_weights(reference.get_weights())
    x = rng.normal(size=(2, 64 // ratio, 64 // ratio, 3)).astype("float32")
    for training in (False, True):
        np.testing.assert_allclose(
            np.asarray(ours(x, training=training)),
            np.asarray(reference(x, training=training)),
            atol=2e-4,
        )


def test_conv_flops_count_by_hand():
    sr, _ = build_models(ModelConfig(ratio=4))
    h = 8
    expected = 2 * 9 * (h * h * (3 * 64 + 3 * 64 * 64 + 64 * 16) + (2 * h) ** 2 * 16 * 8)
    expected += 2 * 9 * (4 * h) ** 2 * 8 * 3
    assert conv_flops_per_image(sr, h) == expected


def test_bench_rows_are_positive_and_consistent():
    rows = bench_train(seconds=0.01, batch_size=2)
    assert [r["ratio"] for r in rows] == ["x4", "x8", "x16"]
    for r in rows:
        assert r["images_per_s"] > 0 and r["reference_images_per_s"] > 0
        assert r["speedup"] == pytest.approx(r["images_per_s"] / r["reference_images_per_s"])
        assert r["fraction_of_conv_rate"] == pytest.approx(r["train_gflops"] / r["conv_gflops"])


def test_profile_accounts_for_the_convolutions():
    from magsr_tf.benchmarks.profile import profile_training

    for group in ("op", "layer"):
        rows = profile_training(ratio=16, batch=2, steps=2, group=group)
        assert sum(r["share"] for r in rows) == pytest.approx(1.0)
        assert all(r["ms_per_step"] > 0 for r in rows)
        names = [r["name"] for r in rows]
        if group == "op":
            assert any("Conv2DBackpropFilter" in n for n in names)
        else:
            assert "expander_2_conv (backward)" in names
            assert "periodic_pad_adjoint (backward)" in names


def test_profile_rejects_bad_arguments():
    from magsr_tf import MagsrError
    from magsr_tf.benchmarks.profile import profile_training

    with pytest.raises(MagsrError, match="Received: group='foo'"):
        profile_training(group="foo")
    with pytest.raises(MagsrError, match="Received: ratio=3"):
        profile_training(ratio=3)
