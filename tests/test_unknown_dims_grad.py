"""Gradients through imported graphs whose shape inference left dims unknown (Hugging Face's
Slice(position_ids, 0, Shape(x)[1]) -> Add): un-broadcasting decides at run time what it cannot at
build time, and Slice with computed starts/ends has a gradient."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxkit as ok


def _model(nodes, inputs, outputs, inits):
    g = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def test_position_embedding_slice_by_runtime_length_then_broadcast_add():
    pe = np.random.default_rng(0).standard_normal((1, 10, 4)).astype(np.float32)
    m = _model([helper.make_node("Shape", ["x"], ["t"], start=1, end=2),
                helper.make_node("Slice", ["pe", "zero", "t", "one"], ["pes"]),
                helper.make_node("Add", ["x", "pes"], ["y"])],
               [_vi("x", ["N", "T", 4])], [_vi("y", ["N", "T", 4])],
               {"pe": pe, "zero": np.array([0], np.int64), "one": np.array([1], np.int64)})
    imp = ok.load(m)
    x = ok.tensor(np.random.default_rng(1).standard_normal((3, 7, 4)).astype(np.float32), requires_grad=True)
    (imp(x) * ok.tensor(np.arange(4, dtype=np.float32))).sum().backward()
    p = dict(imp.named_parameters())["pe"]
    want = np.zeros((1, 10, 4), np.float32)
    want[0, :7] = 3 * np.arange(4)
    np.testing.assert_allclose(p.grad.numpy(), want)
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(np.arange(4, dtype=np.float32), (3, 7, 4)))


@pytest.mark.parametrize("a_shape,b_shape", [((1, 4), (5, 4)), ((5, 1), (5, 4)), ((5, 4), (5, 4)), ((1, 1), (5, 4))])
def test_unknown_dims_on_both_sides_reduce_to_the_runtime_shape(a_shape, b_shape):
    """Both operands come out of a Reshape whose target is computed, so every dim is unknown at build time."""
    m = _model([helper.make_node("Shape", ["sa"], ["ta"]), helper.make_node("Reshape", ["a", "ta"], ["ra"]),
                helper.make_node("Shape", ["sb"], ["tb"]), helper.make_node("Reshape", ["b", "tb"], ["rb"]),
                helper.make_node("Mul", ["ra", "rb"], ["y"])],
               [_vi("a", ["A0", "A1"]), _vi("b", ["B0", "B1"]), _vi("sa", ["SA0", "SA1"]), _vi("sb", ["SB0", "SB1"])],
               [_vi("y", None)], {})
    imp = ok.load(m)
    rng = np.random.default_rng(2)
    a = ok.tensor(rng.standard_normal(a_shape).astype(np.float32), requires_grad=True)
    b = ok.tensor(rng.standard_normal(b_shape).astype(np.float32), requires_grad=True)
    y = imp(a, b, ok.tensor(np.zeros(a_shape, np.float32)), ok.tensor(np.zeros(b_shape, np.float32)))
    y.sum().backward()
    av, bv = a.numpy(), b.numpy()
    np.testing.assert_allclose(a.grad.numpy(), np.broadcast_to(bv, np.broadcast_shapes(a_shape, b_shape)).sum(
        axis=tuple(i for i, d in enumerate(a_shape) if d == 1 and b_shape[i] != 1), keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), np.broadcast_to(av, np.broadcast_shapes(a_shape, b_shape)).sum(
        axis=tuple(i for i, d in enumerate(b_shape) if d == 1 and a_shape[i] != 1), keepdims=True), rtol=1e-5)


@pytest.mark.parametrize("start,end,step", [(1, 6, 1), (-2, -9, -1), (0, 9, 2), (8, 0, -3)])
def test_slice_with_computed_bounds_matches_finite_differences(start, end, step):
    from gradcheck import gradcheck
    m = _model([helper.make_node("Add", ["s", "zero"], ["s2"]), helper.make_node("Add", ["e", "zero"], ["e2"]),
                helper.make_node("Slice", ["x", "s2", "e2", "ax", "st"], ["y"])],
               [_vi("x", [10, 3], TensorProto.DOUBLE)], [_vi("y", None, TensorProto.DOUBLE)],
               {"s": np.array([start], np.int64), "e": np.array([end], np.int64), "zero": np.array([0], np.int64),
                "ax": np.array([0], np.int64), "st": np.array([step], np.int64)})
    imp = ok.load(m)
    x = np.random.default_rng(3).standard_normal((10, 3))
    w = ok.tensor(np.random.default_rng(4).standard_normal((10, 3)))
    gradcheck(lambda t: (imp(t * w) ** 2).sum(), [x])  # the output's dims are unknown: check a weighted sum
