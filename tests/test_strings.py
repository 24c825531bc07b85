"""String tensors and non-tensor values (sequences, maps) pass through `ok.load` for inference.

ONNX STRING is numpy's object dtype (object arrays of str, as onnxruntime returns them). Models built
here with onnx.helper take string inputs, hold string initializers and Constants, and return strings;
`ok.load(model)(...)` must give onnxruntime's outputs exactly, the export round trip must pass the
checker, and arithmetic on a string tensor must fail when the graph is built, naming the op and dtype."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

import onnxkit as ok

ML = helper.make_opsetid("ai.onnx.ml", 4)


def _model(nodes, inputs, outputs, inits=(), ml=False):
    graph = helper.make_graph(nodes, "strings", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", 21)] + ([ML] if ml else [])
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _strings(*values):
    return np.array(values, dtype=object)


def _concat_regex():
    """x -> StringConcat(x, suffix initializer) and RegexFullMatch(x): string in, string and bool out."""
    suffix = numpy_helper.from_array(_strings("@example.com"), "suffix")
    return _model(
        [helper.make_node("StringConcat", ["x", "suffix"], ["mail"]),
         helper.make_node("RegexFullMatch", ["mail"], ["valid"], pattern=r"[a-z]+@example\.com")],
        [_vi("x", TP.STRING, ["N"])], [_vi("mail", TP.STRING, ["N"]), _vi("valid", TP.BOOL, ["N"])], [suffix])


def _casts():
    """Cast float -> string -> float, and the string form as an output."""
    return _model(
        [helper.make_node("Cast", ["x"], ["text"], to=TP.STRING),
         helper.make_node("Cast", ["text"], ["back"], to=TP.FLOAT),
         helper.make_node("Mul", ["back", "x"], ["sq"])],
        [_vi("x", TP.FLOAT, ["N"])], [_vi("text", TP.STRING, ["N"]), _vi("sq", TP.FLOAT, ["N"])])


def _label_encoder():
    """ai.onnx.ml LabelEncoder string -> int64 and back (int64 -> string)."""
    return _model(
        [helper.make_node("LabelEncoder", ["x"], ["ids"], domain="ai.onnx.ml", keys_strings=["cat", "dog", "eel"],
                          values_int64s=[0, 1, 2], default_int64=-1),
         helper.make_node("LabelEncoder", ["ids"], ["names"], domain="ai.onnx.ml", keys_int64s=[0, 1, 2],
                          values_strings=["CAT", "DOG", "EEL"], default_string="?")],
        [_vi("x", TP.STRING, ["N"])], [_vi("ids", TP.INT64, ["N"]), _vi("names", TP.STRING, ["N"])], ml=True)


def _split_and_compare():
    """StringSplit, Equal against a Constant (value_strings), Gather on strings, Concat with a string
    initializer, StringNormalizer, and a string initializer returned as it is."""
    vocab = numpy_helper.from_array(_strings("<bos>", "<eos>"), "vocab")
    idx = numpy_helper.from_array(np.array([1, 0], np.int64), "idx")
    return _model(
        [helper.make_node("StringSplit", ["x"], ["words", "counts"], delimiter=" "),
         helper.make_node("Constant", [], ["target"], value_strings=["b"]),
         helper.make_node("Equal", ["words", "target"], ["is_b"]),
         helper.make_node("Gather", ["vocab", "idx"], ["swapped"]),
         helper.make_node("Concat", ["swapped", "x"], ["joined"], axis=0),
         helper.make_node("StringNormalizer", ["joined"], ["clean"], stopwords=["<eos>"], case_change_action="NONE",
                          locale="C"),
         helper.make_node("Identity", ["vocab"], ["vocab_out"])],
        [_vi("x", TP.STRING, [2])],
        [_vi("words", TP.STRING, [2, "W"]), _vi("counts", TP.INT64, [2]), _vi("is_b", TP.BOOL, [2, "W"]),
         _vi("clean", TP.STRING, ["M"]), _vi("vocab_out", TP.STRING, [2])], [vocab, idx])


CASES = {
    "concat_regex": (_concat_regex, [_strings("ann", "Bob", "c3")]),
    "casts": (_casts, [np.array([1.5, -2.0, 3.25], np.float32)]),
    "label_encoder": (_label_encoder, [_strings("dog", "eel", "yak", "cat")]),
    "split_and_compare": (_split_and_compare, [_strings("a b c", "b  d")]),
}


def _ort(model, feeds):
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _equal(got, want):
    got = np.asarray(got)
    assert got.dtype == want.dtype and got.shape == want.shape, (got, want)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_string_models_match_onnxruntime(name):
    build, ins = CASES[name]
    model = build()
    imp = ok.load(model)
    want = _ort(model, dict(zip(imp.input_names, ins)))
    outs = imp(*ins)
    outs = [outs] if isinstance(outs, ok.Tensor) else list(outs)
    for o, w in zip(outs, want):
        if w.dtype == object:
            assert o.dtype == np.dtype(object)
        _equal(o.numpy(), w)


@pytest.mark.parametrize("name", sorted(CASES))
def test_string_models_export_round_trip(name):
    build, ins = CASES[name]
    model = build()
    imp = ok.load(model)
    again = ok.export(imp)  # check=True: onnx.checker with full_check
    onnx.checker.check_model(again, full_check=True)
    by_name = {o.name: o for o in again.graph.output}
    for o in model.graph.output:
        assert by_name[o.name].type.tensor_type.elem_type == o.type.tensor_type.elem_type
    got = ok.Session(again).run(dict(zip(imp.input_names, ins)))
    for name_, w in zip(imp.output_names, _ort(model, dict(zip(imp.input_names, ins)))):
        _equal(got[name_], w)


def test_text_feeds_in_any_numpy_form():
    """numpy unicode and bytes arrays, lists of str and bytes in object arrays all feed a string input
    (onnxruntime itself misreads bytes, so they are decoded first)."""
    model = _concat_regex()
    imp = ok.load(model)
    want = _ort(model, {"x": _strings("ann", "bob")})
    for x in (np.array(["ann", "bob"]), np.array([b"ann", b"bob"]), ["ann", "bob"], _strings(b"ann", b"bob"),
              ok.tensor(np.array(["ann", "bob"]))):
        mail, valid = imp(x)
        _equal(mail.numpy(), want[0])
        _equal(valid.numpy(), want[1])


def test_string_constants_are_part_of_the_session_cache_key():
    """Two models that differ only in a string initializer must not share a compiled session."""
    def build(text):
        return _model([helper.make_node("StringConcat", ["x", "s"], ["y"])], [_vi("x", TP.STRING, [1])],
                      [_vi("y", TP.STRING, [1])], [numpy_helper.from_array(_strings(text), "s")])
    a, b = ok.load(build("-a")), ok.load(build("-b"))
    assert a(_strings("x")).numpy().tolist() == ["x-a"]
    assert b(_strings("x")).numpy().tolist() == ["x-b"]


def test_dtype_names_for_strings():
    for d in ("string", "str", str, np.str_, np.dtype("<U4"), TP.STRING, object):
        assert ok.dtypes.as_dtype(d) == np.dtype(object)
    assert ok.dtypes.to_onnx("string") == TP.STRING and ok.dtypes.from_onnx(TP.STRING) == np.dtype(object)
    s = ok.Input("s", ("N",), dtype="string")
    assert s.dtype == np.dtype(object)


def test_string_ops_built_with_onnxkit():
    """Strings flow through onnxkit's own ops where ONNX takes them: ==, cat, indexing, reshape, Cast."""
    s = ok.tensor(np.array(["ab", "cd", "ab"]))
    assert (s == "ab").numpy().tolist() == [True, False, True]
    assert ok.cat([s, s]).numpy().tolist() == ["ab", "cd", "ab"] * 2
    assert s[1].numpy() == "cd"
    assert s.reshape(3, 1).numpy().shape == (3, 1)
    x = ok.tensor(np.array([1.5, 2.0], np.float32))
    text = x.to("string")
    assert text.dtype == np.dtype(object) and text.numpy().tolist() == ["1.5", "2"]
    assert text.float().numpy().tolist() == [1.5, 2.0]


@pytest.mark.parametrize("make, op", [
    (lambda s: s + 1, "Add"),
    (lambda s: s * 2.5, "Mul"),
    (lambda s: s - ok.tensor(np.ones(2, np.float32)), "Sub"),
    (lambda s: ok.maximum(s, s), "Max"),
])
def test_arithmetic_on_strings_names_the_op_and_dtype(make, op):
    imp = ok.load(_concat_regex())
    mail, _ = imp(_strings("a", "b"))
    with pytest.raises(TypeError, match=rf"ONNX op {op} does not take string tensors: input \d .*dtype object "
                                        r"\(ONNX STRING\)"):
        make(mail)


def test_no_gradients_through_strings():
    with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients, got object"):
        ok.tensor(np.array(["a"]), requires_grad=True)
    x = ok.tensor(np.array([1.5, 2.0], np.float32), requires_grad=True)
    text = x.to("string")
    assert not text.requires_grad  # a string value carries no gradient: the chain through it is cut
    with pytest.raises(RuntimeError, match=r"does not require grad: Tensor\(Cast, .*dtype=object\)"):
        ok.grad(text, [x])


# -- sequences and maps ----------------------------------------------------------------------------
def _sequences():
    """SplitToSequence -> a seq(tensor(float)) graph output, and ConcatFromSequence of it (a tensor)."""
    return _model(
        [helper.make_node("SplitToSequence", ["x"], ["parts"], axis=0),
         helper.make_node("ConcatFromSequence", ["parts"], ["flat"], axis=1),
         helper.make_node("SequenceLength", ["parts"], ["n"])],
        [_vi("x", TP.FLOAT, [3, 2])],
        [helper.make_tensor_sequence_value_info("parts", TP.FLOAT, [1, 2]), _vi("flat", TP.FLOAT, [1, 6]),
         _vi("n", TP.INT64, [])])


def test_sequence_values_pass_through_and_export_with_their_type():
    model = _sequences()
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    want = _ort(model, {"x": x})
    imp = ok.load(model)
    parts, flat, n = imp(x)
    got = parts.numpy()
    assert isinstance(got, list) and len(got) == len(want[0])
    for g, w in zip(got, want[0]):
        _equal(g, w)
    _equal(flat.numpy(), want[1])
    _equal(n.numpy(), want[2])
    again = ok.export(imp)
    onnx.checker.check_model(again, full_check=True)
    out = {o.name: o for o in again.graph.output}
    assert out["parts"].type.WhichOneof("value") == "sequence_type"
    res = ok.Session(again).run({"x": x})
    for g, w in zip(res["parts"], want[0]):
        _equal(g, w)


def test_sequence_inputs_are_refused_with_the_reason():
    model = _model([helper.make_node("SequenceLength", ["s"], ["n"])],
                   [helper.make_tensor_sequence_value_info("s", TP.FLOAT, None)], [_vi("n", TP.INT64, [])])
    with pytest.raises(TypeError, match=r"input 's' is a sequence \(seq\(tensor\(float\)\)\), not a tensor"):
        ok.load(model)([np.ones(2, np.float32)])


@pytest.mark.parametrize("fn", [lambda s: s.exp(), lambda s: s / 2, lambda s: s.sum(), lambda s: s.prod()])
def test_math_that_would_cast_a_string_raises(fn):
    s = ok.tensor(np.array(["1", "2"], dtype=object))
    with pytest.raises(TypeError, match="string tensors"):
        fn(s)
