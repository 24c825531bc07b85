"""The config-driven workflow behind `onnx-run train` (the seed's PyText example): one JSON or YAML
config describes the task, data, model, loss, optimizer, scheduler and training; `train(config, DIR)`
validates it, builds everything, trains with ok.Trainer (progress bar, per-epoch metrics), writes an
atomic checkpoint after each epoch (`resume=True` continues from it; Ctrl-C stops cleanly and leaves
it), then writes

    DIR/model.onnx        the eval-mode model (ok.export)
    DIR/training/         portable training artifacts (ok.training_artifacts)
    DIR/metrics.json      config, per-epoch history, test metrics (trainer and onnxruntime), confusion matrix
    DIR/curves.png        loss and metric per epoch, train and test (matplotlib)
    DIR/confusion.png     classifiers only
    DIR/checkpoint.safetensors, DIR/config.json

Config errors raise ConfigError with one line naming the key and the allowed values."""
import inspect
import json
import math
import os
import sys
import time

import numpy as np

__all__ = ["ConfigError", "Interrupted", "TASKS", "MODELS", "LOSSES", "OPTIMIZERS", "SCHEDULERS", "load_config",
           "validate", "build", "train", "compute_metrics"]

TASKS = ("binary", "multiclass", "multilabel", "regression", "vector_regression", "reconstruction")
CLASSIFIERS = ("binary", "multiclass", "multilabel")
PRIMARY = {"binary": "accuracy", "multiclass": "accuracy", "multilabel": "subset_accuracy", "regression": "r2",
           "vector_regression": "mse", "reconstruction": "mse"}
TOP_LEVEL = {"name": str, "description": str, "task": str, "data": (dict, str), "model": (dict, str),
             "loss": (dict, str), "optimizer": (dict, str), "scheduler": (dict, str, type(None)), "epochs": int,
             "batch_size": int, "device": str, "seed": int, "export": dict}
DEVICES = ("auto", "cpu", "cuda")
EXPORT_KEYS = {"opset": int, "training_artifacts": bool}


class ConfigError(ValueError):
    """A bad config; str(e) is one line naming the key."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during `train`: the last completed epoch's checkpoint is left in the run folder."""

    def __init__(self, message, epoch, checkpoint):
        super().__init__(message)
        self.epoch, self.checkpoint = epoch, checkpoint

    def __str__(self):
        return self.args[0]


# ----- registries ----------------------------------------------------------------------------------
def _models():
    from .models import autoencoder, lenet, mlp, resnet, seq_classifier
    # name -> (constructor, tasks it serves, how the data fills its size arguments)
    return {
        "mlp": (mlp.MLP, ("binary", "multiclass", "multilabel", "regression", "vector_regression"),
                lambda d: {"in_features": int(np.prod(d.input_shape)), "out_features": d.out_features,
                           "task": d.task}),
        "lenet5": (lenet.LeNet5, ("multiclass",),
                   lambda d: {"in_channels": d.input_shape[0], "num_classes": d.out_features}),
        "resnet": (resnet.ResNet, ("binary", "multiclass", "multilabel"),
                   lambda d: {"in_channels": d.input_shape[0], "num_classes": d.out_features, "task": d.task}),
        "seq_classifier": (seq_classifier.SeqClassifier, ("binary", "multiclass", "multilabel"),
                           lambda d: {"input_size": d.input_shape[-1], "num_classes": d.out_features,
                                      "task": d.task}),
        "autoencoder": (autoencoder.ConvAutoencoder, ("reconstruction",),
                        lambda d: {"in_channels": d.input_shape[0]}),
    }


MODELS = ("mlp", "lenet5", "resnet", "seq_classifier", "autoencoder")
# loss name (torch's class in snake case) -> (class name in onnxkit.nn, tasks it fits)
LOSSES = {"cross_entropy": ("CrossEntropyLoss", ("multiclass",)),
          "bce_with_logits": ("BCEWithLogitsLoss", ("binary", "multilabel")),
          "mse": ("MSELoss", ("regression", "vector_regression", "reconstruction")),
          "l1": ("L1Loss", ("regression", "vector_regression", "reconstruction")),
          "smooth_l1": ("SmoothL1Loss", ("regression", "vector_regression", "reconstruction")),
          "huber": ("HuberLoss", ("regression", "vector_regression", "reconstruction"))}
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
SCHEDULERS = {"step": "StepLR", "multistep": "MultiStepLR", "exponential": "ExponentialLR",
              "cosine": "CosineAnnealingLR", "onecycle": "OneCycleLR"}
_SEED_NOTE = ("the seed's table pairs sigmoid with CrossEntropyLoss, which learns nothing on one output "
              "or multi-hot targets")


# ----- config ---------------------------------------------------------------------------------------
def load_config(path):
    """Read a JSON (.json) or YAML (.yaml/.yml, needs PyYAML) config file and validate it."""
    path = os.fspath(path)
    with open(path) as f:
        text = f.read()
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ImportError("YAML configs need PyYAML: pip install 'onnxkit[train]'") from None
        try:
            cfg = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None
    else:
        try:
            cfg = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from None
    if isinstance(cfg, dict):
        cfg.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return validate(cfg)


def _type_name(t):
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a mapping",
             list: "a list", type(None): "null"}
    ts = t if isinstance(t, tuple) else (t,)
    return " or ".join(names.get(x, x.__name__) for x in ts)


def _check_type(key, value, t):
    ts = t if isinstance(t, tuple) else (t,)
    ok = any(isinstance(value, x) and not (isinstance(value, bool) and x in (int, float)) for x in ts)
    if float in ts and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"config: {key}: expected {_type_name(t)}, got {json.dumps(value, default=str)}")


def _choice(key, value, allowed):
    _check_type(key, value, str)
    if value not in allowed:
        raise ConfigError(f"config: {key}: unknown name {value!r}; allowed: {', '.join(allowed)}")


def _named(key, value, allowed):
    """A {"name": ..., options} section (or just the name) -> (name, options)."""
    if isinstance(value, str):
        value = {"name": value}
    if "name" not in value:
        raise ConfigError(f"config: missing key '{key}.name'; allowed: {', '.join(allowed)}")
    _choice(f"{key}.name", value["name"], allowed)
    return value["name"], {k: v for k, v in value.items() if k != "name"}


_INTEGER_OPTIONS = {"step_size", "total_iters"}


def _check_kwargs(key, options, fn, skip=(), required=(), numbers=False):
    """Options against a constructor's signature: unknown keys, and types from the defaults (with
    numbers=True an integer default such as momentum=0 also takes a float)."""
    params = {n: p for n, p in inspect.signature(fn).parameters.items()
              if n not in skip and n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    for k, v in options.items():
        if k not in params:
            raise ConfigError(f"config: {key}: unknown key '{k}'; allowed: {', '.join(params) or '(none)'}")
        d = params[k].default
        if d is inspect.Parameter.empty or d is None:
            continue
        if isinstance(d, bool):
            _check_type(f"{key}.{k}", v, bool)
        elif isinstance(d, int):
            _check_type(f"{key}.{k}", v, float if numbers and k not in _INTEGER_OPTIONS else int)
        elif isinstance(d, float):
            _check_type(f"{key}.{k}", v, float)
        elif isinstance(d, str):
            _check_type(f"{key}.{k}", v, str)
        elif isinstance(d, (tuple, list)):
            _check_type(f"{key}.{k}", v, list)
    for k in required:
        if k not in options:
            raise ConfigError(f"config: missing key '{key}.{k}'")


def validate(config):
    """Check a config dict; return it normalized (defaults filled in), or raise ConfigError naming the key."""
    from . import nn, optim
    from .models import data as zoo_data
    if not isinstance(config, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(config).__name__}")
    for k, v in config.items():
        if k not in TOP_LEVEL:
            raise ConfigError(f"config: unknown key '{k}'; allowed: {', '.join(TOP_LEVEL)}")
        _check_type(k, v, TOP_LEVEL[k])
    for k in ("data", "model"):
        if k not in config:
            raise ConfigError(f"config: missing key '{k}'")
    cfg = {"name": config.get("name", "run"), "description": config.get("description", "")}
    data_name, data_opts = _named("data", config["data"], list(zoo_data.DATASETS))
    _check_kwargs("data", data_opts, zoo_data.DATASETS[data_name])
    cfg["data"] = {"name": data_name, **data_opts}
    data_task = _DATA_TASKS[data_name]
    task = config.get("task", data_task)
    _choice("task", task, TASKS)
    if task != data_task:
        raise ConfigError(f"config: task: data '{data_name}' is a {data_task} task, not {task}; allowed: {data_task}")
    cfg["task"] = task
    models = _models()
    model_name, model_opts = _named("model", config["model"], MODELS)
    ctor, tasks, derived = models[model_name]
    if task not in tasks:
        raise ConfigError(f"config: model.name: '{model_name}' does not do {task}; allowed for {task}: "
                          f"{', '.join(m for m in MODELS if task in models[m][1])}")
    kind = _DATA_KINDS[data_name]
    if kind not in MODEL_INPUTS[model_name]:
        raise ConfigError(f"config: model.name: '{model_name}' takes {' or '.join(MODEL_INPUTS[model_name])} data and "
                          f"'{data_name}' is {kind} data; allowed: "
                          f"{', '.join(m for m in MODELS if kind in MODEL_INPUTS[m] and task in models[m][1])}")
    if model_name == "lenet5" and data_opts.get("size", 28) != 28:
        raise ConfigError(f"config: data.size: lenet5 takes 28x28 images, got {data_opts['size']}; allowed: 28")
    auto = set(inspect.signature(ctor).parameters) & {"in_features", "out_features", "num_classes", "in_channels",
                                                      "input_size", "task"}
    _check_kwargs("model", model_opts, ctor, skip=auto)
    if "cell" in model_opts:
        _choice("model.cell", model_opts["cell"], ["lstm", "gru"])
    cfg["model"] = {"name": model_name, **model_opts}
    default_loss = {"binary": "bce_with_logits", "multilabel": "bce_with_logits", "multiclass": "cross_entropy"}
    loss_name, loss_opts = _named("loss", config.get("loss", default_loss.get(task, "mse")), list(LOSSES))
    cls_name, loss_tasks = LOSSES[loss_name]
    if task not in loss_tasks:
        fits = [n for n, (_, ts) in LOSSES.items() if task in ts]
        why = f" ({_SEED_NOTE})" if loss_name == "cross_entropy" and task in ("binary", "multilabel") else ""
        raise ConfigError(f"config: loss: '{loss_name}' does not fit task {task}{why}; allowed: {', '.join(fits)}")
    _check_kwargs("loss", loss_opts, getattr(nn, cls_name), skip=("weight", "pos_weight", "size_average", "reduce"),
                  numbers=True)
    if "reduction" in loss_opts:
        _choice("loss.reduction", loss_opts["reduction"], ["mean", "sum"])   # training needs a scalar loss
    cfg["loss"] = {"name": loss_name, **loss_opts}
    opt_name, opt_opts = _named("optimizer", config.get("optimizer", {"name": "adam"}), list(OPTIMIZERS))
    _check_kwargs("optimizer", opt_opts, getattr(optim, OPTIMIZERS[opt_name]), skip=("params",), numbers=True)
    cfg["optimizer"] = {"name": opt_name, **opt_opts}
    sched = config.get("scheduler")
    if sched is not None:
        s_name, s_opts = _named("scheduler", sched, list(SCHEDULERS))
        needs = {"onecycle": ("max_lr",), "step": ("step_size",), "multistep": ("milestones",),
                 "exponential": ("gamma",)}.get(s_name, ())
        _check_kwargs("scheduler", s_opts, getattr(optim.lr_scheduler, SCHEDULERS[s_name]),
                      skip=("optimizer", "last_epoch", "total_steps", "epochs", "steps_per_epoch", "T_max"),
                      required=needs, numbers=True)
        for k in ("step_size",):
            if k in s_opts:
                _check_type(f"scheduler.{k}", s_opts[k], int)
        if "milestones" in s_opts:
            _check_type("scheduler.milestones", s_opts["milestones"], list)
        sched = {"name": s_name, **s_opts}
    cfg["scheduler"] = sched
    for k, default in (("epochs", 10), ("batch_size", 64), ("seed", 0)):
        v = config.get(k, default)
        if v < (0 if k == "seed" else 1):
            raise ConfigError(f"config: {k}: must be >= {0 if k == 'seed' else 1}, got {v}")
        cfg[k] = v
    cfg["device"] = config.get("device", "auto")
    _choice("device", cfg["device"], DEVICES)
    export = dict(config.get("export", {}))
    for k, v in export.items():
        if k not in EXPORT_KEYS:
            raise ConfigError(f"config: export: unknown key '{k}'; allowed: {', '.join(EXPORT_KEYS)}")
        _check_type(f"export.{k}", v, EXPORT_KEYS[k])
    cfg["export"] = {"opset": export.get("opset", 21), "training_artifacts": export.get("training_artifacts", True)}
    return cfg


_DATA_KINDS = {"digits": "image", "digits_rows": "sequence", "digits_multilabel": "vector",
               "digits_reconstruction": "image", "breast_cancer": "vector", "diabetes": "vector", "linnerud": "vector"}
MODEL_INPUTS = {"mlp": ("vector", "image", "sequence"), "lenet5": ("image",), "resnet": ("image",),
                "seq_classifier": ("sequence",), "autoencoder": ("image",)}
_DATA_TASKS = {"digits": "multiclass", "digits_rows": "multiclass", "digits_multilabel": "multilabel",
               "digits_reconstruction": "reconstruction", "breast_cancer": "binary", "diabetes": "regression",
               "linnerud": "vector_regression"}


# ----- building ---------------------------------------------------------------------------------------
class Parts:
    """What a config builds: dataset, model, loss_fn, optimizer, scheduler, scheduler_interval."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def build(config):
    """Validated config -> Parts (data loaded, model initialized under ok.manual_seed(config seed))."""
    from . import nn, optim
    from .tensor import manual_seed
    from .models import data as zoo_data
    cfg = validate(config)
    ds = zoo_data.load(cfg["data"]["name"], **{k: v for k, v in cfg["data"].items() if k != "name"})
    manual_seed(cfg["seed"])
    ctor, _, derived = _models()[cfg["model"]["name"]]
    kwargs = {k: v for k, v in derived(ds).items() if k in inspect.signature(ctor).parameters}
    opts = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg["model"].items() if k != "name"}
    try:
        model = ctor(**kwargs, **opts)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"config: model: {' '.join(str(e).split())}") from None
    loss_fn = getattr(nn, LOSSES[cfg["loss"]["name"]][0])(**{k: v for k, v in cfg["loss"].items() if k != "name"})
    o = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg["optimizer"].items() if k != "name"}
    try:
        optimizer = getattr(optim, OPTIMIZERS[cfg["optimizer"]["name"]])(model.parameters(), **o)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"config: optimizer: {' '.join(str(e).split())}") from None
    scheduler, interval = None, "epoch"
    s = cfg["scheduler"]
    if s is not None:
        cls = getattr(optim.lr_scheduler, SCHEDULERS[s["name"]])
        so = {k: v for k, v in s.items() if k != "name"}
        if s["name"] == "cosine":
            so["T_max"] = cfg["epochs"]
        if s["name"] == "onecycle":
            so.update(epochs=cfg["epochs"], steps_per_epoch=math.ceil(len(ds.y_train) / cfg["batch_size"]))
            interval = "step"
        try:
            scheduler = cls(optimizer, **so)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"config: scheduler: {' '.join(str(e).split())}") from None
    return Parts(config=cfg, dataset=ds, model=model, loss_fn=loss_fn, optimizer=optimizer, scheduler=scheduler,
                 scheduler_interval=interval)


# ----- metrics ------------------------------------------------------------------------------------------
def compute_metrics(task, output, target):
    """Test metrics for a task from model outputs (logits or values) and targets, as plain floats;
    classifiers also get "confusion_matrix" (multi-label: over the label combinations)."""
    out, y = np.asarray(output, np.float64), np.asarray(target)
    m = {}
    if task == "multiclass":
        pred = out.argmax(axis=1)
        m["accuracy"] = float(np.mean(pred == y))
        k = out.shape[1]
        m["confusion_matrix"] = np.bincount(y * k + pred, minlength=k * k).reshape(k, k).tolist()
    elif task == "binary":
        pred = (out.reshape(len(out), -1)[:, 0] > 0).astype(int)
        t = y.reshape(len(y), -1)[:, 0].astype(int)
        m["accuracy"] = float(np.mean(pred == t))
        m["confusion_matrix"] = np.bincount(t * 2 + pred, minlength=4).reshape(2, 2).tolist()
    elif task == "multilabel":
        pred = (out > 0).astype(int)
        t = y.astype(int)
        m["subset_accuracy"] = float(np.mean(np.all(pred == t, axis=1)))
        m["label_accuracy"] = float(np.mean(pred == t))
        if t.shape[1] <= 4:
            w = 2 ** np.arange(t.shape[1])
            k = 2 ** t.shape[1]
            m["confusion_matrix"] = np.bincount((t @ w) * k + pred @ w, minlength=k * k).reshape(k, k).tolist()
    else:
        o, t = out.reshape(len(out), -1), y.astype(np.float64).reshape(len(y), -1)
        m["mse"] = float(np.mean((o - t) ** 2))
        if task != "reconstruction":
            ss_res = ((o - t) ** 2).sum(axis=0)
            ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
            m["r2"] = float(np.mean(1 - ss_res / ss_tot))
    return m


def _class_names(ds):
    if ds.task == "multilabel" and ds.labels and len(ds.labels) <= 4:
        n = len(ds.labels)
        return ["{" + ",".join(ds.labels[j] for j in range(n) if c >> j & 1) + "}" for c in range(2 ** n)]
    return ds.classes


# ----- training ----------------------------------------------------------------------------------------
def _progress(total, desc, enabled):
    """A tqdm bar on stderr when tqdm is installed, enabled and stderr is a terminal, else a no-op
    (logs and pipes get the per-epoch lines only, as Trainer.fit does)."""
    class _Null:
        def update(self, n=1): pass
        def set_postfix_str(self, s): pass
        def close(self): pass
    if not (enabled and sys.stderr.isatty()):
        return _Null()
    try:
        from tqdm import tqdm
    except ImportError:
        return _Null()
    return tqdm(total=total, desc=desc, unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True)


def _log(msg, enabled):
    if enabled:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def train(config, out_dir=None, resume=False, progress=True, on_batch=None, on_epoch=None):
    """Train a config (a dict or a path to a JSON/YAML file) into `out_dir` (default runs/<name>) and
    export it; returns the metrics dict also written to out_dir/metrics.json.

    resume: continue from out_dir/checkpoint.safetensors (its config must match, except `epochs`).
    on_batch(epoch, batch, loss) and on_epoch(epoch, record) are called after each batch / epoch (a
    KeyboardInterrupt raised there acts like Ctrl-C). Ctrl-C raises Interrupted once the last completed
    epoch's checkpoint is safely on disk; train(..., resume=True) then reaches the same result as an
    uninterrupted run."""
    from .trainer import Trainer
    if isinstance(config, (str, os.PathLike)):
        config = load_config(config)
    parts = build(config)
    cfg, ds = parts.config, parts.dataset
    out_dir = os.fspath(out_dir) if out_dir is not None else os.path.join("runs", cfg["name"])
    os.makedirs(out_dir, exist_ok=True)
    ckpt = os.path.join(out_dir, "checkpoint.safetensors")
    cfg_path = os.path.join(out_dir, "config.json")
    if os.path.exists(ckpt) and not resume:
        raise FileExistsError(f"{out_dir} already holds a run (checkpoint.safetensors): pass --resume to continue "
                              "it or choose another output folder")
    if resume and os.path.exists(ckpt) and os.path.exists(cfg_path):
        with open(cfg_path) as f:
            saved = json.load(f)
        diff = [k for k in cfg if k != "epochs" and saved.get(k) != cfg[k]]
        if diff:
            raise ConfigError(f"config: {diff[0]}: differs from the run in {out_dir} that --resume would continue "
                              f"(saved: {json.dumps(saved.get(diff[0]))})")
    from .checkpoint import atomic_path
    with atomic_path(cfg_path) as tmp, open(tmp, "w") as f:
        json.dump(cfg, f, indent=1)

    trainer = Trainer(parts.model, parts.loss_fn, parts.optimizer, device=cfg["device"], scheduler=parts.scheduler,
                      seed=cfg["seed"], scheduler_interval=parts.scheduler_interval, spinning=False,
                      random_in_graph=True)
    if resume and os.path.exists(ckpt):
        trainer.load(ckpt)
        _log(f"resuming {out_dir} after epoch {trainer.epoch}", progress)
    task, metric = cfg["task"], PRIMARY[cfg["task"]]
    bs = cfg["batch_size"]
    batches = math.ceil(len(ds.y_train) / bs)

    state = {"bar": None, "batch": 0}
    plain_step = trainer.step

    def step(*args):  # Trainer.fit calls self.step: count batches for the bar and the callbacks
        loss = plain_step(*args)
        state["batch"] += 1
        state["bar"].update(1)
        state["bar"].set_postfix_str(f"loss {loss:.4f}")
        if on_batch is not None:
            on_batch(trainer.epoch, state["batch"], loss)
        return loss

    trainer.step = step
    try:
        while trainer.epoch < cfg["epochs"]:
            epoch = trainer.epoch + 1
            t0 = time.perf_counter()
            state["bar"] = _progress(batches, f"epoch {epoch}/{cfg['epochs']}", progress)
            state["batch"] = 0
            try:
                trainer.fit(ds.x_train, ds.y_train, epochs=1, batch_size=bs, verbose=False)
            finally:
                state["bar"].close()
            record = {"loss": trainer.history["loss"][-1]}
            record["val_loss"] = trainer.evaluate(ds.x_test, ds.y_test)["loss"]
            if task != "reconstruction":
                record[metric] = compute_metrics(task, trainer.predict(ds.x_train), ds.y_train)[metric]
                record[f"val_{metric}"] = compute_metrics(task, trainer.predict(ds.x_test), ds.y_test)[metric]
            for k, v in record.items():
                if k != "loss":
                    trainer.history.setdefault(k, []).append(v)
            trainer.history.setdefault("lr", []).append(float(parts.optimizer.param_groups[0]["lr"]))
            trainer.save(ckpt)
            _log(f"epoch {epoch}/{cfg['epochs']}: " + " - ".join(f"{k} {v:.4f}" for k, v in record.items())
                 + f" ({time.perf_counter() - t0:.1f} s)", progress)
            if on_epoch is not None:
                on_epoch(epoch, record)
    except KeyboardInterrupt:
        done = _saved_epoch(ckpt)
        msg = (f"interrupted in epoch {trainer.epoch}; the checkpoint of epoch {done} is in {ckpt}: "
               f"continue with --resume" if done else f"interrupted in epoch {trainer.epoch} before any checkpoint")
        raise Interrupted(msg, trainer.epoch, ckpt if done else None) from None
    finally:
        trainer.step = plain_step
    return _finish(trainer, parts, out_dir, progress)


def _saved_epoch(ckpt):
    if not os.path.exists(ckpt):
        return 0
    from . import checkpoint
    _, meta = checkpoint.load(ckpt)
    return meta.get("epoch", 0)


def _finish(trainer, parts, out_dir, progress):
    """Test metrics, model.onnx (checked under onnxruntime), training artifacts, metrics.json, PNGs."""
    from . import exporter, runtime
    from .tensor import Input
    cfg, ds, model = parts.config, parts.dataset, parts.model
    task = cfg["task"]
    test = compute_metrics(task, trainer.predict(ds.x_test), ds.y_test)
    test["loss"] = trainer.evaluate(ds.x_test, ds.y_test)["loss"]
    confusion = test.pop("confusion_matrix", None)
    model.eval()
    x_in = Input("x", ("N",) + ds.input_shape, "float32")
    model_path = os.path.join(out_dir, "model.onnx")
    exporter.export(model, [x_in], path=model_path, opset=cfg["export"]["opset"])
    onnx_out = runtime.Session(model_path, device="cpu").run({"x": ds.x_test})["output"]
    onnx_test = {k: v for k, v in compute_metrics(task, onnx_out, ds.y_test).items() if k != "confusion_matrix"}
    if cfg["export"]["training_artifacts"]:
        from .artifacts import training_artifacts
        model.train()
        y_in = Input("target", ("N",) + ds.y_train.shape[1:], str(ds.y_train.dtype))
        training_artifacts(model, parts.loss_fn, parts.optimizer, [x_in], y_in, os.path.join(out_dir, "training"),
                           seed=cfg["seed"])
        model.eval()
    history = {k: list(v) for k, v in trainer.history.items() if k != "lr"}
    metrics = {"name": cfg["name"], "task": task, "metric": PRIMARY[task], "epochs": trainer.epoch,
               "history": history, "lr": list(trainer.history.get("lr", [])), "test": test, "onnx_test": onnx_test,
               "data": {"name": ds.name, "train": int(len(ds.y_train)), "test": int(len(ds.y_test)),
                        "input_shape": list(ds.input_shape)},
               "model": "model.onnx", "config": cfg}
    if task in ("regression", "vector_regression"):
        from .models.data import linear_baseline
        metrics["linear_baseline_mse"] = linear_baseline(ds)
    if task == "reconstruction":
        metrics["mean_image_mse"] = float(np.mean((ds.x_test - ds.x_train.mean(axis=0)) ** 2))
    if confusion is not None:
        metrics["confusion_matrix"] = confusion
        metrics["classes"] = _class_names(ds)
    from .checkpoint import atomic_path
    with atomic_path(os.path.join(out_dir, "metrics.json")) as tmp, open(tmp, "w") as f:
        json.dump(metrics, f, indent=1)
    try:
        from . import plotting
        metrics["plots"] = plotting.plot_run(out_dir, metrics)
    except ImportError as e:
        _log(f"no plots ({e})", progress)
    _log(f"test {PRIMARY[task]} {test[PRIMARY[task]]:.4f} (onnxruntime {onnx_test[PRIMARY[task]]:.4f}); "
         f"wrote {out_dir}", progress)
    return metrics
