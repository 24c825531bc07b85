"""The model zoo's configs (models/configs/*.json, the seed's baseline table on scikit-learn's bundled
data) each train to their threshold through onnxkit.workflow, and the exported model.onnx reproduces
the trainer's test metric under onnxruntime."""
import json
import os
import struct

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the bundled datasets ship with scikit-learn: pip install -e '.[train]'")

from onnxkit import workflow  # noqa: E402
from onnxkit.models import data  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "models", "configs")

# config -> (metric in metrics.json["test"], check against the threshold, what the threshold says)
THRESHOLDS = {
    "lenet_digits": ("accuracy", lambda v, m: v >= 0.97, "accuracy >= 0.97"),
    "resnet_digits": ("accuracy", lambda v, m: v >= 0.97, "accuracy >= 0.97"),
    "lstm_digits_rows": ("accuracy", lambda v, m: v >= 0.95, "accuracy >= 0.95"),
    "mlp_breast_cancer": ("accuracy", lambda v, m: v >= 0.95, "accuracy >= 0.95"),
    "mlp_digits_multilabel": ("subset_accuracy", lambda v, m: v >= 0.95, "subset accuracy >= 0.95"),
    "mlp_diabetes": ("r2", lambda v, m: v >= 0.45, "R^2 >= 0.45"),
    "mlp_linnerud": ("mse", lambda v, m: v <= m["linear_baseline_mse"], "MSE <= least squares' MSE"),
    "autoencoder_digits": ("mse", lambda v, m: v <= 0.2 * m["mean_image_mse"], "MSE <= 0.2 x mean-image MSE"),
}


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", path
    return struct.unpack(">II", head[16:24])


def test_every_config_is_covered():
    names = sorted(f[:-5] for f in os.listdir(CONFIGS) if f.endswith(".json"))
    assert names == sorted(THRESHOLDS)


@pytest.mark.parametrize("name", list(THRESHOLDS))
def test_config_trains_to_threshold_and_export_reproduces(name, tmp_path):
    import onnxruntime as ort
    cfg = workflow.load_config(os.path.join(CONFIGS, name + ".json"))
    run = tmp_path / name
    metrics = workflow.train(cfg, run, progress=False)
    key, passes, text = THRESHOLDS[name]
    value = metrics["test"][key]
    print(f"{name}: test {key} {value:.4f} ({text})")
    assert passes(value, metrics), f"{name}: test {key} {value} does not meet {text}"

    # the exported model, run by plain onnxruntime on the same test split, gives the same metric
    ds = data.load(cfg["data"]["name"], **{k: v for k, v in cfg["data"].items() if k != "name"})
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"x": ds.x_test})[0]
    again = workflow.compute_metrics(cfg["task"], out, ds.y_test)
    assert again[key] == pytest.approx(value, rel=1e-4, abs=1e-6)
    assert metrics["onnx_test"][key] == pytest.approx(value, rel=1e-4, abs=1e-6)

    # what the run folder holds
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"][key] == value and saved["epochs"] == cfg["epochs"]
    assert len(saved["history"]["loss"]) == len(saved["history"]["val_loss"]) == cfg["epochs"]
    for f in ("training/training.onnx", "training/eval.onnx", "training/state.safetensors", "training/meta.json",
              "checkpoint.safetensors", "config.json"):
        assert (run / f).is_file(), f
    panels = 1 if cfg["task"] == "reconstruction" else 2
    assert png_size(run / "curves.png") == (600 * panels, 400)
    if cfg["task"] in workflow.CLASSIFIERS:
        assert png_size(run / "confusion.png") == (500, 500)
        cm = np.array(saved["confusion_matrix"])
        assert cm.sum() == len(ds.y_test)
    else:
        assert not (run / "confusion.png").exists()


def test_gru_two_layers_bidirectional_with_dropout(tmp_path):
    """The recurrent classifier's other cell, stacked with dropout between layers (the seed's PyText
    options); the export matches the trainer's predictions."""
    cfg = json.load(open(os.path.join(CONFIGS, "lstm_digits_rows.json")))
    cfg.update(name="gru", epochs=3, model={"name": "seq_classifier", "cell": "gru", "hidden_size": 32,
                                            "num_layers": 2, "bidirectional": True, "dropout": 0.2},
               export={"training_artifacts": False})
    metrics = workflow.train(cfg, tmp_path, progress=False)
    assert metrics["test"]["accuracy"] >= 0.85
    assert metrics["onnx_test"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)


def test_data_splits_are_fixed_and_stratified():
    a, b = data.load("digits", size=28), data.load("digits", size=28)
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_test, b.y_test)
    assert len(a.y_test) == 360
    train_share = np.bincount(a.y_train, minlength=10) / len(a.y_train)
    test_share = np.bincount(a.y_test, minlength=10) / len(a.y_test)
    assert np.abs(train_share - test_share).max() < 0.01
    bc = data.load("breast_cancer")
    assert bc.y_train.mean() == pytest.approx(bc.y_test.mean(), abs=0.01)
    ml = data.load("digits_multilabel")
    assert ml.y_train.shape[1] == 2 and set(np.unique(ml.y_train)) == {0.0, 1.0}
    seq = data.load("digits_rows")
    assert seq.input_shape == (8, 8)
