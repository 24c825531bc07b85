#!/usr/bin/env python
"""Write docs/torch_coverage.md: which of torch's own API lists onnxkit covers under the same name.

The lists come from torch itself (dir(torch.Tensor), torch.nn.functional, torch.nn.modules.__all__,
torch.overrides' lists of torch.* functions); a name is supported when onnxkit has it in the matching
place (a Tensor attribute, onnxkit.nn.functional, onnxkit.nn, onnxkit). Unsupported names get a reason
from REASONS by category, else "not yet implemented".

    python scripts/torch_coverage.py [--out docs/torch_coverage.md]
"""
import argparse
import inspect
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REASON = "not yet implemented"

# (reason, pattern over the torch name); the first match wins, so narrower categories come first
REASONS = [
    ("symbolic-shape and compiler internals (torch.fx / torch.export)", r"^sym_|^compile$|^vmap$"),
    ("quantization", r"quantiz|fake_quant|^q_|int_repr|qscheme|fbgemm|qparams|^dequantize$"),
    ("no ONNX op: sparse tensors", r"sparse|coalesce|^to_dense$|^(indices|values|crow_indices|col_indices|"
                                   r"ccol_indices|row_indices)$|_nnz$|^dense_dim$|^smm$|^[dh]smm$|^saddmm$|"
                                   r"^sspaddmm$|^to_sparse|^is_sparse|_indices_copy$|^values_copy$|^sparse_dim$"),
    ("complex dtypes not in ONNX ops onnxruntime runs", r"complex|^real$|^imag$|conj|^angle$|^polar$|^i?stft$|"
                                                        r"fft|^is_neg$|^resolve_neg$|^cfloat$|^cdouble$|^chalf$|^H$|"
                                                        r"^mH$|^adjoint$|^view_as_real"),
    ("nested (jagged) tensors not modelled", r"nested|^to_padded_tensor$"),
    ("distributed/cuda-specific", r"cuda|^(is_)?(mps|xpu|hip|ipu|mtia|maia|xla|meta|vulkan)$|miopen|cudnn|"
                                  r"mkldnn|record_stream|^is_distributed$|^get_device$|^pin_memory$|^is_pinned$|"
                                  r"share_memory|^is_shared$|dlpack|^SyncBatchNorm$|"
                                  r"^batch_norm_(gather|backward|elemt|stats|update)"),
    ("views/storage aliasing not modelled", r"storage|stride|data_ptr|as_strided|^set_$|resize|"
                                            r"^(?!index_)\w+_copy$|^is_contiguous$|^is_set_to$|^element_size$|"
                                            r"^nbytes$|^itemsize$|^unsafe_|^slice_inverse$|^is_view$|"
                                            r"^untyped|^frombuffer$|^from_file$|^empty_strided$|^empty_permuted$|"
                                            r"^dim_order$"),
    ("named tensors not modelled", r"^(names|rename_?|refine_names|align_to|align_as|has_names)$"),
    ("no ONNX op: matrix decompositions", r"cholesky|^lu(_solve|_unpack)?$|^qr$|svd|eig|lobpcg|geqrf|orgqr|ormqr|"
                                          r"triangular_solve|pinverse|pca_lowrank|matrix_exp|slogdet|logdet|"
                                          r"^inverse$|lstsq"),
    ("no ONNX op: special functions (need a series approximation)", r"gamma|^digamma|^erfinv|^i0$|zeta|bessel|"
                                                                     r"^sinc$"),
]
_REASONS = [(reason, re.compile(pattern)) for reason, pattern in REASONS]

CREATION = re.compile(r"^(arange|range|linspace|logspace|eye|empty|zeros|ones|full|rand|randn|randint|randperm|"
                      r"normal|tensor|as_tensor|asarray|from_numpy|scalar_tensor|tril_indices|triu_indices|vander|"
                      r"\w+_window|empty_strided|empty_permuted|frombuffer|randint_like|sparse_\w+_tensor)$")


def reason_for(name):
    """Why onnxkit lacks `name`: the first matching category, else the default."""
    return next((reason for reason, pattern in _REASONS if pattern.search(name)), DEFAULT_REASON)


def _public(names):
    return sorted({n for n in names if not n.startswith("_")})


def torch_lists(torch):
    """{section title: (torch's names, where onnxkit must have them, how that place is written)}."""
    import torch.nn.functional as F
    overrides = torch.overrides.get_testing_overrides()
    ignored = torch.overrides.get_ignored_functions()

    def top_level(funcs):
        return _public(f.__name__ for f in funcs if getattr(torch, getattr(f, "__name__", ""), None) is f)

    functional = _public(n for n in dir(F) if callable(getattr(F, n)) and not inspect.isclass(getattr(F, n))
                         and getattr(getattr(F, n), "__module__", "") in ("torch.nn.functional", "torch",
                                                                           "torch._C._nn"))
    return {
        "torch.Tensor methods and attributes": (_public(dir(torch.Tensor)), "tensor", "`ok.Tensor.NAME`"),
        "torch.nn.functional": (functional, "functional", "`onnxkit.nn.functional.NAME`"),
        "torch.nn modules": (_public(torch.nn.modules.__all__), "nn", "`onnxkit.nn.NAME`"),
        "torch.* tensor functions": (top_level(overrides), "top", "`onnxkit.NAME`"),
        "torch.* creation functions": ([n for n in top_level(ignored) if CREATION.match(n)], "top", "`onnxkit.NAME`"),
    }


def onnxkit_places():
    """{place: object whose attributes are what onnxkit has there}."""
    import onnxkit
    import onnxkit.nn
    import onnxkit.nn.functional
    return {"tensor": onnxkit.Tensor, "functional": onnxkit.nn.functional, "nn": onnxkit.nn, "top": onnxkit}


def coverage(torch):
    """[(section, where, [(name, supported, reason)])] for every section of torch_lists."""
    places = onnxkit_places()
    out = []
    for section, (names, place, where) in torch_lists(torch).items():
        rows = []
        for name in names:
            supported = hasattr(places[place], name)
            rows.append((name, supported, "" if supported else reason_for(name)))
        out.append((section, where, rows))
    return out


def _pct(a, b):
    return f"{100.0 * a / b:.1f}%" if b else "-"


def render(sections, torch_version, onnxkit_version):
    """The markdown document: coverage figures first, then unsupported counts by reason, then every row."""
    lines = ["# torch API coverage", "",
             f"Generated by `python scripts/torch_coverage.py` against torch {torch_version} and onnxkit "
             f"{onnxkit_version}; do not edit by hand. A torch name counts as supported when onnxkit has the same "
             "name in the matching place; unsupported names carry a reason by category.", "",
             "| section | supported | total | coverage |", "|---|---:|---:|---:|"]
    total_s = total_n = 0
    for section, _, rows in sections:
        s = sum(1 for _, ok_, _ in rows if ok_)
        total_s, total_n = total_s + s, total_n + len(rows)
        lines.append(f"| {section} | {s} | {len(rows)} | {_pct(s, len(rows))} |")
    lines += [f"| **all** | **{total_s}** | **{total_n}** | **{_pct(total_s, total_n)}** |", "",
              "## Unsupported, by reason", "", "| reason | " + " | ".join(s for s, _, _ in sections) + " |",
              "|---|" + "---:|" * len(sections)]
    reasons = [DEFAULT_REASON] + [r for r, _ in REASONS]
    for reason in reasons:
        counts = [sum(1 for _, ok_, r in rows if not ok_ and r == reason) for _, _, rows in sections]
        if any(counts):
            lines.append(f"| {reason} | " + " | ".join(str(c) for c in counts) + " |")
    for section, where, rows in sections:
        s = sum(1 for _, ok_, _ in rows if ok_)
        lines += ["", f"## {section}", "", f"{s} of {len(rows)} supported ({_pct(s, len(rows))}); supported means "
                  f"{where.replace('NAME', 'name')} exists.", "", "| name | onnxkit | reason |", "|---|---|---|"]
        lines += [f"| `{name}` | {'yes' if ok_ else 'no'} | {reason} |" for name, ok_, reason in rows]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "torch_coverage.md"),
                        help="where to write the markdown (default: docs/torch_coverage.md)")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)  # the checkout's onnxkit, installed or not
    import torch
    import onnxkit
    sections = coverage(torch)
    text = render(sections, torch.__version__, onnxkit.__version__)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.out)
    for section, _, rows in sections:
        s = sum(1 for _, ok_, _ in rows if ok_)
        print(f"{section}: {s}/{len(rows)}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
