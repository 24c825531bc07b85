"""Transformer layers, nn.Transformer and RMSNorm against torch: parity rows (the harness of
test_attention: forward, gradients w.r.t. inputs and every parameter, state_dict keys, export with
symbolic batch and sequence dims run at two lengths), norm_first, activations as strings and
callables, every mask kind, torch's nested-tensor inference path, dropout in train mode."""
import numpy as np
import pytest
import torch

import onnxkit as ok
from onnxkit import nn
from test_attention import Case, check_case, causal_mask

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's nested-tensor and mask-type notices

D, H, FF = 8, 2, 16
SEQ, BATCH = ("L", "N", D), ("N", "L", D)
TGT_SEQ, TGT_BATCH = ("S", "N", D), ("N", "S", D)


def enc_layer(**kw):
    kw.setdefault("dropout", 0.0)
    return lambda nn: nn.TransformerEncoderLayer(D, H, FF, **kw)


def dec_layer(**kw):
    kw.setdefault("dropout", 0.0)
    return lambda nn: nn.TransformerDecoderLayer(D, H, FF, **kw)


def encoder(layers=2, norm=True, **kw):
    kw.setdefault("dropout", 0.0)
    return lambda nn: nn.TransformerEncoder(nn.TransformerEncoderLayer(D, H, FF, **kw), layers,
                                            nn.LayerNorm(D) if norm else None)


def decoder(layers=2, **kw):
    kw.setdefault("dropout", 0.0)
    return lambda nn: nn.TransformerDecoder(nn.TransformerDecoderLayer(D, H, FF, **kw), layers, nn.LayerNorm(D))


def transformer(**kw):
    kw.setdefault("dropout", 0.0)
    return lambda nn: nn.Transformer(D, H, 1, 1, FF, **kw)


def kw_call(**names):
    """Call with xs[0] (and xs[1] for decoders) positionally, then keyword masks from the given input indices."""
    positional = names.pop("_positional", 1)
    return lambda m, xs, F: m(*xs[:positional], **{k: xs[i] for k, i in names.items()})


CASES = [
    # ----- TransformerEncoderLayer ---------------------------------------------------------------------
    Case("enc-layer", enc_layer(), [("x", SEQ)]),
    Case("enc-layer-batch-first-norm-first-gelu", enc_layer(batch_first=True, norm_first=True, activation="gelu"),
         [("x", BATCH)]),
    Case("enc-layer-callable-activation", lambda nn: nn.TransformerEncoderLayer(
        D, H, FF, 0.0, activation=nn.GELU(), batch_first=True), [("x", BATCH)]),
    Case("enc-layer-functional-activation", lambda nn: nn.TransformerEncoderLayer(
        D, H, FF, 0.0, activation=nn.functional.silu, layer_norm_eps=1e-3), [("x", SEQ)]),
    Case("enc-layer-src-mask", enc_layer(), [("x", SEQ), ("fmask", ("L", "L"))], kw_call(src_mask=1)),
    Case("enc-layer-bool-mask-padding", enc_layer(batch_first=True),
         [("x", BATCH), ("masked", ("L", "L")), ("masked", ("N", "L"))],
         kw_call(src_mask=1, src_key_padding_mask=2)),
    Case("enc-layer-padding", enc_layer(batch_first=True), [("x", BATCH), ("masked", ("N", "L"))],
         kw_call(src_key_padding_mask=1)),
    Case("enc-layer-is-causal", enc_layer(batch_first=True, norm_first=True), [("x", BATCH)],
         lambda m, xs, F: m(xs[0], src_mask=causal_mask(m, xs[0].shape[1]), is_causal=True)),
    Case("enc-layer-no-bias", enc_layer(bias=False), [("x", SEQ)]),
    Case("enc-layer-train", enc_layer(batch_first=True), [("x", BATCH)], modes=("train", "eval")),
    Case("enc-layer-unbatched", enc_layer(), [("x", ("L", D))]),
    # ----- TransformerEncoder ------------------------------------------------------------------------
    Case("encoder", encoder(), [("x", SEQ)]),
    Case("encoder-no-norm-causal", encoder(norm=False, batch_first=True),
         [("x", BATCH), ("causal", ("L", "L"))], kw_call(mask=1)),
    Case("encoder-nested-padding", encoder(batch_first=True),  # torch's inference fast path: zeros at padding
         [("x", BATCH), ("right", ("N", "L"))], kw_call(src_key_padding_mask=1)),
    Case("encoder-unaligned-padding", encoder(batch_first=True),  # not left-aligned: torch's ordinary path
         [("x", BATCH), ("masked", ("N", "L"))], kw_call(src_key_padding_mask=1)),
    Case("encoder-padding-seq-first", encoder(), [("x", SEQ), ("right", ("N", "L"))],
         kw_call(src_key_padding_mask=1)),
    Case("encoder-train", encoder(batch_first=True, norm_first=True), [("x", BATCH), ("masked", ("N", "L"))],
         kw_call(src_key_padding_mask=1), modes=("train", "eval")),
    # ----- TransformerDecoderLayer / TransformerDecoder ------------------------------------------------
    Case("dec-layer", dec_layer(), [("x", TGT_SEQ), ("x", SEQ)], kw_call(_positional=2)),
    Case("dec-layer-norm-first-masks", dec_layer(batch_first=True, norm_first=True, activation="gelu"),
         [("x", TGT_BATCH), ("x", BATCH), ("causal", ("S", "S")), ("masked", ("N", "S")), ("masked", ("N", "L"))],
         kw_call(_positional=2, tgt_mask=2, tgt_key_padding_mask=3, memory_key_padding_mask=4)),
    Case("dec-layer-memory-mask", dec_layer(), [("x", TGT_SEQ), ("x", SEQ), ("fmask", ("S", "L"))],
         kw_call(_positional=2, memory_mask=2)),
    Case("dec-layer-tgt-is-causal", dec_layer(batch_first=True), [("x", TGT_BATCH), ("x", BATCH)],
         lambda m, xs, F: m(xs[0], xs[1], tgt_mask=causal_mask(m, xs[0].shape[1]), tgt_is_causal=True)),
    Case("decoder", decoder(), [("x", TGT_SEQ), ("x", SEQ), ("causal", ("S", "S"))],
         kw_call(_positional=2, tgt_mask=2)),
    Case("decoder-train", decoder(batch_first=True), [("x", TGT_BATCH), ("x", BATCH)], kw_call(_positional=2),
         modes=("train",)),
    # ----- Transformer -----------------------------------------------------------------------------------
    Case("transformer", transformer(), [("x", SEQ), ("x", TGT_SEQ)], kw_call(_positional=2)),
    Case("transformer-batch-first-masks", transformer(batch_first=True),
         [("x", BATCH), ("x", TGT_BATCH), ("right", ("N", "L")), ("masked", ("N", "S"))],
         lambda m, xs, F: m(xs[0], xs[1], tgt_mask=causal_mask(m, xs[1].shape[1]), src_key_padding_mask=xs[2],
                            tgt_key_padding_mask=xs[3], memory_key_padding_mask=xs[2])),
    Case("transformer-norm-first-gelu", transformer(norm_first=True, activation="gelu"),
         [("x", SEQ), ("x", TGT_SEQ), ("fmask", ("L", "L")), ("fmask", ("S", "L"))],
         kw_call(_positional=2, src_mask=2, memory_mask=3)),
    # ----- RMSNorm ---------------------------------------------------------------------------------------
    Case("rmsnorm", lambda nn: nn.RMSNorm(D), [("x", BATCH)]),
    Case("rmsnorm-2d-eps", lambda nn: nn.RMSNorm((3, D), eps=1e-3), [("x", ("N", 3, D))]),
    Case("rmsnorm-no-affine", lambda nn: nn.RMSNorm(D, elementwise_affine=False), [("x", SEQ)]),
    Case("rms_norm-functional", None, [("x", BATCH), ("x", (D,))],
         lambda m, xs, F: F.rms_norm(xs[0], (D,), xs[1], eps=1e-6)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_parity(case):
    check_case(case)


def test_generate_square_subsequent_mask():
    want = torch.nn.Transformer.generate_square_subsequent_mask(5).numpy()
    np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(5).numpy(), want)
    np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(5, dtype="float64").numpy(), want)


def test_state_dicts_and_init_follow_torch():
    for build in (enc_layer(), dec_layer(), encoder(), decoder(), transformer(),
                  lambda nn: nn.Transformer(16, 4, 2, 1, 32, custom_decoder=None, norm_first=True, bias=False)):
        t, o = build(torch.nn), build(nn)
        assert [(k, tuple(v.shape)) for k, v in t.state_dict().items()] == \
            [(k, v.shape) for k, v in o.state_dict().items()]
    o = nn.Transformer(32, 4, 1, 1, 64)
    w = o.encoder.layers[0].linear1.weight.numpy()  # xavier-uniform re-init of every matrix
    bound = np.sqrt(6 / (32 + 64))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 3)
    a, b = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert a is not b and np.array_equal(a.numpy(), b.numpy())  # deep copies, as torch's _get_clones


def test_dropout_in_train_mode():
    """Encoder-layer dropout: train-mode outputs differ between calls, eval is deterministic and the
    training graph (Trainer) changes its loss between steps at lr 0."""
    ok.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.5, batch_first=True)
    x = ok.tensor(np.random.default_rng(0).standard_normal((4, 10, 16)).astype(np.float32))
    a, b = layer(x).numpy(), layer(x).numpy()
    assert np.abs(a - b).max() > 0.1
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())
    layer.train()
    tr = ok.Trainer(layer, nn.MSELoss(), ok.optim.SGD(layer.parameters(), lr=0.0))
    xs = x.numpy()
    losses = [tr.step(xs, xs) for _ in range(3)]
    assert len(set(losses)) == 3


def test_activation_and_shape_errors():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    m = nn.Transformer(8, 2, 1, 1, 16)
    with pytest.raises(RuntimeError, match="batch number of src and tgt must be equal"):
        m(ok.randn(3, 2, 8), ok.randn(4, 3, 8))
    with pytest.raises(RuntimeError, match="feature number of src and tgt must be equal to d_model"):
        m(ok.randn(3, 2, 8), ok.randn(4, 2, 6))


def _bench_causal_lm():
    """bench/train_step.py's GPT-style LM definition (written once for torch and onnxkit)."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "bench" / "train_step.py"
    spec = importlib.util.spec_from_file_location("bench_train_step", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.causal_lm


def test_causal_lm_trainer_follows_torch():
    """The bench's causal LM at small size: ok.Trainer steps (one training graph, AdamW) follow torch
    eager's loss trajectory, and the trained weights agree."""
    causal_lm = _bench_causal_lm()
    kw = dict(vocab=40, d_model=16, layers=2, heads=2, seq=12)
    torch.manual_seed(0)
    tm, om = causal_lm(torch, **kw), causal_lm(ok, **kw)
    om.load_state_dict(tm.state_dict())
    tokens = np.random.default_rng(0).integers(0, 40, (4, 11))
    x, y = tokens[:, :-1], tokens[:, 1:].reshape(-1)  # sequence 10 < the mask buffer's 12: sliced
    topt = torch.optim.AdamW(tm.parameters(), lr=3e-3)
    tr = ok.Trainer(om, nn.CrossEntropyLoss(), ok.optim.AdamW(om.parameters(), lr=3e-3))
    want = []
    for _ in range(6):
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tm(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        topt.step()
        want.append(loss.item())
    got = [tr.step(x, y) for _ in range(6)]
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
    sd = om.state_dict()
    for k, v in tm.state_dict().items():
        if not k.endswith("in_proj_bias"):  # the key bias: zero gradient, Adam amplifies rounding noise
            np.testing.assert_allclose(sd[k], v.numpy(), rtol=1e-3, atol=1e-4, err_msg=k)


def test_rms_norm_gradcheck_float64():
    from gradcheck import gradcheck
    rng = np.random.default_rng(0)
    gradcheck(lambda x, w: nn.functional.rms_norm(x, (3,), w), [rng.standard_normal(s) for s in ((2, 3), (3,))],
              eps=1e-5, atol=1e-6, rtol=1e-5)
    x = ok.tensor(rng.standard_normal((2, 5)))  # eps=None: the dtype's machine epsilon, as torch
    want = torch.nn.functional.rms_norm(torch.tensor(x.numpy()), (5,)).numpy()
    np.testing.assert_allclose(nn.RMSNorm(5, dtype="float64")(x).numpy(), want, rtol=1e-12)
