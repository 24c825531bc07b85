"""Pieces the subcommands share: option parsing (NAME=SIZE, NAME=FILE), feeds for a Session,
JSON output and plain-text tables."""
import json
import math
import os

import click
import numpy as np

DEVICES = click.Choice(["auto", "cpu", "cuda"])


def model_argument(f):
    """MODEL: an existing file (click reports a missing one as a usage error, exit 2)."""
    return click.argument("model", type=click.Path(exists=True, dir_okay=False))(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout and nothing else.")(f)


def dim_option(f):
    return click.option("--dim", "dims", multiple=True, metavar="NAME=SIZE",
                        help="Size of a named (symbolic) dim; repeatable.")(f)


def parse_dims(specs):
    """('N=4', 'T=16') -> {'N': 4, 'T': 16}."""
    out = {}
    for s in specs:
        name, sep, size = s.partition("=")
        if not sep or not name or not size.strip().lstrip("-").isdigit():
            raise click.BadParameter(f"expected NAME=SIZE, got {s!r}", param_hint="--dim")
        if int(size) < 0:
            raise click.BadParameter(f"a dim size must be >= 0, got {s!r}", param_hint="--dim")
        out[name] = int(size)
    return out


def load_feeds(specs):
    """-i NAME=FILE.npy or -i FILE.npz (its keys are input names) -> {name: array}; never unpickles."""
    feeds = {}
    for s in specs:
        name, sep, path = s.partition("=")
        if not sep:
            if not s.lower().endswith(".npz"):
                raise click.BadParameter(f"expected NAME=FILE.npy or FILE.npz, got {s!r}", param_hint="--input")
            with _open_array(s) as z:
                feeds.update({k: z[k] for k in z.files})
        else:
            if not name:
                raise click.BadParameter(f"expected NAME=FILE.npy, got {s!r}", param_hint="--input")
            feeds[name] = _open_array(path)
    return feeds


def _open_array(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path} is not a readable .npy/.npz file: {' '.join(str(e).split())}") from None


def random_feeds(sess, given, dims, batch, seed=0):
    """Feeds for every input of an ok.Session (Session.random_feeds)."""
    return sess.random_feeds(given, dims, batch, seed)


def finite(x):
    """A float for JSON: NaN and infinities become None (JSON has no such numbers)."""
    x = float(x)
    return x if math.isfinite(x) else None


def emit_json(obj):
    click.echo(json.dumps(obj, indent=2, allow_nan=False))


def table(rows, header):
    """Aligned plain-text columns."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows + [list(header)]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header).rstrip()] + [fmt.format(*r).rstrip() for r in rows])


def format_shape(shape):
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
