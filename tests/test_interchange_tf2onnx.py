"""Keras 3 models on TensorFlow-CPU written by tf2onnx (a CNN, an LSTM, a model with BatchNorm): import,
parity with Keras, export round trip at another batch size, 3 fine-tuning steps (loss falls) and the
trained weights mapped back into the Keras model.

tf2onnx's `from_keras` does not read Keras 3 models (KeyError on `keras_tensor_*` output names), so the
model is converted through `from_function` on a `tf.function` calling it, which is tf2onnx's path for
any TF callable. Tolerance: float32 on both sides with a different conv/matmul kernel order, and the
NHWC -> NCHW transposes tf2onnx inserts: rtol 1e-4, atol 1e-5. tf2onnx folds BatchNorm into a Mul/Add
(inference form), and reorders an LSTM's gates (i,f,c,o -> i,o,f,c) with its bias split in two, so
those Keras weights come back as not mapped (the test asserts exactly which)."""
import os

import numpy as np
import pytest

import onnxkit as ok
from onnxkit import nn

pytestmark = pytest.mark.interchange
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow", reason="tensorflow-cpu is not installed (pip install -e '.[interchange]')")
keras = pytest.importorskip("keras", reason="keras comes with tensorflow-cpu (interchange extra)")
tf2onnx = pytest.importorskip("tf2onnx", reason="tf2onnx is not installed (pip install -e '.[interchange]')")

TOL = dict(rtol=1e-4, atol=1e-5)


def _cnn():
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(3)])


def _bn():
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
                             keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])


def _lstm():
    return keras.Sequential([keras.Input((5, 4)), keras.layers.LSTM(6), keras.layers.Dense(3)])


MODELS = {"cnn": (_cnn, (8, 8, 3)), "bn": (_bn, (8, 8, 3)), "lstm": (_lstm, (5, 4))}


@pytest.fixture(scope="module", params=list(MODELS))
def converted(request):
    kind = request.param
    factory, shape = MODELS[kind]
    keras.utils.set_random_seed(0)
    m = factory()
    rng = np.random.default_rng(0)
    m.set_weights([w + rng.standard_normal(w.shape).astype(w.dtype) * 0.1 if w.ndim else w for w in m.get_weights()])
    if kind == "bn":  # running statistics away from 0/1 so the folded form is exercised
        bn = m.layers[1]
        bn.moving_mean.assign(rng.standard_normal(4).astype(np.float32) * 0.1)
        bn.moving_variance.assign(rng.uniform(0.5, 1.5, 4).astype(np.float32))
    spec = (tf.TensorSpec((None,) + shape, tf.float32, name="x"),)
    fn = tf.function(lambda x: m(x, training=False), input_signature=spec)
    model, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=17)
    return kind, m, shape, model


def _x(shape, n, seed):
    return np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)


def test_import_matches_keras_and_round_trips(converted):
    kind, m, shape, model = converted
    imp = ok.load(model)
    x = _x(shape, 3, 1)
    np.testing.assert_allclose(imp(x).numpy(), m(x, training=False).numpy(), **TOL)
    again = ok.export(imp, imp.graph_inputs(), output_names=imp.output_names)
    xb = _x(shape, 6, 2)
    got = ok.Session(again).run({imp.input_names[0]: xb})[imp.output_names[0]]
    np.testing.assert_allclose(got, m(xb, training=False).numpy(), **TOL)


def test_fine_tune_and_map_back_into_keras(converted):
    kind, m, shape, model = converted
    imp = ok.load(model)
    x, y = _x(shape, 8, 3), np.random.default_rng(4).integers(0, 3, 8).astype(np.int64)
    trainer = ok.Trainer(imp, nn.CrossEntropyLoss(), ok.optim.SGD(imp.parameters(), lr=0.1))
    losses = [trainer.step(x, y) for _ in range(3)]
    assert losses[-1] < losses[0], losses
    trainer.sync()
    target = {w.path: w.numpy() for w in m.weights}
    state, unmapped = imp.map_weights(target)
    not_mapped = sorted(set(target) - set(state))
    if kind == "bn":  # folded into the conv / a Mul and Add: inference form only
        assert any("batch_normalization" in k for k in not_mapped) and unmapped
        return
    if kind == "lstm":  # tf2onnx reorders the gates (Keras i,f,c,o -> ONNX i,o,f,c) and splits the bias
        assert {k.rsplit("/", 1)[-1] for k in not_mapped} == {"kernel", "recurrent_kernel", "bias"}
        assert all("lstm" in k for k in not_mapped) and any("dense" in k for k in state)
        return
    assert not_mapped == [] and unmapped == [], (not_mapped, unmapped)
    for w in m.weights:
        w.assign(state[w.path])
    imp.eval()
    np.testing.assert_allclose(imp(x).numpy(), m(x, training=False).numpy(), **TOL)
