"""Checkpoint files: tensors in safetensors format with JSON metadata in its header (no pickle), written
to a temporary file in the same directory, flushed to disk and renamed over the target, so a crash
never leaves a half-written checkpoint. A save also removes the temporary files that earlier saves
killed midway left behind (`.<name>.tmp-<pid>` of a process that is gone)."""
import contextlib
import json
import os
import re

import numpy as np

_KEY = "onnxkit"
_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


def _jsonable(v):
    """json.dumps' fallback for the numpy scalars and arrays in optimizer and scheduler state."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"cannot store a {type(v).__name__} in checkpoint metadata")


def temp_path(path):
    """The temporary file a save of `path` writes before the rename: `.<name>.tmp-<pid>` beside it."""
    path = os.fspath(path)
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp-{os.getpid()}")


def _pid_alive(pid):
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no cheap check: treat as alive, so nothing that may be in use is removed
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True
    return True


def _process_start(pid):
    """The wall-clock start time of process `pid` (Linux /proc), or None when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _is_stale(path, pid):
    """A temp file is stale when its writer is gone: no process has its pid, or the process that has
    it now (this one included) started after the file was last written, so the pid was reused. A
    minute's margin absorbs clock adjustments; a save under way is never touched."""
    if not _pid_alive(pid):
        return True
    started = _process_start(pid)
    try:
        return started is not None and os.stat(path).st_mtime < started - 60.0
    except OSError:
        return False


def remove_stale_temps(directory):
    """Delete the `.<name>.tmp-<pid>` files in `directory` that killed saves left behind; returns their paths."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TMP.match(name)
        if not m:
            continue
        full = os.path.join(directory, name)
        if os.path.isfile(full) and _is_stale(full, int(m.group("pid"))):
            with contextlib.suppress(OSError):
                os.remove(full)
                removed.append(full)
    return removed


def _umask():
    """The process's umask (os.umask can only be read by setting it)."""
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path to write; on success it is flushed and renamed over `path`, on failure
    removed. Stale temporaries of earlier, killed saves in the same directory are removed first."""
    path = os.fspath(path)
    remove_stale_temps(os.path.dirname(os.path.abspath(path)))
    tmp = temp_path(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # as a plain open() would create it (writers may make it 0600)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save(path, tensors, metadata):
    """Write {name: array} and a JSON-able metadata dict to `path` atomically."""
    from safetensors.numpy import save_file
    arrays = {k: np.asarray(v, order="C") for k, v in tensors.items()}  # ascontiguousarray would make 0-d 1-d
    header = {_KEY: json.dumps(metadata, default=_jsonable)}
    with atomic_path(path) as tmp:
        save_file(arrays, tmp, metadata=header)


def load(path):
    """(tensors {name: array}, metadata dict) from a file written by `save`."""
    from safetensors import safe_open
    try:
        f = safe_open(os.fspath(path), "np")
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001  safetensors' errors do not name the file
        raise ValueError(f"{os.fspath(path)} is not a readable checkpoint (truncated or not safetensors): "
                         f"{e}") from None
    with f:
        meta = f.metadata() or {}
        if _KEY not in meta:
            raise ValueError(f"{path} is not an onnxkit checkpoint (no {_KEY!r} metadata in its header)")
        return {k: f.get_tensor(k) for k in f.keys()}, json.loads(meta[_KEY])

