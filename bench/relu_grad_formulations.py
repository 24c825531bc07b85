"""ReLU-gradient formulations on a conv-sized tensor (64x6x28x28), one process, interleaved:
Where(x > 0, g, 0) against Mul(g, Cast(x > 0)) and others. Evidence for the Relu rule in
onnxkit/autodiff/rules.py.  python bench/relu_grad_formulations.py"""
import numpy as np, onnxruntime as ort, time, statistics
from onnx import helper, TensorProto as T
import onnxkit.runtime as r
shape = [64, 6, 28, 28]
def model(nodes, extra_init=()):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.FLOAT, shape), helper.make_tensor_value_info("g", T.FLOAT, shape), helper.make_tensor_value_info("y", T.FLOAT, shape)],
        [helper.make_tensor_value_info("out", T.FLOAT, shape)], [helper.make_tensor("zero", T.FLOAT, [], [0.0])] + list(extra_init))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
cands = {
 "where-scalar": [helper.make_node("Greater", ["x", "zero"], ["m"]), helper.make_node("Where", ["m", "g", "zero"], ["out"])],
 "mul-cast": [helper.make_node("Greater", ["x", "zero"], ["m"]), helper.make_node("Cast", ["m"], ["mf"], to=1), helper.make_node("Mul", ["g", "mf"], ["out"])],
 "mul-sign-y": [helper.make_node("Sign", ["y"], ["s"]), helper.make_node("Mul", ["g", "s"], ["out"])],
 "where-y-eq0": [helper.make_node("Equal", ["y", "zero"], ["m"]), helper.make_node("Where", ["m", "zero", "g"], ["out"])],
 "where-zeros": [helper.make_node("Greater", ["x", "zero"], ["m"]), helper.make_node("Sub", ["g", "g"], ["z"]), helper.make_node("Where", ["m", "g", "z"], ["out"])],
}
rng = np.random.default_rng(0)
x = rng.standard_normal(shape).astype(np.float32); g = rng.standard_normal(shape).astype(np.float32); y = np.maximum(x, 0)
feeds = {"x": x, "g": g, "y": y}
sessions = {k: ort.InferenceSession(model(v).SerializeToString(), r.session_options(spinning=True), providers=["CPUExecutionProvider"]) for k, v in cands.items()}
ref = np.where(x > 0, g, 0)
res = {k: [] for k in cands}
for rep in range(5):
    for k, s in sessions.items():
        np.testing.assert_allclose(s.run(None, feeds)[0], ref)
        ts = []
        for _ in range(50):
            t0 = time.perf_counter(); s.run(None, feeds); ts.append(time.perf_counter() - t0)
        res[k].append(statistics.median(ts))
for k, v in res.items(): print(f"{k:14s} {statistics.median(v)*1e6:8.1f} us")
