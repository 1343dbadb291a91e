"""Turn what a user passes to ``mrizoo.load`` into a checkpoint folder, and list or clean what was cached.

A load spec is one of:

- ``"hf-hub:org/repo[/subfolder][@revision]"``: a checkpoint in a Hub repo (revision ``main``
  when left out; pin a commit sha for reproducible results);
- a path to an existing folder holding ``config.json`` (+ ``model.safetensors``);
- a zoo name: its locally trained weights (``$MRIZOO_HOME/zoo/<name>/``) when present and
  ``prefer_local``, else the entry's source -- ``hub`` (pinned revision, sha256 checked),
  ``upstream`` (downloaded and converted once), ``builtin`` (nothing to load) or ``none``
  (an error saying which recipe trains it).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mrizoo._paths import downloads_root, local_zoo_root, mrizoo_home, quarantine_root, upstream_root
from mrizoo.errors import InputError, WeightsUnavailableError
from mrizoo.hub.download import (
    HubLocation,
    cached_zoo_repos,
    delete_cached_repos,
    fetch_hub_checkpoint,
    parse_hub_spec,
    snapshot_commit,
)
from mrizoo.hub.layout import CONFIG_NAME, HF_HUB_PREFIX, spec_kind
from mrizoo.models.checkpoint import read_config
from mrizoo.weights import package_checkpoint
from mrizoo.zoo import registry
from mrizoo.zoo.local import find_local_checkpoint, local_zoo_dir
from mrizoo.zoo.upstream import fetch_upstream

__all__ = ["ResolvedCheckpoint", "resolve_checkpoint", "hub_location", "no_weights_error", "CacheItem",
           "cached_items", "remove_cached"]

logger = logging.getLogger("mrizoo.zoo")
Origin = Literal["dir", "local-zoo", "hub", "upstream", "package", "builtin"]


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """Where a load spec's weights are: ``folder`` is None for builtin entries (nothing to load)."""

    folder: Path | None
    origin: Origin
    description: str
    name: str | None = None
    sha256: str | None = None
    sha256_pinned: bool = False
    revision: str | None = None
    hub_repo: str | None = None

    @property
    def kind(self) -> str:
        """The ``weights_source["kind"]`` of a model loaded from here."""
        return {"dir": "folder", "local-zoo": "local"}.get(self.origin, self.origin)

    @property
    def location(self) -> str:
        """``org/repo[/subfolder]`` for Hub checkpoints, else the folder."""
        if self.origin == "hub" and self.hub_repo:
            return self.hub_repo
        return "" if self.folder is None else str(self.folder)


def no_weights_error(name: str) -> WeightsUnavailableError:
    """The error for a zoo entry that has no published weights (says which recipe trains them)."""
    entry = registry.REGISTRY.get(name)
    how = (f"train them with the recipe {entry.recipe!r} (recipes/{entry.recipe}.yaml; trained weights saved to "
           f"{local_zoo_dir(name)} load by this name)" if entry.recipe else "none are published")
    return WeightsUnavailableError(f"zoo model {name!r} has no pretrained weights yet; {how}, "
                                   f"or use mrizoo.create({name!r}) for a randomly initialised model")


def hub_location(name: str, revision: str | None = None) -> HubLocation:
    """The Hub location of a zoo entry with hub weights; another ``revision`` drops the entry's sha256."""
    src = registry.REGISTRY.get(name).weights
    if src.kind != "hub" or not src.repo_id or not src.revision:
        raise InputError(f"zoo model {name!r} has no Hub weights", field="weights.kind", expected="hub",
                         got=src.kind)
    if revision is None or revision == src.revision:
        return HubLocation(src.repo_id, src.revision, src.filename, src.sha256)
    logger.warning("%s: using revision %s instead of the pinned %s; its sha256 is not checked",
                   name, revision, src.revision)
    return HubLocation(src.repo_id, revision, src.filename, None)


def _check_arch(folder: Path, name: str, arch: str, source: str, where: str | Path) -> None:
    """A published checkpoint must be of its entry's architecture (``where`` names it in the error)."""
    got = read_config(folder)["arch"]
    if got != arch:
        raise InputError(f"zoo model {name!r}: the {source} checkpoint is of another architecture", path=where,
                         field="arch", expected=arch, got=got)


_SHADOWED = {"package": "the shipped package weights", "hub": "the published Hub weights",
             "upstream": "the published upstream weights"}


def _announce_local(name: str, folder: Path, published: str) -> None:
    """Say, at every load, that locally trained weights are used; a warning when they hide published ones.

    Warnings go to the ``mrizoo.zoo`` logger, which prints one line on stderr even when the
    application configured no logging.
    """
    if published in _SHADOWED:
        logger.warning("%s: loading the locally trained weights in %s instead of %s (mrizoo.load(name, "
                       "prefer_local=False) loads those; remove the folder to drop the local ones)",
                       name, folder, _SHADOWED[published])
    else:
        logger.info("%s: loading the locally trained weights in %s", name, folder)


def _resolve_name(name: str, revision: str | None, prefer_local: bool) -> ResolvedCheckpoint:
    entry = registry.REGISTRY.get(name)
    if prefer_local:
        local = find_local_checkpoint(name, entry.model.arch)
        if local is not None:
            if revision is not None:
                raise InputError(f"zoo model {name!r} loads locally trained weights, which have no revisions",
                                 field="revision", expected="None (or prefer_local=False)", got=revision)
            _announce_local(name, local, entry.weights.kind)
            return ResolvedCheckpoint(local, "local-zoo", f"locally trained ({local})", name)
    kind = entry.weights.kind
    if kind == "none":
        raise no_weights_error(name)
    if revision is not None and kind != "hub":
        raise InputError(f"zoo model {name!r} has {kind} weights, which have no revisions", field="revision",
                         expected="None", got=revision)
    if kind == "builtin":
        return ResolvedCheckpoint(None, "builtin", "builtin (no learned weights)", name)
    if kind == "package":
        src = entry.weights
        folder = package_checkpoint(str(src.path), str(src.sha256), what=name)
        _check_arch(folder, name, entry.model.arch, "shipped", folder / CONFIG_NAME)
        return ResolvedCheckpoint(folder, "package", f"shipped with mrizoo ({folder})", name, src.sha256, True)
    if kind == "hub":
        loc = hub_location(name, revision)
        folder, digest = fetch_hub_checkpoint(loc, what=name)
        _check_arch(folder, name, entry.model.arch, "Hub", f"{HF_HUB_PREFIX}{loc}/{CONFIG_NAME}")
        return ResolvedCheckpoint(folder, "hub", f"hub {loc}", name, digest, loc.sha256 is not None,
                                  snapshot_commit(folder) or loc.revision, loc.repo_path)
    up = fetch_upstream(name)
    return ResolvedCheckpoint(up.folder, "upstream", f"upstream {up.url} (converted)", name, up.sha256,
                              up.sha256_pinned)


def resolve_checkpoint(spec: str | os.PathLike[str], *, revision: str | None = None,
                       prefer_local: bool = True) -> ResolvedCheckpoint:
    """The checkpoint folder a load spec stands for, downloading and converting as needed."""
    text = os.fspath(spec) if isinstance(spec, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text:
        raise InputError("a load spec must be a zoo name, an hf-hub: reference or a folder path", field="name",
                         got=repr(spec))
    kind = spec_kind(spec)
    if kind == "hub" and text.startswith(HF_HUB_PREFIX):
        loc = parse_hub_spec(text, revision)
        folder, digest = fetch_hub_checkpoint(loc, what=f"{HF_HUB_PREFIX}{loc}")
        return ResolvedCheckpoint(folder, "hub", f"hub {loc}", None, digest, False,
                                  snapshot_commit(folder) or loc.revision, loc.repo_path)
    path = Path(text).expanduser()
    if isinstance(spec, str) and (kind == "name" or text in registry.REGISTRY.names()):
        return _resolve_name(text, revision, prefer_local)  # a registered name wins over a folder of that name
    if not path.is_dir():
        hint = f"; for a Hub repo write {HF_HUB_PREFIX}{text}@REVISION" if kind == "hub" else ""
        raise InputError(f"no checkpoint folder here{hint}", path=path)
    if not (path / CONFIG_NAME).is_file():
        raise InputError("not a checkpoint folder: config.json is missing", path=path)
    if revision is not None:
        raise InputError("a local checkpoint folder has no revisions", field="revision", expected="None",
                         got=revision)
    return ResolvedCheckpoint(path, "dir", f"folder {path}")


@dataclass(frozen=True)
class CacheItem:
    """One thing mrizoo stored: ``removable`` is False for locally trained weights (never cleaned)."""

    kind: Literal["hub", "upstream", "download", "quarantine", "local-zoo"]
    label: str
    path: Path
    size: int
    removable: bool = True
    repo: object = None  # the huggingface_hub CachedRepoInfo of a hub item


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _children(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()) if folder.is_dir() else []


def _entry_repo_ids(name: str | None) -> set[str]:
    reg = registry.REGISTRY
    entries = [reg.get(name)] if name else [reg.get(n) for n in reg.names()]
    return {e.weights.repo_id for e in entries if e.weights.kind == "hub" and e.weights.repo_id}


def cached_items(name: str | None = None) -> list[CacheItem]:
    """What mrizoo cached (all, or for one zoo name or ``hf-hub:org/repo`` spec), plus the local zoo.

    Hub items are the Hugging Face cache entries of the zoo's repos (the registry's hub
    entries, and repos holding an mrizoo checkpoint); nothing else of that cache is listed.
    """
    items: list[CacheItem] = []
    if name is not None and name.startswith(HF_HUB_PREFIX):
        repo_id = parse_hub_spec(name).repo_id
        repos = [r for r in cached_zoo_repos({repo_id}, any_mrizoo=False)]
        names: list[str] = []
        qdirs = [quarantine_root() / "hub" / ("models--" + repo_id.replace("/", "--"))]
    else:
        if name is not None:
                    registry.REGISTRY.get(name)  # unknown names fail with suggestions
        repo_ids = _entry_repo_ids(name)
        repos = cached_zoo_repos(repo_ids, any_mrizoo=name is None)
        names = [name] if name else [p.name for p in _children(upstream_root()) + _children(downloads_root())
                                     + _children(local_zoo_root()) + _children(quarantine_root() / "upstream")]
        qdirs = ([quarantine_root() / "hub" / ("models--" + r.replace("/", "--")) for r in repo_ids]
                 if name else _children(quarantine_root() / "hub"))
        qdirs += [quarantine_root() / "upstream" / n for n in dict.fromkeys(names)]
    for repo in repos:
        revs = ", ".join(sorted(r.commit_hash[:12] for r in repo.revisions))
        items.append(CacheItem("hub", f"{repo.repo_id} (revisions {revs})", Path(repo.repo_path),
                               int(repo.size_on_disk), repo=repo))
    for n in dict.fromkeys(names):
        for folder in _children(upstream_root() / n):
            items.append(CacheItem("upstream", f"{n} (converted)", folder, _size(folder)))
        for f in _children(downloads_root() / n):
            items.append(CacheItem("download", f"{n} (partial download)", f, _size(f)))
    for q in dict.fromkeys(qdirs):
        if q.exists():
            items.append(CacheItem("quarantine", f"{q.name} (failed sha256 check)", q, _size(q)))
    for n in dict.fromkeys(names):
        folder = local_zoo_root() / n
        if folder.is_dir():
            items.append(CacheItem("local-zoo", f"{n} (locally trained, not cleaned)", folder, _size(folder),
                                   removable=False))
    return items


def remove_cached(items: list[CacheItem]) -> int:
    """Delete the removable items (never locally trained weights); return the bytes freed."""
    home = mrizoo_home().resolve()
    freed = delete_cached_repos([i.repo for i in items if i.kind == "hub" and i.removable])
    for item in items:
        if not item.removable or item.kind == "hub":
            continue
        target = item.path.resolve()
        if home not in target.parents or local_zoo_root().resolve() in (target, *target.parents):
            raise InputError("refusing to delete outside mrizoo's cache folders", path=item.path)
        if item.path.is_dir():
            shutil.rmtree(item.path)
        elif item.path.exists():
            item.path.unlink()
        freed += item.size
    for root in (upstream_root(), downloads_root()):  # drop emptied per-name folders
        for folder in _children(root):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return freed
