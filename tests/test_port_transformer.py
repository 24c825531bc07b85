"""The porting story for a small attention model (Embedding, LayerNorm, attention by matmul and
softmax with a causal mask, GELU MLP, tied-free head, AdamW + clip_grad_norm_): same source for torch
and onnxkit, same trajectory."""
import math

import numpy as np
import torch

import onnxkit as ok


def make_model(lib, nn, F, vocab=11, d=16, heads=2, seq=6):
    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            mask = np.triu(np.full((seq, seq), -1e9, np.float32), 1)
            self.register_buffer("mask", lib.tensor(mask))

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(x).chunk(3, dim=-1)
            q = q.reshape(b, t, heads, d // heads).transpose(1, 2)
            k = k.reshape(b, t, heads, d // heads).transpose(1, 2)
            v = v.reshape(b, t, heads, d // heads).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) / math.sqrt(d // heads) + self.mask
            y = F.softmax(att, dim=-1) @ v
            return self.proj(y.transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = Attention()
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, d)
            self.pos = nn.Parameter(lib.tensor(np.random.default_rng(1).standard_normal((seq, d)).astype(np.float32) * 0.02))
            self.blocks = nn.ModuleList([Block(), Block()])
            self.ln = nn.LayerNorm(d)
            self.head = nn.Linear(d, vocab, bias=False)

        def forward(self, idx):
            x = self.tok(idx) + self.pos
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.ln(x))

    return LM()


def run(lib, nn, F, optim, clip, model, x, y, steps):
    opt = optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        logits = model(lib.tensor(x))
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), lib.tensor(y).reshape(-1))
        loss.backward()
        clip(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses


def test_attention_lm_same_trajectory():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 11, (4, 6))
    y = np.roll(x, -1, axis=1)
    torch.manual_seed(0)
    tm = make_model(torch, torch.nn, torch.nn.functional)
    om = make_model(ok, ok.nn, ok.nn.functional)
    om.load_state_dict(tm.state_dict())
    t = run(torch, torch.nn, torch.nn.functional, torch.optim, torch.nn.utils.clip_grad_norm_, tm, x, y, 6)
    o = run(ok, ok.nn, ok.nn.functional, ok.optim, ok.nn.utils.clip_grad_norm_, om, x, y, 6)
    np.testing.assert_allclose(o, t, rtol=2e-4, atol=2e-5)
    for k, v in tm.state_dict().items():
        got, want = om.state_dict()[k], v.numpy()
        if k.endswith("attn.qkv.bias"):  # the key bias has an exactly-zero gradient (softmax is shift
            got, want = np.delete(got, np.s_[16:32]), np.delete(want, np.s_[16:32])  # invariant): Adam amplifies rounding noise
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4, err_msg=k)
    model = ok.export(om, [ok.Input("idx", ("B", 6), "int64")])
    with torch.no_grad():
        want = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ok.Session(model).run({"idx": x})["output"], want, rtol=1e-3, atol=1e-4)
