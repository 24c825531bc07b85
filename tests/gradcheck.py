"""Finite-difference gradient checks in float64 (test helper).

`gradcheck(fn, inputs)` builds fn on float64 leaves, differentiates a random projection of its
output with ok.grad, emits ONE model computing (projection, *gradients) and compares the analytic
gradients with central differences. Runs on onnx.reference.ReferenceEvaluator by default, since
onnxruntime's CPU provider lacks float64 kernels for Conv, pools, Erf, Elu and more."""
import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

import onnxkit as ok
from onnxkit.emit import build_model


def compile_fn(outputs, leaves, runtime="reference"):
    fed = {id(t): f"in{i}" for i, t in enumerate(leaves)}
    model, _ = build_model(outputs, fed=fed)
    onnx.checker.check_model(model, full_check=True)
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node), "non-standard op emitted"
    names = [f"in{i}" for i in range(len(leaves))]
    used = {i.name for i in model.graph.input}  # leaves the outputs do not read are not graph inputs

    def feeds(arrays):
        return {n: a for n, a in zip(names, arrays) if n in used}
    if runtime == "reference":
        sess = ReferenceEvaluator(model)
        return lambda arrays: sess.run(None, feeds(arrays))
    s = ok.Session(model, device="cpu")
    return lambda arrays: list(s.run(feeds(arrays)).values())


def gradcheck(fn, inputs, eps=1e-3, atol=1e-5, rtol=1e-4, runtime="reference", wrt=None, seed=0):
    """Check ok.grad of fn against central differences. `inputs`: numpy arrays (float ones are
    made float64 and differentiated unless `wrt` lists the indices to differentiate)."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(x, np.float64) if np.asarray(x).dtype.kind == "f" else np.asarray(x) for x in inputs]
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else list(wrt)
    leaves = [ok.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    out = fn(*leaves)
    outs = [out] if isinstance(out, ok.Tensor) else [o for o in out if o is not None]
    proj = None
    for o in outs:
        w = ok.tensor(rng.standard_normal([int(d) for d in o.shape]).astype(np.float64))
        term = (o.double() * w).sum() if o.dtype != np.float64 else (o * w).sum()
        proj = term if proj is None else proj + term
    grads = ok.grad(proj, [leaves[i] for i in wrt], allow_unused=True)
    run = compile_fn([proj] + [g if g is not None else proj * 0 for g in grads], leaves, runtime)
    analytic = run(arrays)[1:]
    for k, i in enumerate(wrt):
        if grads[k] is None:
            analytic[k] = np.zeros_like(arrays[i])
        numeric = np.zeros_like(arrays[i])
        flat = numeric.reshape(-1)
        for j in range(arrays[i].size):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[i].reshape(-1)[j] += eps
            minus[i].reshape(-1)[j] -= eps
            flat[j] = (run(plus)[0] - run(minus)[0]) / (2 * eps)
        np.testing.assert_allclose(np.asarray(analytic[k]).reshape(numeric.shape), numeric, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {i}")
    return True


def hvp_check(fn, x, v, torch_fn):
    """Hessian-vector product of sum(fn(x)) against torch's create_graph=True double backward."""
    import torch
    xt = torch.tensor(x, requires_grad=True)
    gt, = torch.autograd.grad(torch_fn(xt).sum(), [xt], create_graph=True)
    hvt, = torch.autograd.grad((gt * torch.tensor(v)).sum(), [xt])
    xo = ok.tensor(x, requires_grad=True)
    g, = ok.grad(fn(xo).sum(), [xo])
    hv, = ok.grad((g * ok.tensor(v)).sum(), [xo])
    np.testing.assert_allclose(hv.numpy(), hvt.detach().numpy(), rtol=1e-4, atol=1e-5)
