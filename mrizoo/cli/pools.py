"""``mrizoo pool`` (list pools, build a data root's slice index, show a pool's selection counts)
and ``mrizoo similarity`` (nearest-neighbour similarity of a pool's test sets to its training set)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mrizoo.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pool", help="list training pools; index a data root and count a pool's slices",
        description="Without POOL: list the shipped pools. With POOL (a shipped name or a .yaml file) "
                    "and no --root: show its selections. With --root: build (or reuse) the slice index "
                    "of the data root and print the volumes and slices the pool selects per set and dataset.",
    )
    p.add_argument("pool", nargs="?", help="shipped pool name or pool .yaml file")
    _index_arguments(p)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=_pool)

    p = sub.add_parser(
        "similarity", help="train-test nearest-neighbour feature similarity of a pool",
        description="For every test image of the pool's test sets, the cosine similarity of its features "
                    "to the nearest training image, summarised per test set (Lin & Heckel 2024, Fig. 5/10).",
    )
    p.add_argument("pool", help="shipped pool name or pool .yaml file")
    _index_arguments(p)
    p.add_argument("--features", default="default",
                   help="'default' (weight-free thumbnail + spectrum), 'timm' (the CLIP ViT-B/16 of the paper), "
                        "'timm:<model>' or 'timm:<model>@<weights file>'")
    p.add_argument("--train-per-dataset", type=int, default=256, help="training slices read per dataset")
    p.add_argument("--test-per-set", type=int, default=256, help="slices read per test set")
    p.add_argument("--patch-size", type=int, default=None, help="compare random foreground patches (paper: 80)")
    p.add_argument("--patches-per-image", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="device of a timm feature model")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=_similarity)


def _index_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help="data root holding fastMRI-convention .h5 volumes (searched recursively)")
    p.add_argument("--dataset", action="append", default=[], metavar="[FOLDER=]NAME",
                   help="dataset of the volumes under FOLDER (relative to the root; all volumes when no "
                        "FOLDER is given); repeatable. Otherwise from sidecars or file attributes.")
    p.add_argument("--metadata", help="YAML/JSON file: {defaults: {dataset: {...}}, volumes: {stem: {...}}}")
    p.add_argument("--cache-dir", help="where slice indexes are kept (default $MRIZOO_HOME/slice_index)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the index even when it is up to date")
    p.add_argument("--skip-bad", action="store_true", help="leave out unreadable files instead of failing")
    p.add_argument("--train-ratio", type=float, default=0.85, help="train share of the hash split")


def _table(rows: list[list[Any]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _dataset_arg(values: list[str]) -> Any:
    if not values:
        return None
    mapping: dict[str, str] = {}
    for v in values:
        folder, sep, name = v.rpartition("=")
        mapping[folder.strip("/") if sep else ""] = name
    if list(mapping) == [""]:
        return mapping[""]
    return mapping


def _read_metadata(path: str | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if path is None:
        return None, None
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo._yaml import read_yaml

    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError as err:
            raise InputError(f"cannot read ({err.strerror})", path=path) from None
        except ValueError as err:
            raise InputError(f"not valid JSON ({err})".replace("\n", " "), path=path) from None
    else:
        data = read_yaml(path)
    data = data or {}
    if not isinstance(data, dict) or set(data) - {"defaults", "volumes"}:
        raise InputError("expected a mapping with keys 'defaults' and/or 'volumes'", path=path,
                         got=sorted(data) if isinstance(data, dict) else type(data).__name__)
    for key in ("defaults", "volumes"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise InputError("must be a mapping", path=path, field=key, got=type(data[key]).__name__)
    return data.get("defaults"), data.get("volumes")


def _index(args: argparse.Namespace) -> Any:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.pools.index import build_slice_index

    defaults, volumes = _read_metadata(args.metadata)
    return build_slice_index(
        args.root, dataset=_dataset_arg(args.dataset), defaults=defaults, volume_metadata=volumes,
        train_ratio=args.train_ratio, cache_dir=args.cache_dir, rebuild=args.rebuild,
        on_error="skip" if args.skip_bad else "raise",
    )


def _pool(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.pools.spec import list_pools, load_pool

    if args.pool is None:
        rows = []
        for name in list_pools():
            spec = load_pool(name)
            rows.append([name, len(spec.train), ",".join(spec.test) or "-", spec.description[:70]])
        if args.json:
            print(json.dumps([{"pool": r[0], "train_selections": r[1], "test_sets": r[2]} for r in rows], indent=1))
        else:
            print(_table(rows, ["pool", "train", "test sets", "description"]))
        return 0
    spec = load_pool(args.pool)
    if args.root is None:
        # imported on use: keeps `mrizoo --help` and `mrizoo list` light
        import yaml

        print(f"# {spec.name}  ({spec.source})")
        print(yaml.safe_dump(spec.to_dict(), sort_keys=False, default_flow_style=None, width=110).rstrip())
        return 0
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.pools.selection import select_pool

    index = _index(args)
    sel = select_pool(index, spec)
    state = "reused" if index.info.get("reused") else f"built in {index.info.get('build_seconds', '?')} s"
    if args.json:
        about = {"path": str(index.path), "rows": len(index), "volumes": index.num_volumes,
                 "reused": index.info.get("reused")}
        print(json.dumps({"pool": spec.name, "index": about, "sets": sel.table(), "notes": sel.notes}, indent=1))
        return 0
    print(f"index: {len(index)} slices in {index.num_volumes} volumes ({state}; {index.path})")
    for rel, why in index.info.get("skipped", []):
        print(f"  skipped {rel}: {why}")
    print(f"pool: {spec.name}")
    print(_table([[r["set"], r["dataset"], r["volumes"], r["slices"]] for r in sel.table()],
                 ["set", "dataset", "volumes", "slices"]))
    for note in sel.notes:
        print(f"note: {note}")
    return 0


def _similarity(args: argparse.Namespace) -> int:
    if args.root is None:
        raise InputError("a data root is needed", field="--root")
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.pools.selection import select_pool

    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.pools.similarity import make_extractor, pool_similarity

    for name in ("train_per_dataset", "test_per_set", "patches_per_image"):
        if getattr(args, name) < 1:
            raise InputError("must be at least 1", field=f"--{name.replace('_', '-')}", got=getattr(args, name))
    extractor = make_extractor(args.features, device=args.device)
    sel = select_pool(_index(args), args.pool)
    report = pool_similarity(sel, extractor=extractor, train_per_dataset=args.train_per_dataset,
                             test_per_set=args.test_per_set, patch_size=args.patch_size,
                             patches_per_image=args.patches_per_image, seed=args.seed)
    summaries = [r.summary() for r in report.values()]
    if args.json:
        print(json.dumps({"pool": sel.spec.name, "features": args.features, "sets": summaries}, indent=1))
        return 0
    print(f"pool: {sel.spec.name}; features: {args.features}")
    rows = []
    for s in summaries:
        top = ", ".join(f"{k} {v:.0%}" for k, v in list(s["nearest_from"].items())[:3])
        rows.append([s["set"], s["n"], f"{s['mean']:.3f}", f"{s['median']:.3f}", f"{s['p10']:.3f}", top])
    print(_table(rows, ["test set", "n", "mean", "median", "p10", "nearest neighbours from"]))
    for note in sel.notes:
        print(f"note: {note}")
    return 0
