"""``mrizoo datasets [NAME]``: the dataset catalog as a table, or one entry in full."""

from __future__ import annotations

import argparse

from mrizoo._dataclass_io import to_dict

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "datasets", help="list the catalog of fully sampled k-space datasets (or show one)",
        description="List the catalog of fully sampled k-space datasets (one row per view, as in Table 1 "
        "of Lin & Heckel 2024) with whether a local copy is configured, or show one dataset in full.",
    )
    p.add_argument("name", nargs="?", default=None, help="dataset to show (default: the whole table)")
    p.add_argument("--role", choices=["train", "ood-test"], default=None, help="only rows with this role")
    p.set_defaults(func=_run)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _run(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.datasets import catalog_rows, root_status

    if args.name is not None:
        return _show(args.name)
    rows = []
    for entry, view in catalog_rows():
        if args.role is not None and view.role != args.role:
            continue
        status = root_status(entry.name)
        rows.append([entry.name, entry.anatomy, view.name, entry.contrast_text, entry.vendor, entry.field_text,
                     entry.coils, f"{view.volumes}/{view.subjects}", view.slices, view.role, status.describe()])
    if not rows:
        print("no dataset matches")
        return 1
    print(_table(rows, ["name", "anatomy", "view", "contrasts", "vendor", "field", "coils", "vol/subj",
                        "slices", "role", "local root"]))
    return 0


def _show(name: str) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    import yaml

    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.datasets import get_dataset, root_status

    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.datasets.roots import how_to_set

    entry = get_dataset(name)
    status = root_status(name)
    print(f"# {entry.name}: {entry.title}")
    print(yaml.safe_dump(to_dict(entry), sort_keys=False, default_flow_style=None, width=100).rstrip())
    print()
    if status.path is None:
        print(f"local root: not set; {how_to_set(name)}")
    else:
        state = "found" if status.exists else "MISSING (folder does not exist)"
        print(f"local root: {status.path} ({state}; set by {status.origin})")
    views = [v.name for v in entry.views]
    view = f" --view {views[0]}" if len(views) > 1 else ""
    print(f"convert: mrizoo convert {entry.name} {'@' if status.exists else 'SRC'} DST{view} --workers 4")
    return 0
