"""The paper's architecture, exact equivalence of the fused graph, and (de)serialization."""

import subprocess
import sys

import numpy as np
import pytest

from magsr_tf import MagsrError
from magsr_tf.nn.model import (
    EXPANDER_FILTERS,
    UPSAMPLING_FILTERS,
    ModelConfig,
    build_models,
    load_sr_model,
    model_ratio,
)

SEED = 3


def _conv_filters(model, prefix):
    return [
        layer.filters
        for layer in model.layers
        if layer.name.startswith(prefix) and layer.name.endswith("_conv")
    ]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("ratio", [4, 8, 16])
def test_layer_structure_and_filters(ratio, fused):
    sr, train = build_models(ModelConfig(ratio=ratio, fused_upsampling=fused))
    assert _conv_filters(sr, "expander_") == [EXPANDER_FILTERS] * 4
    assert tuple(_conv_filters(sr, "up_")) == UPSAMPLING_FILTERS[ratio]
    assert (
        tuple(UPSAMPLING_FILTERS[ratio]) == {4: (16, 8), 8: (32, 16, 8), 16: (48, 32, 16, 8)}[ratio]
    )
    assert sr.get_layer("sr_conv").filters == 3
    bn = [layer.name for layer in sr.layers if layer.name.endswith("_bn")]
    assert len(bn) == 4 + len(UPSAMPLING_FILTERS[ratio])
    assert model_ratio(sr) == ratio
    h = 128 // ratio
    assert sr.compute_output_shape((None, h, h, 3)) == (None, 128, 128, 3)
    assert train.compute_output_shape((None, h, h, 3)) == (None, h, h, 3)
    down = train.get_layer("downsample")
    assert down.weights and not down.trainable_weights


def test_one_channel_model():
    sr, train = build_models(ModelConfig(ratio=4, channels=1, padding="reflect"))
    x = np.random.default_rng(SEED).uniform(-1, 1, size=(1, 12, 12, 1)).astype("float32")
    y = np.asarray(sr(x))
    assert y.shape == (1, 48, 48, 1) and np.abs(y).max() <= 1.0
    assert np.asarray(train(x)).shape == x.shape


@pytest.mark.parametrize("padding", ["periodic", "reflect"])
def test_fused_graph_equals_paper_graph(padding):
    ref_sr, ref_train = build_models(ModelConfig(ratio=8, padding=padding, fused_upsampling=False))
    sr, train = build_models(ModelConfig(ratio=8, padding=padding))
    sr.set_weights(ref_sr.get_weights())
    x = np.random.default_rng(SEED).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(sr(x)), np.asarray(ref_sr(x)), atol=1e-4)
    np.testing.assert_allclose(np.asarray(train(x)), np.asarray(ref_train(x)), atol=1e-5)


def test_sr_output_is_unit_spins():
    sr, _ = build_models(ModelConfig(ratio=4))
    x = np.random.default_rng(SEED).normal(size=(1, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.linalg.norm(np.asarray(sr(x)), axis=-1), 1.0, atol=1e-5)


def test_bad_config_messages():
    with pytest.raises(MagsrError, match="Received: ratio=3"):
        ModelConfig(ratio=3)
    with pytest.raises(MagsrError, match="Received: channels=2"):
        ModelConfig(channels=2)


def test_keras_file_reloads_in_fresh_process(tmp_path):
    sr, _ = build_models(ModelConfig(ratio=4))
    x = np.random.default_rng(SEED).normal(size=(2, 8, 8, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.asarray(sr(x, training=False)))
    sr.save(tmp_path / "model.keras")
    script = (
        "import numpy as np, sys\n"
        "from magsr_tf.nn.model import load_sr_model\n"
        f"d = {str(tmp_path)!r}\n"
        "m = load_sr_model(d)\n"
        "y = np.asarray(m(np.load(d + '/x.npy'), training=False))\n"
        "sys.exit(0 if np.array_equal(y, np.load(d + '/y.npy')) else 1)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_load_missing_model(tmp_path):
    with pytest.raises(MagsrError, match="no Keras model"):
        load_sr_model(tmp_path)
