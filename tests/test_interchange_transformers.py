"""Hugging Face transformers models (BERT, GPT-2, ViT) built from a tiny config with random weights (no
downloads) and written by torch's exporter (TorchScript path, dynamo=False): import, parity with
torch, export round trip at another batch size, 3 SGD steps equal to torch's, trained weights mapped
back into a transformers state_dict.

Tolerance: float32 on both sides, but the exporter folds constants and fuses differently (Erf-GELU,
LayerNormalization, softmax over a -inf-masked score), so outputs agree to rtol 1e-4, atol 1e-5; losses
after 3 steps rtol 1e-4, atol 1e-5; mapped weights rtol 1e-4, atol 1e-5.
Dropout is 0 in the configs so torch's train-mode steps are deterministic."""
import io
import logging
import warnings

import numpy as np
import onnx
import pytest

import onnxkit as ok
from onnxkit import nn

pytestmark = pytest.mark.interchange
torch = pytest.importorskip("torch", reason="torch is the test oracle: pip install torch==2.13.0 (test extra)")
transformers = pytest.importorskip("transformers", reason="transformers is not installed "
                                                          "(pip install -e '.[interchange]')")

TOL = dict(rtol=1e-4, atol=1e-5)
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="eager")


class _Logits(torch.nn.Module):
    """The model's logits as one tensor output (the exporter's input: plain tensors, no ModelOutput)."""

    def __init__(self, model, names):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *args):
        return self.model(**dict(zip(self.names, args)), return_dict=False)[0]


def _bert():
    cfg = transformers.BertConfig(vocab_size=50, max_position_embeddings=16, type_vocab_size=2, num_labels=3, **SMALL)
    return transformers.BertForSequenceClassification(cfg)


def _gpt2():
    cfg = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=2, n_inner=37,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False,
                                  attn_implementation="eager", tie_word_embeddings=False)
    # untied: torch's exporter folds lm_head's transposed copy of a tied wte into its own initializer, so
    # in the file the two are separate weights and training them can no longer equal torch's tied update
    return transformers.GPT2LMHeadModel(cfg)


def _vit():
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=3, num_labels=3, **SMALL)
    return transformers.ViTForImageClassification(cfg)


def _tokens(n, t, seed):
    return np.random.default_rng(seed).integers(0, 50, (n, t)).astype(np.int64)


def _inputs(kind, n, seed):
    if kind == "bert":
        mask = np.ones((n, 7), np.int64)
        mask[0, 5:] = 0  # padding: the attention mask's Where/-inf path
        return [_tokens(n, 7, seed), mask]
    if kind == "gpt2":  # an explicit mask also keeps transformers' packed-sequence check (aten::diff) out
        mask = np.ones((n, 7), np.int64)
        mask[0, :2] = 0  # left padding
        return [_tokens(n, 7, seed), mask]
    return [np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)]


def _targets(kind, n, seed):
    rng = np.random.default_rng(seed + 100)
    return rng.integers(0, 50, (n, 7)).astype(np.int64) if kind == "gpt2" else rng.integers(0, 3, n).astype(np.int64)


def _distinct(factory):
    """Random weights with no two tensors equal (transformers initialises biases to 0 and LayerNorm
    weights to 1), so a weight the exporter renamed maps back by value without ambiguity."""
    def make():
        m = factory()
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        return m
    return make


FACTORIES = {"bert": _distinct(_bert), "gpt2": _distinct(_gpt2), "vit": _distinct(_vit)}
NAMES = {"bert": ["input_ids", "attention_mask"], "gpt2": ["input_ids", "attention_mask"], "vit": ["pixel_values"]}


@pytest.fixture(scope="module", params=list(FACTORIES))
def exported(request):
    kind = request.param
    torch.manual_seed(0)
    hf = FACTORIES[kind]().eval()
    names = NAMES[kind]
    f = io.BytesIO()
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_Logits(hf, names), tuple(torch.from_numpy(a) for a in _inputs(kind, 2, 0)), f,
                              dynamo=False, opset_version=17, input_names=names, output_names=["logits"],
                              dynamic_axes={**{k: {0: "N"} for k in names}, "logits": {0: "N"}})
    finally:
        logging.disable(logging.NOTSET)
    return kind, hf, onnx.load_from_string(f.getvalue())


def _torch_out(kind, hf, args):
    with torch.no_grad():
        return _Logits(hf, NAMES[kind])(*[torch.from_numpy(a) for a in args]).numpy()


def test_import_matches_torch_and_round_trips(exported):
    kind, hf, model = exported
    imp = ok.load(model)
    ops = {n.op_type for n in model.graph.node}
    assert ops & {"Gather", "MatMul", "Softmax"} and ("Erf" in ops or kind == "gpt2")
    args = _inputs(kind, 3, 1)
    np.testing.assert_allclose(imp(*args).numpy(), _torch_out(kind, hf, args), **TOL)
    again = ok.export(imp, imp.graph_inputs(), output_names=imp.output_names)
    onnx.checker.check_model(again)
    args = _inputs(kind, 5, 2)
    got = ok.Session(again).run(dict(zip(NAMES[kind], args)))["logits"]
    np.testing.assert_allclose(got, _torch_out(kind, hf, args), **TOL)


def _ce(logits, target):
    """Cross entropy over the last dim (GPT-2's per-token logits flattened); the same in both frameworks."""
    v = logits.shape[-1]
    return (logits.reshape(-1, v), target.reshape(-1))


def test_sgd_steps_equal_torch_and_map_back(exported):
    kind, hf, model = exported
    imp = ok.load(model)
    ref = FACTORIES[kind]()
    ref.load_state_dict(hf.state_dict())
    ref.train()
    args, y = _inputs(kind, 4, 3), _targets(kind, 4, 3)
    ce = nn.CrossEntropyLoss()
    imp.train()
    trainer = ok.Trainer(imp, lambda o, t: ce(*_ce(o, t)), ok.optim.SGD(imp.parameters(), lr=0.5))
    opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    ours, theirs = [], []
    for _ in range(3):
        ours.append(trainer.step(*args, y))
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(*_ce(_Logits(ref, NAMES[kind])(*[torch.from_numpy(a) for a in args]),
                                                      torch.from_numpy(y)))
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    np.testing.assert_allclose(ours, theirs, **TOL)
    assert ours[-1] < ours[0], ours
    trainer.sync()
    sd = {k: v for k, v in hf.state_dict().items() if v.dtype.is_floating_point}
    state, unmapped = imp.map_weights(sd)
    assert unmapped == [], unmapped  # every trainable initializer found its transformers name
    back = FACTORIES[kind]()
    back.load_state_dict(hf.state_dict())
    missing, _ = back.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                                      strict=False)
    back.eval()
    ref.eval()
    for k, v in state.items():
        np.testing.assert_allclose(v, ref.state_dict()[k].numpy(), **TOL, err_msg=k)
    imp.eval()
    args = _inputs(kind, 3, 5)
    np.testing.assert_allclose(imp(*args).numpy(), _torch_out(kind, back, args), **TOL)
    np.testing.assert_allclose(_torch_out(kind, back, args), _torch_out(kind, ref, args), **TOL)
