"""Loading ``save_pretrained`` folders from local disk only, with one clear sentence for every way they break.

diffusers' ``from_pretrained`` treats a path that is not a folder as a model-hub name (a network request),
initialises missing or misnamed weights at random with only a log line, and reports a damaged file with a
long traceback. :func:`check_pretrained_folder` checks a folder before anything loads; :func:`load_pretrained`
then loads it offline. The project's models (``WorldModel``, ``VideoTokenizer``) inherit :class:`LocalPretrained`,
so their own ``from_pretrained`` runs the same checks.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from worldmodel.io import read_json

CONFIG = "config.json"


class PretrainedFolderError(ValueError):
    """A ``save_pretrained`` folder is missing, damaged or holds another kind of model."""


def _safetensors_keys(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes of a safetensors file; raise when its header is damaged or the file truncated."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise PretrainedFolderError(f"{path} is truncated ({size} bytes): not a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise PretrainedFolderError(f"{path} is truncated: its header needs {length} bytes, the file has {size}")
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise PretrainedFolderError(f"{path} has a damaged header: not a safetensors file") from err
    if not isinstance(header, dict):
        raise PretrainedFolderError(f"{path} has a damaged header: not a safetensors file")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
    if 8 + length + end > size:
        raise PretrainedFolderError(f"{path} is truncated: {size} bytes of the {8 + length + end} its header lists")
    return {k: list(v["shape"]) for k, v in tensors.items()}


def check_pretrained_folder(folder: str | os.PathLike, class_name: str) -> dict[str, list[int]]:
    """Check that ``folder`` is a complete, undamaged ``save_pretrained`` folder of ``class_name``.

    Returns the saved tensor shapes. Raises :class:`FileNotFoundError` for a missing folder and
    :class:`PretrainedFolderError` naming the file for a malformed ``config.json``, a config of another
    class, or a missing, truncated or damaged safetensors file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected a save_pretrained folder of a {class_name})")
    config_path = folder / CONFIG
    if not config_path.is_file():
        raise PretrainedFolderError(f"{folder} holds no {CONFIG}: not a save_pretrained folder of a {class_name}")
    config = read_json(config_path, PretrainedFolderError)
    if not isinstance(config, dict):
        raise PretrainedFolderError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
    found = config.get("_class_name")
    if found != class_name:
        held = f"a {found}" if found else "no worldmodel class name"
        raise PretrainedFolderError(f"{folder} holds {held}, expected a {class_name}")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise PretrainedFolderError(f"{folder} holds no .safetensors weights for its {class_name}")
    shapes: dict[str, list[int]] = {}
    for file in files:
        shapes.update(_safetensors_keys(file))
    return shapes


def _shapes(cls: Any, config: dict[str, Any]) -> dict[str, list[int]]:
    """Tensor shapes of a ``cls`` built from ``config`` (on the meta device: no memory, no random draws)."""
    import torch

    with torch.device("meta"):
        return {k: list(v.shape) for k, v in cls.from_config(config).state_dict().items()}


def check_weights_fit(
    cls: Any, folder: str | os.PathLike, saved: dict[str, list[int]], overrides: dict[str, Any] | None = None
) -> None:
    """Raise :class:`PretrainedFolderError` unless the ``saved`` tensor shapes are those ``folder``'s config makes.

    diffusers would initialise missing tensors at random (a log line only), drop tensors the model has no
    place for (a log line only) and fails on other shapes with a long traceback. ``overrides`` (config keys
    given to ``from_pretrained``) may add tensors, which start fresh, but may not leave saved ones unused or
    change their shapes: a config such as a training preset's that disagrees with the folder's is refused.
    """
    folder = Path(folder)
    try:
        config = cls.load_config(str(folder), local_files_only=True)
        expected = _shapes(cls, config)
    except (TypeError, ValueError, KeyError) as err:
        raise PretrainedFolderError(f"{folder / CONFIG} does not describe a {cls.__name__} ({err})") from err
    changed = {k: v for k, v in (overrides or {}).items() if k in config and config[k] != v}
    if changed:
        try:
            wanted = _shapes(cls, {**config, **changed})
        except (TypeError, ValueError) as err:
            raise PretrainedFolderError(f"the settings given for {folder} make no {cls.__name__} ({err})") from err
        unused = sorted(set(saved) - set(wanted))
        reshaped = sorted(k for k in set(saved) & set(wanted) if saved[k] != wanted[k])
        if unused or reshaped:
            settings = ", ".join(f"{k}={v!r} (the folder has {config[k]!r})" for k, v in changed.items())
            what = f"{len(unused)} saved tensors unused (e.g. {unused[0]})" if unused else (
                f"{len(reshaped)} saved tensors of another shape (e.g. {reshaped[0]})")
            raise PretrainedFolderError(f"{folder}: the settings given ({settings}) leave {what}; use the folder's "
                                        "settings or drop these overrides")
    missing = sorted(set(expected) - set(saved))
    if missing:
        raise PretrainedFolderError(f"{folder}: the weights lack {len(missing)} tensors its {CONFIG} needs "
                                    f"(e.g. {missing[0]}); the folder is damaged or from an incompatible version")
    wrong = [k for k in expected if saved[k] != expected[k]]
    if wrong:
        k = wrong[0]
        raise PretrainedFolderError(f"{folder}: the weights disagree with {CONFIG} ({k} is {saved[k]}, the config "
                                    f"makes {expected[k]}; {len(wrong)} tensors differ)")


class LocalPretrained:
    """Mixin (listed before ``ModelMixin``) whose ``from_pretrained`` loads checked local folders only.

    diffusers' own ``from_pretrained`` returns a randomly initialised model from a folder of another class (a
    log line only) and treats a missing folder as a model-hub name; this one raises one sentence instead.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
        """Load the ``save_pretrained`` folder ``pretrained_model_name_or_path`` (or its ``subfolder``) offline.

        Raises :class:`FileNotFoundError` for a missing folder and :class:`PretrainedFolderError` for a folder of
        another class, a damaged one or one whose weights do not fit its config, before anything loads.
        """
        folder = Path(pretrained_model_name_or_path)
        subfolder = kwargs.pop("subfolder", None)
        if subfolder:
            folder = folder / subfolder
        check_weights_fit(cls, folder, check_pretrained_folder(folder, cls.__name__), kwargs)
        kwargs = {"low_cpu_mem_usage": False, **kwargs, "local_files_only": True}
        return super().from_pretrained(str(folder), **kwargs)  # type: ignore[misc]


def load_pretrained(cls: Any, folder: str | os.PathLike, **kwargs: Any) -> Any:
    """``cls.from_pretrained(folder)`` offline, after :func:`check_pretrained_folder` and :func:`check_weights_fit`.

    A :class:`LocalPretrained` class runs those checks in its own ``from_pretrained``; other classes here.
    """
    folder = Path(folder)
    if not issubclass(cls, LocalPretrained):
        check_weights_fit(cls, folder, check_pretrained_folder(folder, cls.__name__), kwargs)
    return cls.from_pretrained(str(folder), local_files_only=True, low_cpu_mem_usage=False, **kwargs)
