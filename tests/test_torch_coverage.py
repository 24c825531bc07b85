"""scripts/torch_coverage.py writes the coverage doc from torch's own lists."""
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="torch is the test oracle: pip install torch==2.13.0 (test extra)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "torch_coverage.py")


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    out = tmp_path_factory.mktemp("cov") / "torch_coverage.md"
    res = subprocess.run([sys.executable, SCRIPT, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert out.exists()
    return out.read_text()


def test_doc_opens_with_coverage_figures(doc):
    head = doc.split("## ")[0]
    for section in ("torch.Tensor methods and attributes", "torch.nn.functional", "torch.nn modules",
                    "torch.* tensor functions", "torch.* creation functions"):
        m = re.search(rf"\| {re.escape(section)} \| (\d+) \| (\d+) \| [\d.]+% \|", head)
        assert m, f"no figures for {section}"
        assert 0 < int(m.group(1)) <= int(m.group(2))
    assert "| **all** |" in head


def test_rows_mark_support_and_reasons(doc):
    assert re.search(r"^\| `masked_fill` \| (yes|no) \|", doc, re.M)
    assert "| `relu` | yes |" in doc and "| `Linear` | yes |" in doc and "| `zeros` | yes |" in doc
    assert re.search(r"^\| `to_sparse` \| no \| no ONNX op: sparse tensors \|", doc, re.M)
    assert re.search(r"^\| `data_ptr` \| no \| views/storage aliasing not modelled \|", doc, re.M)
    assert "## Unsupported, by reason" in doc


def test_reason_table():
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        import torch_coverage as cov
    finally:
        sys.path.remove(os.path.dirname(SCRIPT))
    assert cov.reason_for("sparse_coo_tensor") == "no ONNX op: sparse tensors"
    assert cov.reason_for("view_as_complex") == "complex dtypes not in ONNX ops onnxruntime runs"
    assert cov.reason_for("quantize_per_tensor") == "quantization"
    assert cov.reason_for("record_stream") == "distributed/cuda-specific"
    assert cov.reason_for("index_copy") == cov.DEFAULT_REASON == "not yet implemented"
    assert cov.reason_for("permute_copy") == "views/storage aliasing not modelled"
