"""From a study to its runs: pool references resolved, one merged training recipe per arm and seed.

Every arm's recipe is the arm's (or the study's) recipe with, in this order, the study's
``overrides``, the arm's ``overrides``, the arm's ``train``/``val`` pool references and its seed
merged on; its OOD validation sets are replaced by the study's evaluation sets, so that every
run is validated on every set during training (the curves of Figure 8 and the early-stopping
points of the scatter come from those validations). Pool references name a pool of the study's
``pools`` (written to ``OUT/pools/<name>.yaml``), a shipped pool, or a pool file (relative to the
study file), optionally with ``:<test set>``. All of it is checked here, before any work.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mrizoo._dataclass_io import from_dict, to_dict
from mrizoo.errors import InputError
from mrizoo.pools import list_pools, load_pool, pool_from_dict
from mrizoo.study.schema import StudyInfo, StudySpec
from mrizoo.train.recipe import TrainingRecipe, deep_merge, load_recipe, validate_recipe

__all__ = ["RunPlan", "StudyPlan", "plan_study", "run_id"]


@dataclass(frozen=True)
class RunPlan:
    """One training run: an arm at one seed, its merged recipe (YAML text) and where it lives."""

    arm: str
    seed: int
    label: str
    recipe_text: str
    recipe_sha256: str
    recipe_path: Path
    run_dir: Path
    train_ref: str | None
    masks: dict[str, Any]
    target: str


@dataclass(frozen=True)
class StudyPlan:
    """All runs of a study, its resolved pool files and evaluation set sources."""

    runs: tuple[RunPlan, ...]
    pool_files: dict[str, str]  # OUT-relative file name -> YAML text (the study's inline pools)
    set_refs: dict[str, dict[str, str]]  # set -> {"pool": resolved ref} or {"folder": abs path}


def run_id(arm: str, seed: int) -> str:
    return f"{arm}-seed{seed}"


def _looks_like_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref


class _Resolver:
    """Turns pool references of the study into references ``mrizoo.train`` reads (and checks the set names)."""

    def __init__(self, spec: StudySpec, info: StudyInfo, out: Path) -> None:
        self.info, self.out = info, out
        self.shipped = set(list_pools())
        self.inline: dict[str, Any] = {}
        self.files: dict[str, str] = {}
        for name, mapping in spec.pools.items():
            if not isinstance(mapping, dict):
                raise InputError("expected a pool mapping", path=info.path, field=f"study.pools.{name}",
                                 got=type(mapping).__name__)
            data = {"name": name, **mapping}
            try:
                self.inline[name] = pool_from_dict(data, source=info.path)
            except InputError as err:
                raise InputError(err.problem, path=info.path, field=f"study.pools.{name}.{err.field or ''}".rstrip("."),
                                 expected=err.expected, got=err.got) from None
            self.files[f"pools/{name}.yaml"] = yaml.safe_dump(data, sort_keys=False)
        self._load = load_pool

    def resolve(self, ref: str, key: str) -> str:
        if not isinstance(ref, str) or not ref.strip():
            raise InputError("empty pool reference", path=self.info.path, field=key, expected="POOL or POOL:SET")
        pool, _, which = ref.partition(":")
        if pool in self.inline:
            spec, resolved = self.inline[pool], str((self.out / "pools" / f"{pool}.yaml").resolve())
        elif pool in self.shipped and not _looks_like_path(pool):
            spec, resolved = self._load(pool), pool
        else:
            path = Path(pool).expanduser()
            path = path if path.is_absolute() else self.info.folder / path
            if not path.is_file():
                raise InputError("unknown pool: not a pool of the study, a shipped pool or a pool file",
                                 path=self.info.path, field=key,
                                 expected=f"one of {sorted(self.inline)} or {sorted(self.shipped)}, or a .yaml path",
                                 got=repr(pool))
            try:
                spec = self._load(path)
            except InputError as err:
                raise InputError(f"{err}", path=self.info.path, field=key) from None
            resolved = str(path.resolve())
        if which and which not in spec.test:
            raise InputError(f"pool {pool!r} has no test set {which!r}", path=self.info.path, field=key,
                             expected=f"one of {sorted(spec.test)}", got=repr(which))
        if not which and not spec.train:
            raise InputError(f"pool {pool!r} has no training selection", path=self.info.path, field=key,
                             expected=f"POOL:SET with SET one of {sorted(spec.test)}", got=repr(ref))
        return resolved + (f":{which}" if which else "")


def _recipe_mapping(ref: str, folder: Path, key: str, source: str) -> tuple[dict[str, Any], str]:
    """The full ``training`` mapping of a recipe (every default filled in), and the recipe's name."""
    target: str | Path = ref
    if _looks_like_path(ref):
        p = Path(ref).expanduser()
        target = p if p.is_absolute() else folder / p
        if not Path(target).is_file():
            raise InputError("recipe file not found", path=source, field=key, got=str(target))
    recipe, info = load_recipe(target)
    mapping = to_dict(recipe)
    mapping["smoke"] = {}
    return mapping, info.name


def _remap(err: InputError, source: str, spec: StudySpec, arm: str) -> InputError:
    """An error of a merged recipe, named at the study key that set the value (arm, then study overrides)."""
    sub = (err.field or "").removeprefix("training").lstrip(".")
    head = sub.split(".")[0].split("[")[0]
    if head in spec.arms[arm].overrides:
        where = f"study.arms.{arm}.overrides"
    elif head in spec.overrides:
        where = "study.overrides"
    elif head == "data":
        where = f"study.arms.{arm}"
    else:
        where = f"study.arms.{arm}.recipe"
    field = f"{where}.{sub}" if sub else where
    return InputError(f"{err.problem} (in the recipe of arm {arm!r})", path=source, field=field,
                      expected=err.expected, got=err.got)


def plan_study(spec: StudySpec, info: StudyInfo, out: str | Path) -> StudyPlan:
    """Resolve and check every reference of the study and build the merged recipe of every run."""
    out = Path(out)
    res = _Resolver(spec, info, out)
    set_refs: dict[str, dict[str, str]] = {}
    for name, es in spec.evaluation.sets.items():
        if es.pool is not None:
            set_refs[name] = {"pool": res.resolve(es.pool, f"study.evaluation.sets.{name}.pool")}
        else:
            folder = Path(str(es.folder)).expanduser()
            folder = folder if folder.is_absolute() else info.folder / folder
            if not folder.exists():
                raise InputError("folder not found", path=info.path, field=f"study.evaluation.sets.{name}.folder",
                                 got=str(folder))
            set_refs[name] = {"folder": str(folder.resolve())}
    ood = {name: ({"pool": r["pool"]} if "pool" in r else {"folders": [r["folder"]]}) for name, r in set_refs.items()}

    runs: list[RunPlan] = []
    for arm_name, arm in spec.arms.items():
        ref = arm.recipe or spec.recipe or ""
        key = f"study.arms.{arm_name}.recipe" if arm.recipe else "study.recipe"
        base, _ = _recipe_mapping(ref, info.folder, key, info.path)
        merged = deep_merge(deep_merge(base, spec.overrides), arm.overrides)
        data = merged.setdefault("data", {})
        train_ref = None
        if arm.train is not None:
            train_ref = res.resolve(arm.train, f"study.arms.{arm_name}.train")
            data["train"] = {"pool": train_ref}
        elif isinstance(data.get("train"), dict) and data["train"].get("pool"):
            train_ref = str(data["train"]["pool"])
        if arm.val is not None:
            data["val"] = {"pool": res.resolve(arm.val, f"study.arms.{arm_name}.val")}
        data["ood"] = dict(ood)
        es = merged.get("early_stopping") or {}
        if es.get("rule") == "ood" and not es.get("ood_set"):
            raise InputError("the 'ood' rule must name its ood_set: the study validates every run on every "
                             "evaluation set", path=info.path, field=f"study.arms.{arm_name}.overrides.early_stopping.ood_set",
                             expected=f"one of {sorted(ood)}")
        for seed in arm.seeds if arm.seeds is not None else spec.seeds:
            mapping = {**merged, "seed": int(seed)}
            try:
                recipe = from_dict(TrainingRecipe, mapping, source=info.path, prefix="training")
                validate_recipe(recipe, info.path)
            except InputError as err:
                raise _remap(err, info.path, spec, arm_name) from None
            text = (f"# recipe of arm {arm_name!r}, seed {seed}, of study {spec.name!r} ({info.path}); written by "
                    "`mrizoo study`\n" + yaml.safe_dump({"training": to_dict(recipe)}, sort_keys=False))
            rid = run_id(arm_name, int(seed))
            runs.append(RunPlan(
                arm=arm_name, seed=int(seed), label=arm.label or arm_name, recipe_text=text,
                recipe_sha256=hashlib.sha256(text.encode()).hexdigest(),
                recipe_path=out / "recipes" / f"{rid}.yaml", run_dir=out / "runs" / rid, train_ref=train_ref,
                masks=to_dict(recipe.masks), target=recipe.data.target,
            ))
    return StudyPlan(runs=tuple(runs), pool_files=res.files, set_refs=set_refs)
