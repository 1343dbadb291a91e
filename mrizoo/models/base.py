"""The one interface every zoo model implements.

Tensor layouts (used everywhere in mrizoo):

- ``kspace``: complex64 ``[B, C, H, W]`` -- undersampled multi-coil k-space, zeros where not
  sampled, centred (DC in the middle), W = phase-encode axis.
- ``mask``: bool ``[B, H, W]`` or ``[H, W]`` (broadcast over the batch) -- True where sampled.
  Also accepted, and normalised by :func:`check_inputs`: a column mask ``[W]`` (what a fastMRI
  file stores) or ``[B, W]``; fastMRI's broadcast layouts ``[1, 1, W, 1]``, ``[B, 1, 1, W, 1]``,
  ``[B, 1, H, W, 1]``, ``[B, 1, 1, W]`` and ``[B, 1, H, W]``; ``[1, H, W]``. Where ``[B, W]`` and
  ``[H, W]`` coincide (``B == H``) the mask is read as ``[H, W]``. Integer or float masks holding
  only 0 and 1 (fastMRI stores float32 masks) are read as bool; any other value is refused, as is
  a mask that samples nothing. A column mask and the same columns as ``[H, W]`` give identical
  results. NumPy arrays are accepted wherever a tensor is.
- ``maps``: complex64 ``[B, C, H, W]`` -- coil sensitivities (ESPIRiT); estimated from the
  calibration region when a model needs them and none are given.
- refused with :class:`~mrizoo.errors.InputError` before any work: k-space holding NaN or Inf,
  k-space that is all zero (or zero at every sampled location), maps that do not fit or are not
  finite. The k-space is returned zeroed outside the mask, so no model (nor its ESPIRiT maps)
  ever sees an unmeasured sample.
- output of ``reconstruct``: float32 ``[B, H, W]`` magnitude image at the input's size.
- output of ``sample``: :class:`PosteriorSamples` with ``samples`` ``[n, B, H, W]`` and their
  pixel-wise ``mean`` and ``std`` ``[B, H, W]``.

``forward`` stays each architecture's native call (state-dict and output parity with the
reference implementations); ``reconstruct`` / ``sample`` adapt the common inputs to it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mrizoo.errors import InputError
from mrizoo.hub.download import FetchOptions, snapshot_commit
from mrizoo.hub.layout import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, spec_kind
from mrizoo.models.adapt import AdaptConfig, adapt
from mrizoo.models.checkpoint import basic_card, save_pretrained
from mrizoo.models.inputs import PosteriorSamples, check_inputs
from mrizoo.models.pretrained import hub_folder, load_folder
from mrizoo.physics.espirit import espirit_maps

if TYPE_CHECKING:
    from mrizoo.hub.upload import Upload

__all__ = ["ReconModel", "PosteriorSamples", "check_inputs"]


class ReconModel(nn.Module):
    """Base class of zoo models: ``reconstruct`` for all, ``sample`` for posterior models."""

    needs_maps: bool = False
    is_posterior: bool = False
    #: how test-time adaptation predicts this model's k-space (``varnet``, ``modl``, ``image``,
    #: ``rcgan``); ``None``: the model cannot adapt (see :mod:`mrizoo.models.adapt`)
    adapt_family: str | None = None

    def reconstruct(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Magnitude image ``[B, H, W]``. ``generator`` seeds a posterior model's draws; deterministic
        methods ignore it (ConvDecoder is seeded by its config's ``seed``)."""
        raise NotImplementedError

    def sample(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, n: int = 32, *,
        generator: torch.Generator | None = None,
    ) -> PosteriorSamples:
        raise TypeError(f"{type(self).__name__} is not a posterior model; use reconstruct()")

    def adapt(
        self, kspace: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None, *,
        steps: int | None = None, lr: float | None = None, holdout: float | None = None,
        params: str | None = None, seed: int | None = None, progress: bool = True, **options: Any,
    ) -> "ReconModel":
        """A copy adapted to this scan by self-supervised test-time training (this model is untouched).

        Unset options take the defaults of :class:`mrizoo.models.adapt.AdaptConfig` (``options``
        passes its other fields); ``params`` is ``"all"``, ``"norm"`` or ``"last"``. The copy's
        ``adaptation`` records the steps run, the kept step and the time.
        """
        given = {"steps": steps, "lr": lr, "holdout": holdout, "params": params, "seed": seed, **options}
        unknown = sorted(set(given) - set(AdaptConfig.__dataclass_fields__))
        if unknown:
            raise InputError("unknown adaptation option", field=unknown[0],
                             expected=", ".join(AdaptConfig.__dataclass_fields__), got=unknown[0])
        cfg = replace(AdaptConfig(), **{k: v for k, v in given.items() if v is not None})
        return adapt(self, kspace, mask, maps, cfg, progress=progress)

    def save_pretrained(self, directory: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write this zoo model as a checkpoint folder (see :func:`mrizoo.models.checkpoint.save_pretrained`)."""
        return save_pretrained(self, directory, **kwargs)

    def push_to_hub(self, repo_id: str, *, revision: str | None = None, private: bool = False,
                    token: str | None = None, commit_message: str | None = None, card: str | None = None,
                    license: str = "other") -> Upload:
        """Upload this model as a checkpoint (``config.json``, ``model.safetensors``, ``README.md``) in one commit.

        ``card`` is the README (default: :func:`~mrizoo.models.checkpoint.basic_card` with ``license``,
        which makes no claims; ``mrizoo push`` publishes a zoo model with its full card). ``revision``: the branch
        (created when missing); ``token`` is used for this upload only and never shown.
        """
        # imported on use: the Hub's upload client (httpx, trio) adds about 0.3 s to importing any model
        from huggingface_hub import HfApi

        from mrizoo.hub.upload import upload_folder

        api = HfApi(token=token) if token is not None else None
        with tempfile.TemporaryDirectory(prefix="mrizoo-push-") as tmp:
            folder = save_pretrained(self, Path(tmp) / "checkpoint")
            (folder / CARD_NAME).write_text(card if card is not None else basic_card(folder, license), encoding="utf-8")
            return upload_folder(folder, repo_id, [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME], what=repo_id,
                                 revision=revision, private=private, commit_message=commit_message, api=api)

    @classmethod
    def from_pretrained(
        cls, repo_or_dir: str | os.PathLike[str], revision: str | None = None, *,
        token: str | bool | None = None, cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False, force_download: bool = False,
        map_location: str | torch.device = "cpu",
    ) -> "ReconModel":
        """A model from a checkpoint folder or a Hub repo (``org/repo`` or ``hf-hub:org/repo[/subfolder][@rev]``).

        Hub options as in ``huggingface_hub``: pin ``revision`` (a commit sha; default ``main``),
        ``token`` (never logged), ``cache_dir``, ``local_files_only``, ``force_download``. The
        weights' sha256 is checked against ``config.json`` and loaded strictly. Zoo names load
        with :func:`mrizoo.load`, which also attaches the zoo entry.
        """
        spec = os.fspath(repo_or_dir)
        if spec_kind(repo_or_dir) == "hub":
            options = FetchOptions(token=token, cache_dir=cache_dir, local_files_only=local_files_only,
                                   force_download=force_download)
            folder, _, loc = hub_folder(spec, revision=revision, options=options)
            model, _ = load_folder(folder, map_location=map_location)
            model.weights_source = {**model.weights_source, "kind": "hub", "location": loc.repo_path,
                                    "revision": snapshot_commit(folder) or loc.revision}
        else:
            path = Path(spec).expanduser()
            if not path.is_dir():
                raise InputError("no checkpoint folder here; a zoo name loads with mrizoo.load(name), a Hub repo "
                                 "is written org/repo or hf-hub:org/repo", path=path, field="repo_or_dir",
                                 expected="a checkpoint folder or a Hub repo", got=spec)
            if revision is not None:
                raise InputError("a local checkpoint folder has no revisions", field="revision",
                                 expected="None", got=revision)
            model, _ = load_folder(path, map_location=map_location)
        if not isinstance(model, cls):
            raise InputError("the checkpoint holds another kind of model", field="repo_or_dir",
                             expected=cls.__name__, got=type(model).__name__)
        return model

    def _maps(self, kspace: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor:
        if maps is not None:
            return maps

        return espirit_maps(kspace)
