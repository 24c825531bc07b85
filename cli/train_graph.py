"""onnx-run train-graph: turn any model into training artifacts (a one-graph training step in
standard ops, the eval graph, the initial state and meta.json) that any runtime can drive: a shell
over ok.load and ok.training_artifacts."""
import fnmatch
import os

import click

from ._model import read_model, validate

LOSSES = {"cross_entropy": "CrossEntropyLoss", "mse": "MSELoss", "l1": "L1Loss", "smooth_l1": "SmoothL1Loss",
          "huber": "HuberLoss", "nll": "NLLLoss", "bce_with_logits": "BCEWithLogitsLoss"}
CLASS_LOSSES = {"cross_entropy", "nll"}  # the target holds class indices: int64, no class dim
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}


def target_input(loss, output):
    """The target's ok.Input for `loss` on the model output `output` (an ok.Input-like (shape, dtype))."""
    import onnxkit as ok
    shape, dtype = output
    if loss in CLASS_LOSSES:
        shape = (shape[0],) + tuple(shape[2:]) if len(shape) >= 2 else tuple(shape)
        return ok.Input("target", shape, "int64")
    return ok.Input("target", tuple(shape), dtype)


def build_artifacts(proto, out_dir, loss, output=None, optimizer="sgd", lr=1e-3, freeze=()):
    """Write the artifacts of `proto` trained with `loss` and `optimizer` to `out_dir` through
    ok.training_artifacts; returns its meta dict. The CLI only picks the output, the target's type,
    the loss and the optimizer."""
    import onnxkit as ok
    from onnxkit import nn, optim
    from .info import type_of
    outs = [o.name for o in proto.graph.output]
    if output is None:
        if len(outs) > 1:
            raise click.BadParameter(f"the model has outputs {outs}; say which feeds the loss", param_hint="--output")
        output = outs[0]
    if output not in outs:
        raise click.BadParameter(f"no output {output!r}; the model's outputs are {outs}", param_hint="--output")
    index = outs.index(output)
    dtype, shape = type_of(proto.graph.output[index].type)
    if shape is None:
        raise ValueError(f"output {output!r} has no declared shape; the target's cannot be inferred")
    shape = [d if d is not None else f"{output}_d{i}" for i, d in enumerate(shape)]

    model = ok.load(proto)
    names = [k for k, _ in model.named_parameters()]
    unmatched = [g for g in freeze if not any(fnmatch.fnmatchcase(k, g) for k in names)]
    if unmatched:
        raise click.BadParameter(f"{unmatched} match no initializer (parameters: {names[:8]}"
                                 f"{' ...' if len(names) > 8 else ''})", param_hint="--freeze")
    model.train()
    data = model.graph_inputs()
    if shape and data and data[0].shape:
        shape[0] = data[0].shape[0]  # the target's batch is the data's
    target = target_input(loss, (tuple(shape), dtype))
    loss_module = getattr(nn, LOSSES[loss])()

    def loss_fn(out, y):
        return loss_module(out[index] if isinstance(out, tuple) else out, y)

    opt = getattr(optim, OPTIMIZERS[optimizer])(model.parameters(), lr=lr)
    return ok.training_artifacts(model, loss_fn, opt, data, target, out_dir, frozen=tuple(freeze))


@click.command("train-graph")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output-dir", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for training.onnx, eval.onnx, state.safetensors and meta.json.")
@click.option("--loss", required=True, type=click.Choice(list(LOSSES)), help="torch's loss, in snake case.")
@click.option("--output", default=None, help="The model output the loss reads (needed when it has several).")
@click.option("--optimizer", default="sgd", show_default=True, type=click.Choice(list(OPTIMIZERS)))
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(min=0), help="Learning rate.")
@click.option("--freeze", multiple=True, metavar="GLOB", help="Initializers to keep fixed (fnmatch); repeatable.")
def command(model, out_dir, loss, output, optimizer, lr, freeze):
    """Make training artifacts from MODEL: DIR/training.onnx (one training step: forward, loss,
    gradients and the optimizer update, standard ONNX ops only), DIR/eval.onnx,
    DIR/state.safetensors (keyed by the training graph's input names) and DIR/meta.json, which
    says how a runtime without onnxkit drives the loop.

    \b
    Example:
      onnx-run train-graph mlp.onnx -o artifacts/ --loss cross_entropy --optimizer adamw --lr 1e-3
      onnx-run train-graph resnet.onnx -o ft/ --loss cross_entropy --freeze 'layer1.*' --freeze 'conv1.*'
    """
    proto = read_model(model)
    validate(proto, model)
    meta = build_artifacts(proto, out_dir, loss, output, optimizer, lr, freeze)
    params = [e for e in meta["state"] if e["kind"] == "parameter"]
    trained = sum(1 for e in params if e["output"])
    click.echo(f"wrote {os.path.join(out_dir, meta['training_model'])} ({trained} trained and "
               f"{len(params) - trained} frozen parameters), {meta['eval_model']}, {meta['state_file']}, meta.json")
