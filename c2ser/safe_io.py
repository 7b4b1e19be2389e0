"""Reading user-supplied ``.pt``/``.pth``/``.npy`` files without ever running code from them.

``load_torch_file`` is the only way the project opens a PyTorch file: ``torch.load(weights_only=True)`` (tensors,
plain containers and numbers only) plus a short, explicit allow-list of the few harmless types that fairseq and
FunASR training checkpoints hold in their config / bookkeeping entries (``argparse.Namespace``, omegaconf
containers, numpy scalars and arrays). Anything else a pickle asks for (``os.system``, ``builtins.exec``, any
class) is refused before it is called, for zip and legacy (pre-1.6) files alike. Zip files are memory-mapped, so
a 16 GB checkpoint is never copied into RAM.

``load_features_npy`` reads a cached feature array with ``allow_pickle=False`` and checks dtype, values and shape.
Every failure is one ``ValueError`` line naming the file and the reason.
"""
from __future__ import annotations

import argparse
import collections
import re
import typing
from pathlib import Path

import numpy as np
import torch


def _numpy_globals() -> list:
    """numpy's array/scalar/dtype reconstructors, under their numpy 2 and numpy 1 module names."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    out = [np.ndarray, np.dtype] + [type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFD"]  # numeric dtype classes
    for name in ("_reconstruct", "scalar"):
        fn = getattr(multiarray, name)
        out += [(fn, f"numpy._core.multiarray.{name}"), (fn, f"numpy.core.multiarray.{name}")]
    return out


def _omegaconf_globals() -> list:
    """The classes an ``OmegaConf.create(dict)`` config pickles into (fairseq stores its cfg this way)."""
    try:
        from omegaconf import DictConfig, ListConfig
        from omegaconf.base import ContainerMetadata, Metadata
        from omegaconf.nodes import AnyNode
    except ImportError:  # pragma: no cover - omegaconf is a dependency; without it such files are refused
        return []
    return [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, typing.Any,
            dict, list, int, collections.defaultdict]


def allowed_globals() -> list:
    """Everything beyond torch's own weights-only set that a checkpoint may name. Each entry is inert: building
    it sets plain attributes, and none reads files, imports modules or evaluates strings."""
    return [argparse.Namespace, *_numpy_globals(), *_omegaconf_globals()]


def _first_line(text: str, default: str) -> str:
    return next((s.strip() for s in text.splitlines() if s.strip()), default)


def _refusal(path: Path, what: str, e: Exception) -> str:
    msg = str(e)
    m = re.search(r"GLOBAL (\S+)", msg)
    if m:
        return f"{path}: refused to load: the file asks for {m.group(1)}, which a {what} never needs"
    detail = msg.split("WeightsUnpickler error:", 1)[-1]  # torch's advice around it does not apply here
    if isinstance(e, KeyError):  # the weights-only reader meets a byte that is no pickle opcode
        detail = "not a pickle: unknown opcode"
    return f"{path}: not a readable PyTorch {what} ({_first_line(detail, type(e).__name__).split('. ')[0]})"


def load_torch_file(path: str | Path, what: str = "checkpoint"):
    """``torch.load`` of an untrusted file: weights only, on CPU, memory-mapped when it is a zip file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"  # torch's own test for the zip format (mmap needs it)
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as e:  # noqa: BLE001 - every way a bad file can fail is one line for the user
        raise ValueError(_refusal(path, what, e)) from None


def load_features_npy(path: str | Path, expected_shape: tuple | None = None) -> np.ndarray:
    """A cached feature array as float32: no pickles, finite values, and ``expected_shape`` when given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature file not found")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        kind = "a zip archive (.npz or .pt?)" if magic.startswith(b"PK") else "not a .npy file"
        raise ValueError(f"{path}: {kind}, expected a single .npy feature array")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - pickled/object data, truncated or foreign files
        why = "it holds pickled Python objects, which are never loaded" if "pickle" in str(e).lower() \
            else _first_line(str(e), type(e).__name__)
        raise ValueError(f"{path}: not a readable .npy feature array ({why})") from None
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{path}: features of dtype {arr.dtype}, expected real numbers")
    arr = arr.astype(np.float32)
    if expected_shape is not None and arr.shape != tuple(expected_shape):
        raise ValueError(f"{path}: features of shape {arr.shape}, expected {tuple(expected_shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: features contain NaN or Inf ({int((~np.isfinite(arr)).sum())} values)")
    return arr
