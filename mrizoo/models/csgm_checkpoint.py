"""Convert the CSGM-Langevin NCSNv2 checkpoint (Jalal et al. 2021) to safetensors, EMA weights applied.

The authors' ``checkpoint_*.pth`` is a pickled list: element 0 is the score network's state
dict saved from ``torch.nn.DataParallel`` (keys prefixed ``module.``), the last element is
the EMA shadow (parameter name -> tensor, unprefixed). Their sampler loads element 0 strictly
and then copies the EMA shadow into the parameters; this converter does the same. The list
is read with ``torch.load(weights_only=True)`` (plain containers, numbers and tensors: no code
runs). The network configuration is inferred from the tensor shapes and the stored noise
ladder, the keys and shapes are checked strictly against mrizoo's :class:`NCSNv2`, and the
tensors are written atomically to safetensors with the inferred config in the metadata.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from mrizoo._atomic import atomic_file
from mrizoo.errors import InputError
from mrizoo.models.fastmri_checkpoint import _check_against, _listing, _unshared, load_error
from mrizoo.models.ncsnv2 import NCSNv2, NCSNv2Config

__all__ = ["read_csgm_checkpoint", "infer_ncsnv2_config", "convert_csgm_checkpoint"]

_PREFIX = "module."
_NET = "net."  # where the score network sits in the zoo model (ScorePosterior)


def _tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def read_csgm_checkpoint(src: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The network's state dict from an authors' checkpoint list, with the EMA shadow applied."""
    path = Path(src)
    if not path.is_file():
        raise InputError("checkpoint file not found", path=path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and format errors all mean the same to the user
        raise InputError(f"not a readable PyTorch checkpoint ({load_error(exc)})", path=path,
                         expected="the list saved by the NCSNv2 trainer") from exc
    expected = "a list [state dict with 'module.' keys, ..., EMA dict]"
    if not isinstance(obj, (list, tuple)) or len(obj) < 2:
        raise InputError("not an NCSNv2 training checkpoint", path=path, expected=expected,
                         got=f"{type(obj).__name__} of length {len(obj)}" if isinstance(obj, (list, tuple))
                         else type(obj).__name__)
    state, shadow = obj[0], obj[-1]
    if not _tensor_dict(state):
        raise InputError("element 0 is not a state dict", path=path, field="[0]", expected=expected,
                         got=type(state).__name__)
    if not _tensor_dict(shadow):
        raise InputError("the last element is not an EMA dict of tensors", path=path, field="[-1]",
                         expected=expected, got=type(shadow).__name__)
    if all(k.startswith(_PREFIX) for k in state):
        state = {k[len(_PREFIX):]: v for k, v in state.items()}
    if all(k.startswith(_PREFIX) for k in shadow):
        shadow = {k[len(_PREFIX):]: v for k, v in shadow.items()}
    unknown = sorted(set(shadow) - set(state))
    if unknown:
        raise InputError(f"EMA entries without a network tensor: {_listing(unknown)}", path=path, field="[-1]")
    wrong = [f"{k} {tuple(v.shape)} != {tuple(state[k].shape)}" for k, v in shadow.items()
             if v.shape != state[k].shape]
    if wrong:
        raise InputError(f"EMA tensor shapes differ from the network's: {_listing(wrong)}", path=path, field="[-1]")
    return {k: shadow.get(k, v).to(v.dtype) for k, v in state.items()}


def infer_ncsnv2_config(state_dict: dict[str, torch.Tensor]) -> NCSNv2Config | None:
    """The :class:`NCSNv2Config` implied by an NCSNv2 state dict (None if not one)."""
    first, ladder = state_dict.get("begin_conv.weight"), state_dict.get("sigmas")
    if first is None or ladder is None or first.ndim != 4 or ladder.ndim != 1 or ladder.numel() < 1:
        return None
    variant = ("deepest" if any(k.startswith("res31.") for k in state_dict)
               else "deeper" if any(k.startswith("res5.") for k in state_dict) else "base")
    begin, end = (float(f"{float(ladder[i]):.6g}") for i in (0, -1))
    try:
        return NCSNv2Config(channels=int(first.shape[1]), ngf=int(first.shape[0]), variant=variant,
                            num_classes=int(ladder.numel()), sigma_begin=begin, sigma_end=end)
    except InputError:
        return None


def convert_csgm_checkpoint(src: str | os.PathLike[str], dst_safetensors: str | os.PathLike[str]) -> dict[str, Any]:
    """Convert an authors' NCSNv2 checkpoint to safetensors (EMA applied); return the inferred config.

    The tensors are stored under the names of the ``ncsnv2`` zoo model (the network under ``net.``).

    On any mismatch an :class:`InputError` names the file and the keys, and ``dst_safetensors``
    is not touched.
    """
    # imported on use: a heavy package that most calls of this module do not need
    from safetensors.torch import save_file

    path, dst = Path(src), Path(dst_safetensors)
    if not dst.parent.is_dir():
        raise InputError("output folder does not exist", path=dst.parent)
    sd = read_csgm_checkpoint(path)
    config = infer_ncsnv2_config(sd)
    with torch.device("meta"):
        reference = NCSNv2(config or NCSNv2Config())
    _check_against(sd, reference, path, "ncsnv2")
    if config is None:
        raise InputError("cannot infer the NCSNv2 configuration from the tensor shapes", path=path)
    info = dataclasses.asdict(config)
    metadata = {"arch": "ncsnv2", "config": json.dumps(info), "source": path.name}
    with atomic_file(dst) as tmp:
        save_file({_NET + k: v for k, v in _unshared(sd).items()}, str(tmp), metadata=metadata)
    return info
