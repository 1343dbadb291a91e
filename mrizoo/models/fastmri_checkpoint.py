"""Convert fastMRI's official ``.pt`` checkpoints (bare state dicts) to safetensors.

The official files are plain pickles of a ``state_dict``; they are loaded with
``weights_only=True`` (no code runs), the architecture is inferred from the tensor shapes,
the keys and shapes are checked strictly against the mrizoo model, and the tensors are
written to a safetensors file atomically (temporary file + rename; nothing is left behind
on failure). The inferred config is stored in the file's metadata (``arch``, ``config``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import torch

from mrizoo._atomic import atomic_file
from mrizoo.errors import InputError
from mrizoo.models.unet import UNET_FASTMRI_LEADERBOARD, Unet, UnetConfig
from mrizoo.models.varnet import VARNET_FASTMRI_LEADERBOARD, VarNet, VarNetConfig

__all__ = ["convert_fastmri_checkpoint", "infer_unet_config", "infer_varnet_config"]

_ARCHS = ("varnet", "unet")
_LIST_LIMIT = 12


def _indices(keys: list[str], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in keys if (m := pattern.match(k))})


def _unet_params(sd: dict[str, torch.Tensor], prefix: str) -> tuple[int, int, int, int] | None:
    """``(in_chans, out_chans, chans, num_pool_layers)`` of the U-Net under ``prefix``, if present."""
    first = sd.get(f"{prefix}down_sample_layers.0.layers.0.weight")
    pools = len(_indices(list(sd), f"{prefix}down_sample_layers."))
    last = sd.get(f"{prefix}up_conv.{pools - 1}.1.weight")
    if first is None or last is None or first.ndim != 4 or last.ndim != 4:
        return None
    return int(first.shape[1]), int(last.shape[0]), int(first.shape[0]), pools


def infer_unet_config(state_dict: dict[str, torch.Tensor]) -> UnetConfig | None:
    """The :class:`UnetConfig` implied by a fastMRI U-Net state dict (None if not one)."""
    params = _unet_params(state_dict, "")
    if params is None:
        return None
    in_chans, out_chans, chans, pools = params
    return UnetConfig(in_chans=in_chans, out_chans=out_chans, chans=chans, num_pool_layers=pools)


def infer_varnet_config(state_dict: dict[str, torch.Tensor]) -> VarNetConfig | None:
    """The :class:`VarNetConfig` implied by a fastMRI VarNet state dict (None if not one).

    ``mask_center`` holds no weights and cannot be inferred; fastMRI's default (True) is used.
    """
    keys = list(state_dict)
    sens = _unet_params(state_dict, "sens_net.norm_unet.unet.")
    cascades = len(_indices(keys, "cascades."))
    casc = _unet_params(state_dict, "cascades.0.model.unet.")
    if sens is None or casc is None:
        return None
    return VarNetConfig(num_cascades=cascades, sens_chans=sens[2], sens_pools=sens[3],
                        chans=casc[2], pools=casc[3])


def load_error(exc: Exception) -> str:
    """A one-line reason for a failed ``torch.load(weights_only=True)`` (torch's own text is a page long)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if "WeightsUnpickler error" in line:  # the reason follows torch's advice on weights_only=False
            reason = line.split("WeightsUnpickler error:", 1)[-1].strip() or (lines[i + 1] if i + 1 < len(lines)
                                                                              else "")
            reason = reason.split(" was not an allowed global")[0]  # drop torch's advice to allow-list it
            return f"torch.load(weights_only=True) refused it: {reason}"
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text[:200]}"


def _load_state_dict(src: Path) -> dict[str, torch.Tensor]:
    if not src.is_file():
        raise InputError("checkpoint file not found", path=src)
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and format errors all mean the same to the user
        raise InputError(f"not a readable PyTorch checkpoint ({load_error(exc)})",
                         path=src, expected="a state dict saved with torch.save") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a training checkpoint wrapping the weights
    if not isinstance(obj, dict) or not obj:
        raise InputError("checkpoint does not hold a state dict", path=src,
                         expected="a non-empty mapping of names to tensors", got=type(obj).__name__)
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InputError("state dict entries must map names to tensors", path=src,
                         got=f"{len(bad)} bad entries, e.g. {bad[0]!r}")
    return obj


def _strip_module_prefix(sd: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """Drop a common ``varnet.`` / ``unet.`` / ``module.`` prefix (Lightning / DataParallel wrappers)."""
    for prefix in ("module.", f"{arch}."):
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _unshared(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors; those sharing memory with another entry are copied (safetensors needs it)."""
    owners: dict[int, int] = {}
    for v in sd.values():
        ptr = v.untyped_storage().data_ptr()
        owners[ptr] = owners.get(ptr, 0) + 1
    out = {}
    for k, v in sd.items():
        shared = owners[v.untyped_storage().data_ptr()] > 1
        out[k] = v.detach().clone(memory_format=torch.contiguous_format) if shared else v.detach().contiguous()
    return out


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LIST_LIMIT])
    return shown + (f", ... ({len(names) - _LIST_LIMIT} more)" if len(names) > _LIST_LIMIT else "")


def _check_against(sd: dict[str, torch.Tensor], model: torch.nn.Module, src: Path, arch: str) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listing(unexpected)}")
        raise InputError(f"keys do not match the {arch} model; " + "; ".join(parts), path=src,
                         expected=f"{len(expected)} tensors", got=f"{len(sd)} tensors")
    wrong = [f"{k} {tuple(sd[k].shape)} != {s}" for k, s in expected.items() if tuple(sd[k].shape) != s]
    if wrong:
        raise InputError(f"tensor shapes do not match the {arch} model: {_listing(wrong)}", path=src)


def convert_fastmri_checkpoint(
    src_pt: str | os.PathLike[str],
    dst_safetensors: str | os.PathLike[str],
    arch: Literal["varnet", "unet"] = "varnet",
) -> dict[str, Any]:
    """Convert a fastMRI ``.pt`` state dict to safetensors; return the inferred config as a dict.

    The keys and shapes must match :class:`~mrizoo.models.varnet.VarNet` (``arch="varnet"``)
    or :class:`~mrizoo.models.unet.Unet` (``arch="unet"``) built from the inferred config
    exactly; otherwise an :class:`InputError` names the file and the offending keys, and
    ``dst_safetensors`` is not touched.
    """
    # imported on use: a heavy package that most calls of this module do not need
    from safetensors.torch import save_file

    if arch not in _ARCHS:
        raise InputError("unknown architecture", field="arch", expected=" or ".join(_ARCHS), got=repr(arch))
    src, dst = Path(src_pt), Path(dst_safetensors)
    if not dst.parent.is_dir():
        raise InputError("output folder does not exist", path=dst.parent)
    sd = _strip_module_prefix(_load_state_dict(src), arch)

    config: UnetConfig | VarNetConfig | None
    if arch == "varnet":
        config = infer_varnet_config(sd)
        default: UnetConfig | VarNetConfig = VARNET_FASTMRI_LEADERBOARD
    else:
        config = infer_unet_config(sd)
        default = UNET_FASTMRI_LEADERBOARD
    with torch.device("meta"):  # shapes only, no memory
        reference = (VarNet if arch == "varnet" else Unet)(config or default)  # type: ignore[arg-type]
    _check_against(sd, reference, src, arch)
    if config is None:  # unreachable when keys and shapes match; kept as a clear error
        raise InputError(f"cannot infer the {arch} configuration from the tensor shapes", path=src)

    tensors = _unshared(sd)
    metadata = {"arch": arch, "config": json.dumps(asdict(config)), "source": src.name}
    with atomic_file(dst) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return asdict(config)
