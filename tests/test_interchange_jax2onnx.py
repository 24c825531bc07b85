"""JAX functions written by jax2onnx (an MLP with GELU, a small CNN): import, parity with JAX, export round
trip at another batch size, 3 fine-tuning steps (loss falls) and the trained weights mapped back into
the JAX parameter pytree.

Tolerance: float32 on both sides (XLA's CPU kernels vs onnxruntime's): rtol 1e-5, atol 1e-5 for the
forward pass and after mapping back. jax2onnx writes the closed-over arrays as initializers `const_N`
(a bias reshaped to (1, n)) and adds scalar zero `dot_bias_*` Gemm inputs, which are parameters of the
imported module with no JAX counterpart: they are frozen by name pattern and come back as not mapped."""
import numpy as np
import pytest

import onnxkit as ok
from onnxkit import nn

pytestmark = pytest.mark.interchange
jax = pytest.importorskip("jax", reason="jax is not installed (pip install -e '.[interchange]')")
jax2onnx = pytest.importorskip("jax2onnx", reason="jax2onnx is not installed (pip install -e '.[interchange]', "
                                                  "then pip install --no-deps jax2onnx)")
jnp = jax.numpy

TOL = dict(rtol=1e-5, atol=1e-5)


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {"w1": rng.standard_normal((4, 8)).astype(np.float32) * 0.5,
            "b1": rng.standard_normal(8).astype(np.float32) * 0.1,
            "w2": rng.standard_normal((8, 3)).astype(np.float32) * 0.5,
            "b2": rng.standard_normal(3).astype(np.float32) * 0.1,
            "k": rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3,
            "w3": rng.standard_normal((4, 3)).astype(np.float32) * 0.5}


def mlp(p, x):
    return jax.nn.gelu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def cnn(p, x):
    y = jax.lax.conv_general_dilated(x, p["k"], (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return jnp.mean(jax.nn.relu(y), axis=(2, 3)) @ p["w3"]


MODELS = {"mlp": (mlp, (4,), ["w1", "b1", "w2", "b2"]), "cnn": (cnn, (3, 6, 6), ["k", "w3"])}


@pytest.fixture(scope="module", params=list(MODELS))
def converted(request):
    fn, shape, keys = MODELS[request.param]
    p = {k: v for k, v in _params().items() if k in keys}
    model = jax2onnx.to_onnx(lambda x: fn(p, x), [("B",) + shape], opset=21)
    return fn, shape, p, model


def _x(shape, n, seed):
    return np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)


def test_import_matches_jax_and_round_trips(converted):
    fn, shape, p, model = converted
    imp = ok.load(model)
    x = _x(shape, 3, 1)
    np.testing.assert_allclose(imp(x).numpy(), np.asarray(fn(p, x)), **TOL)
    again = ok.export(imp, imp.graph_inputs(), output_names=imp.output_names)
    xb = _x(shape, 7, 2)
    got = ok.Session(again).run({imp.input_names[0]: xb})[imp.output_names[0]]
    np.testing.assert_allclose(got, np.asarray(fn(p, xb)), **TOL)


def test_fine_tune_and_map_back_into_jax_params(converted):
    fn, shape, p, model = converted
    imp = ok.load(model)
    x, y = _x(shape, 8, 3), np.random.default_rng(4).standard_normal((8, 3)).astype(np.float32)
    # jax2onnx's zero Gemm C inputs have no JAX counterpart: frozen by name pattern, they stay 0
    trainer = ok.Trainer(imp, nn.MSELoss(), ok.optim.SGD(imp.parameters(), lr=0.05), frozen=["dot_bias_*"])
    losses = [trainer.step(x, y) for _ in range(3)]
    assert losses[-1] < losses[0], losses
    trainer.sync()
    state, unmapped = imp.map_weights(p)
    assert set(state) == set(p)
    assert all(n.startswith("dot_bias") for n in unmapped), unmapped
    imp.eval()
    np.testing.assert_allclose(imp(x).numpy(), np.asarray(fn(state, x)), **TOL)
