"""Models written by skl2onnx (scikit-learn -> ONNX): import, parity with scikit-learn, export round trip
at another batch size, fine-tuning of the differentiable MLP and weights mapped back into the estimator.

Tolerance: scikit-learn computes in float64, the ONNX graphs in float32 (skl2onnx casts the input), so
probabilities agree to float32 rounding over a few layers: rtol 1e-4, atol 1e-5; labels exactly.
`ai.onnx.ml` ops (LinearClassifier, Normalizer, ArrayFeatureExtractor) pass through for inference."""
import warnings

import numpy as np
import pytest

import onnxkit as ok
from onnxkit import nn

pytestmark = pytest.mark.interchange
skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx is not installed (pip install -e '.[interchange]')")
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    y = ((x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 0.8)).astype(np.int64)
    return x, y


def _convert(clf, x, zipmap=False):
    opts = None if zipmap else {id(clf): {"zipmap": False}}
    return skl2onnx.to_onnx(clf, x[:1], options=opts, target_opset={"": 21, "ai.onnx.ml": 3})


def _fit(kind):
    x, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "logreg":
            return LogisticRegression(max_iter=300).fit(x, y)
        return MLPClassifier((8,), max_iter=200, random_state=0).fit(x, y)


@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_import_matches_sklearn_and_round_trips(kind):
    clf = _fit(kind)
    x, _ = _data(7, seed=1)
    model = _convert(clf, x)
    imp = ok.load(model)
    label, proba = imp(x)
    np.testing.assert_array_equal(label.numpy(), clf.predict(x))
    np.testing.assert_allclose(proba.numpy(), clf.predict_proba(x), rtol=RTOL, atol=ATOL)
    if kind == "logreg":
        assert {n.domain for n in model.graph.node} >= {"ai.onnx.ml"}  # LinearClassifier, Normalizer pass through
    again = ok.export(imp, imp.graph_inputs(), output_names=imp.output_names, check=False)
    xb, _ = _data(13, seed=2)  # another batch size through the symbolic batch dim
    got = ok.Session(again).run({imp.input_names[0]: xb})
    np.testing.assert_array_equal(got[imp.output_names[0]], clf.predict(xb))
    np.testing.assert_allclose(got[imp.output_names[1]], clf.predict_proba(xb), rtol=RTOL, atol=ATOL)


class _Proba(nn.Module):
    """The imported classifier's probability output (the label branch with ArgMax is left out)."""

    def __init__(self, imported):
        super().__init__()
        self.imported = imported

    def forward(self, x):
        return self.imported(x)[1]


def test_mlp_fine_tunes_and_maps_back_into_the_estimator():
    clf = _fit("mlp")
    x, y = _data()
    imp = ok.load(_convert(clf, x))
    model = _Proba(imp)
    nll = nn.NLLLoss()
    trainer = ok.Trainer(model, lambda p, t: nll(ok.log(p + 1e-7), t), ok.optim.SGD(model.parameters(), lr=0.5))
    losses = [trainer.step(x, y) for _ in range(3)]
    assert losses[-1] < losses[0], losses
    trainer.sync()
    target = {f"coefs_{i}": w for i, w in enumerate(clf.coefs_)}
    target.update({f"intercepts_{i}": b for i, b in enumerate(clf.intercepts_)})
    target = {k: np.asarray(v, np.float32) for k, v in target.items()}  # skl2onnx wrote float32 copies
    state, unmapped = imp.map_weights(target)
    assert set(state) == set(target) and unmapped == []
    for k, v in state.items():
        attr, i = k.rsplit("_", 1)
        arrays = getattr(clf, attr + "_")
        arrays[int(i)] = v.astype(np.float64).reshape(arrays[int(i)].shape)
    model.eval()
    np.testing.assert_allclose(model(x).numpy(), clf.predict_proba(x), rtol=RTOL, atol=ATOL)


def test_zipmap_output_passes_through_and_exports_with_its_sequence_type():
    """ZipMap's seq(map(int64, float)) output runs as onnxruntime gives it (a list of dicts, one per
    row) and the re-exported file declares the same sequence-of-map type (onnx.checker, full check)."""
    import onnx
    import onnxruntime as ort
    clf = _fit("logreg")
    x, _ = _data(4, seed=3)
    model = _convert(clf, x, zipmap=True)
    imp = ok.load(model)
    label, proba = imp(x)
    np.testing.assert_array_equal(label.numpy(), clf.predict(x))
    maps = proba.numpy()
    assert isinstance(maps, list) and [sorted(d) for d in maps] == [list(clf.classes_)] * len(x)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {imp.input_names[0]: x})[1]
    assert maps == want
    np.testing.assert_allclose([[d[c] for c in clf.classes_] for d in maps], clf.predict_proba(x), rtol=RTOL, atol=ATOL)
    again = ok.export(imp, imp.graph_inputs(), output_names=imp.output_names)  # checker, full check
    onnx.checker.check_model(again, full_check=True)
    declared = {o.name: o.type for o in model.graph.output}
    for o in again.graph.output:
        assert o.type.WhichOneof("value") == declared[o.name].WhichOneof("value")
    seq = next(o for o in again.graph.output if o.name == imp.output_names[1]).type.sequence_type.elem_type.map_type
    assert seq.key_type == onnx.TensorProto.INT64 and seq.value_type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    xb, _ = _data(9, seed=2)
    got = ok.Session(again).run({imp.input_names[0]: xb})
    np.testing.assert_allclose([[d[c] for c in clf.classes_] for d in got[imp.output_names[1]]],
                               clf.predict_proba(xb), rtol=RTOL, atol=ATOL)
