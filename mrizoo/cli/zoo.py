"""``mrizoo list`` and ``mrizoo info NAME``: browse the zoo as readable tables."""

from __future__ import annotations

import argparse

from mrizoo._dataclass_io import to_dict


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list zoo models (wildcards and filters)",
                       description="List zoo models. PATTERN takes shell wildcards, e.g. 'varnet-*' or '*-r4'.")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--arch", help="architecture family, e.g. varnet")
    p.add_argument("--anatomy", help="e.g. knee, brain, mixed")
    p.add_argument("--acceleration", type=float, help="keep models trained for this acceleration (and agnostic ones)")
    p.add_argument("--tag", action="append", default=[], dest="tags", help="required tag (repeatable)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--has-weights", dest="has_weights", action="store_const", const=True, default=None)
    w.add_argument("--no-weights", dest="has_weights", action="store_const", const=False)
    p.set_defaults(func=_list)

    p = sub.add_parser("info", help="show one zoo entry", description="Show everything a zoo entry declares.")
    p.add_argument("name")
    p.set_defaults(func=_info)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _accel(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values) or "any"


def _list(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.zoo import info, list_models

    names = list_models(args.pattern, arch=args.arch, anatomy=args.anatomy, acceleration=args.acceleration,
                        has_weights=args.has_weights, tags=args.tags)
    rows = []
    for n in names:
        e = info(n)
        rows.append([n, e.model.arch, e.task.anatomy, _accel(e.task.accelerations), e.task.mask or "-",
                     e.task.target, e.weights.kind])
    if not rows:
        print("no zoo model matches")
        return 1
    print(_table(rows, ["name", "arch", "anatomy", "R", "mask", "target", "weights"]))
    return 0


def _info(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    import yaml

    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.zoo import REGISTRY, model_config

    entry = REGISTRY.get(args.name)
    doc = to_dict(entry)
    doc["config"] = to_dict(model_config(args.name))
    print(f"# {entry.name}  ({REGISTRY.source(entry.name)})")
    print(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100).rstrip())
    return 0
