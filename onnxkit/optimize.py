"""Offline graph optimization of any ONNX model (`onnx-run optimize`): onnxruntime's optimizer
(constant folding, Identity/Dropout and dead-node removal, Conv/BatchNorm fusion, ...), a
BatchNorm-into-Gemm fold, opset conversion, and, when onnxscript is installed, onnxscript's
optimizer first (constant and shape-computation folding through symbolic dims, which onnxruntime's
offline pass leaves, plus its default rewrite rules). A result is kept only when it passes the
checks, has no more nodes and gives the same outputs; of the candidates (with and without
onnxscript) the one with the fewest nodes wins."""
import os
import tempfile

import numpy as np
import onnx

from .model_files import graphs, problems

LEVELS = {"basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def node_count(model):
    return sum(len(g.node) for g in graphs(model.graph))


def _attr(node, name, default):
    a = next((a for a in node.attribute if a.name == name), None)
    return default if a is None else onnx.helper.get_attribute_value(a)


def fold_gemm_batchnorm(model):
    """Fold an inference BatchNormalization into the Gemm before it (onnxruntime folds BatchNorm into
    a Conv but not into a Gemm): W and C absorb the scale and shift; standard ops only, top-level
    graph. Returns how many were folded."""
    from onnx import numpy_helper
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    readers = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    outputs = {o.name for o in g.output}
    producer = {o: n for n in g.node for o in n.output}
    removed = []
    for bn in g.node:
        if bn.op_type != "BatchNormalization" or bn.domain not in ("", "ai.onnx") or len(bn.output) != 1 \
                or _attr(bn, "training_mode", 0) or not all(n in inits for n in bn.input[1:5]):
            continue
        gemm = producer.get(bn.input[0])
        if gemm is None or gemm.op_type != "Gemm" or gemm.domain not in ("", "ai.onnx") or _attr(gemm, "transA", 0) \
                or readers.get(gemm.output[0]) != 1 or gemm.output[0] in outputs \
                or not all(n in inits and readers.get(n) == 1 for n in gemm.input[1:] if n):
            continue
        w = numpy_helper.to_array(inits[gemm.input[1]])
        trans_b = _attr(gemm, "transB", 0)
        if w.ndim != 2 or w.dtype.kind != "f":
            continue
        out = w.shape[0] if trans_b else w.shape[1]
        has_c = len(gemm.input) > 2 and gemm.input[2]
        c = numpy_helper.to_array(inits[gemm.input[2]]).astype(np.float64) if has_c else np.zeros(out)
        s, b, m, v = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
        if any(t.shape != (out,) for t in (s, b, m, v)) or c.size not in (1, out):
            continue
        scale = s / np.sqrt(v + _attr(bn, "epsilon", 1e-5))
        w2 = _attr(gemm, "alpha", 1.0) * w.astype(np.float64) * (scale[:, None] if trans_b else scale[None, :])
        c2 = (_attr(gemm, "beta", 1.0) * np.broadcast_to(c.reshape(-1), (out,)) - m) * scale + b
        names = (f"{gemm.input[1]}/bn_folded", f"{bn.output[0]}/bn_folded_bias")
        g.initializer.extend([numpy_helper.from_array(w2.astype(w.dtype), names[0]),
                              numpy_helper.from_array(c2.astype(w.dtype), names[1])])
        stale = [n for n in gemm.input[1:] if n]
        x = gemm.input[0]
        del gemm.input[:]
        gemm.input.extend([x, *names])
        gemm.output[0] = bn.output[0]
        kept = [a for a in gemm.attribute if a.name not in ("alpha", "beta")]
        del gemm.attribute[:]
        gemm.attribute.extend(kept)
        removed.append(bn)
        stale += [n for n in bn.input[1:5] if readers.get(n) == 1]
        for t in [t for t in g.initializer if t.name in stale]:
            g.initializer.remove(t)
    for bn in removed:
        g.node.remove(bn)
    return len(removed)


def ort_optimize(model, level):
    """The model as onnxruntime's optimizer rewrites it at `level` on the CPU provider. `basic` keeps
    to standard ops; `extended`/`all` may write com.microsoft fused ops."""
    import onnxruntime as ort
    from onnxkit.runtime import session_options
    so = session_options()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    with tempfile.TemporaryDirectory() as d:
        so.optimized_model_filepath = os.path.join(d, "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
        return drop_unused_opsets(onnx.load(so.optimized_model_filepath))


def onnxscript_optimize(model):
    """onnxscript's optimizer (constant folding, shape-op folding through symbolic dims, no-op and
    dead-code removal, its default rewrite rules, function inlining) on a copy of `model`; None when
    onnxscript is not installed (it comes with the `interchange` extra)."""
    try:
        from onnxscript import optimizer
    except ImportError:
        return None
    m = onnx.ModelProto()
    m.CopyFrom(model)
    return optimizer.optimize(m)


def _standard_only(model):
    return all(n.domain in ("", "ai.onnx") for g in graphs(model.graph) for n in g.node)


def drop_unused_opsets(model):
    """Remove the opset imports no node uses (onnxruntime's optimized-model writer imports every
    domain it knows, com.microsoft included, even when no node of it is left). In place."""
    used = {n.domain or "" for g in graphs(model.graph) for n in g.node}
    for f in model.functions:
        used.add(f.domain or "")
        used.update(n.domain or "" for n in f.node)
    used = {"" if d == "ai.onnx" else d for d in used} | {""}
    keep = [o for o in model.opset_import if (o.domain or "") in used or (o.domain == "ai.onnx" and "" in used)]
    if len(keep) != len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(keep)
    return model


def same_outputs(a, b, rtol=1e-4, atol=1e-5, seed=0):
    """Whether two models give the same outputs on the same random (seeded) inputs; the worst
    mismatch as a string when not."""
    import onnxkit as ok
    sa, sb = ok.Session(a, device="cpu"), ok.Session(b, device="cpu")
    feeds = sa.random_feeds(batch=2, seed=seed)
    ra, rb = sa.run(feeds), sb.run(feeds)
    for name, va in ra.items():
        vb = rb.get(name)
        if vb is None or va.shape != vb.shape or va.dtype != vb.dtype:
            return f"output {name!r} changed shape or dtype"
        if va.dtype.kind in "fc" and not np.allclose(va, vb, rtol=rtol, atol=atol, equal_nan=True):
            return f"output {name!r} differs by up to {np.nanmax(np.abs(va - vb)):.3g}"
        if va.dtype.kind not in "fc" and not np.array_equal(va, vb):
            return f"output {name!r} differs"
    return None


def optimize(model, level="basic", opset=None):
    """(optimized model, notes). Each candidate (onnxruntime's optimizer alone; onnxscript's optimizer
    then onnxruntime's, when onnxscript is installed) is kept only when it has no more nodes than the
    input, passes check, gives the same outputs and, at `basic`, keeps to standard ops; the one
    with the fewest nodes wins, else the input graph is returned unchanged (with notes saying why)."""
    notes = []
    if opset is not None:
        current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if current != opset:
            try:
                model = onnx.version_converter.convert_version(model, opset)
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"cannot convert from opset {current} to {opset}: {' '.join(str(e).split())}") from None
            notes.append(f"opset {current} -> {opset}")
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    if fold_gemm_batchnorm(folded):
        notes.append("BatchNormalization folded into Gemm")
    best, best_label, dropped = None, None, []
    try:
        pre = onnxscript_optimize(folded)
    except Exception as e:  # noqa: BLE001  a library's failure only drops its candidate
        pre = None
        dropped.append(f"onnxscript's optimizer failed ({_one_line(e)})")
    # onnxruntime's alone first: onnxscript's result replaces it only with strictly fewer nodes
    candidates = [("onnxruntime's", folded)] + ([("onnxscript's optimizer, then onnxruntime's", pre)]
                                                if pre is not None else [])
    for label, start in candidates:
        try:
            out = ort_optimize(start, level)
        except Exception as e:  # noqa: BLE001
            dropped.append(f"{label} pass failed ({_one_line(e)})")
            continue
        if best is not None and node_count(out) >= node_count(best):
            continue
        why = ("it had more nodes" if node_count(out) > node_count(model)
               else "it wrote non-standard ops" if level == "basic" and not _standard_only(out)
               else next(iter(problems(out)), None) or same_outputs(model, out))
        if why:
            dropped.append(f"{label} rewrite dropped: {why}")
            continue
        best, best_label = out, label
    if best is None:
        errors = problems(model)
        if errors:
            raise ValueError(f"the model does not pass check ({errors[0]})")
        return model, notes + dropped + ["kept the input graph"]
    if pre is not None and best_label.startswith("onnxscript"):
        notes.append("onnxscript's optimizer, then onnxruntime's")
    return best, notes


def _one_line(e):
    return " ".join(str(e).split())[:160]
