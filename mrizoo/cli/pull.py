"""``mrizoo pull NAME`` (download ahead of time) and ``mrizoo cache list|clean`` (what mrizoo stored)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pull", help="download a model's weights ahead of time (for offline use)",
        description="Download (and for upstream checkpoints, verify and convert) a model's weights into the caches, "
                    "so that mrizoo.load(NAME) later works offline (HF_HUB_OFFLINE=1). NAME is a zoo name or "
                    "hf-hub:org/repo[@revision]. Copy HF_HOME and MRIZOO_HOME to an air-gapped machine.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--revision", help="another revision of a Hub source (the entry's sha256 then does not apply)")
    p.set_defaults(func=_pull)

    p = sub.add_parser("cache", help="list or clean what mrizoo cached",
                       description="List or clean mrizoo's caches: converted upstream checkpoints, partial "
                                   "downloads and quarantined files under MRIZOO_HOME, and the Hugging Face cache "
                                   "entries of zoo repos. Locally trained weights (MRIZOO_HOME/zoo) are listed but "
                                   "never cleaned; other Hugging Face cache entries are never touched.")
    csub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = csub.add_parser("list", help="list cached items")
    q.add_argument("name", metavar="NAME", nargs="?", help="only this zoo name or hf-hub:org/repo")
    q.set_defaults(func=_cache_list)
    q = csub.add_parser("clean", help="delete cached items")
    q.add_argument("name", metavar="NAME", nargs="?", help="only this zoo name or hf-hub:org/repo (default: all)")
    q.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    q.set_defaults(func=_cache_clean)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


def _pull(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.zoo.resolve import resolve_checkpoint

    got = resolve_checkpoint(args.name, revision=args.revision, prefer_local=False)
    if got.folder is None:
        print(f"{args.name}: {got.description}; nothing to download")
        return 0
    if got.origin == "package":
        print(f"{args.name}: {got.description}; nothing to download (sha256 verified)")
        return 0
    if got.sha256_pinned:
        check = "sha256 verified"
    else:
        check = f"sha256 {got.sha256} (not pinned; recorded)" if got.origin == "upstream" else f"sha256 {got.sha256}"
    print(f"pulled {args.name}: {got.description}\n  -> {got.folder}\n  {check}")
    return 0


def _rows(items: list) -> str:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.cli.zoo import _table

    rows = [[i.kind, i.label, _human(i.size), str(i.path)] for i in items]
    return _table(rows, ["kind", "what", "size", "path"])


def _cache_list(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo._paths import mrizoo_home

    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.zoo.resolve import cached_items

    items = cached_items(args.name)
    if not items:
        print(f"nothing cached{' for ' + args.name if args.name else ''} (MRIZOO_HOME={mrizoo_home()})")
        return 0
    print(_rows(items))
    total = sum(i.size for i in items if i.removable)
    print(f"\n{_human(total)} removable with `mrizoo cache clean{' ' + args.name if args.name else ''}`")
    return 0


def _cache_clean(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.zoo.resolve import cached_items, remove_cached

    items = [i for i in cached_items(args.name) if i.removable]
    if not items:
        print(f"nothing to clean{' for ' + args.name if args.name else ''}")
        return 0
    print("will delete:\n" + _rows(items))
    if not args.yes:
        if not sys.stdin.isatty():
            print("not deleting: pass --yes to confirm", file=sys.stderr)
            return 1
        if input("delete these? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    freed = remove_cached(items)
    print(f"deleted {len(items)} item(s), {_human(freed)} freed")
    return 0
