"""onnx-run info: what a model takes and returns, its opsets, ops and parameter count."""
import collections
import os

import click
import onnx

from ._common import emit_json, format_shape, json_option, model_argument, table
from ._model import _graphs, read_model

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
_FLOAT_TYPES |= {getattr(onnx.TensorProto, n) for n in ("FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
                                                          "FLOAT8E5M2FNUZ", "FLOAT4E2M1") if hasattr(onnx.TensorProto, n)}
_BITS = {getattr(onnx.TensorProto, n): b for n, b in (("FLOAT4E2M1", 4), ("FLOAT8E4M3FN", 8), ("FLOAT8E4M3FNUZ", 8),
                                                       ("FLOAT8E5M2", 8), ("FLOAT8E5M2FNUZ", 8), ("FLOAT16", 16),
                                                       ("BFLOAT16", 16), ("FLOAT", 32), ("DOUBLE", 64))
         if hasattr(onnx.TensorProto, n)}


def dtype_name(elem_type):
    """numpy's name for an ONNX element type ("float32"), ONNX's own name where numpy has none."""
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:  # noqa: BLE001
        return onnx.TensorProto.DataType.Name(elem_type).lower() if elem_type in onnx.TensorProto.DataType.values() \
            else "unknown"


def type_of(t):
    """(dtype, shape) of a TypeProto: shape entries are ints, dim names, or None; shape None if unknown."""
    kind = t.WhichOneof("value")
    if kind == "tensor_type" or kind == "sparse_tensor_type":
        tt = getattr(t, kind)
        shape = None if not tt.HasField("shape") else [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
        return dtype_name(tt.elem_type), shape
    if kind == "sequence_type":
        inner, _ = type_of(t.sequence_type.elem_type)
        return f"sequence({inner})", None
    if kind == "optional_type":
        inner, shape = type_of(t.optional_type.elem_type)
        return f"optional({inner})", shape
    if kind == "map_type":
        return f"map({dtype_name(t.map_type.key_type)}, ...)", None
    return "unknown", None


def _io(values):
    return [{"name": v.name, **dict(zip(("dtype", "shape"), type_of(v.type)))} for v in values]


def describe(model):
    """The `info --json` object."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    graphs = list(_graphs(g))
    ops = collections.Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                              for sub in graphs for n in sub.node)
    params = nbytes = 0
    for sub in graphs:
        for t in sub.initializer:
            if t.data_type in _FLOAT_TYPES:
                n = 1
                for d in t.dims:
                    n *= d
                params += n
                nbytes += (n * _BITS.get(t.data_type, 32) + 7) // 8
    return {
        "ir_version": model.ir_version,
        "opset": {("ai.onnx" if o.domain in ("", "ai.onnx") else o.domain): o.version for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": _io([i for i in g.input if i.name not in inits]),
        "outputs": _io(g.output),
        "nodes": sum(ops.values()),
        "op_types": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "parameters": params,
        "parameter_bytes": nbytes,
    }


def _human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


@click.command("info")
@model_argument
@json_option
def command(model, as_json):
    """Show MODEL's inputs and outputs (named dims kept), opsets, producer, op counts and parameters.

    \b
    Example:
      onnx-run info mlp.onnx
      onnx-run info mlp.onnx --json | jq .inputs
    """
    d = describe(read_model(model, external_data=False))  # sizes come from dims: no weights read
    if as_json:
        emit_json(d)
        return
    opsets = ", ".join(f"{k} {v}" for k, v in d["opset"].items())
    click.echo(f"{os.path.basename(model)}: IR {d['ir_version']}, opset {opsets}, producer {d['producer'] or '?'}")
    for title in ("inputs", "outputs"):
        click.echo(f"{title}:")
        rows = [(v["name"], v["dtype"], "?" if v["shape"] is None else format_shape(v["shape"])) for v in d[title]]
        click.echo("\n".join("  " + line for line in table(rows, ("name", "dtype", "shape")).splitlines()))
    click.echo(f"nodes: {d['nodes']} ({', '.join(f'{k} {v}' for k, v in d['op_types'].items())})")
    click.echo(f"parameters: {d['parameters']:,} ({_human_bytes(d['parameter_bytes'])})")
