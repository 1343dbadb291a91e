"""``mrizoo push RUN_DIR --repo-id ORG/NAME`` and ``mrizoo card NAME|--all``: publish checkpoints and cards."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mrizoo.errors import InputError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "push", help="upload a checkpoint folder (config, weights, model card) to the Hugging Face Hub",
        description="Check a checkpoint folder (config.json + model.safetensors), generate its model card and "
                    "upload the three files to the Hub in one commit. The token comes from HF_TOKEN or "
                    "`hf auth login`; HF_ENDPOINT selects the Hub.")
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="a training run folder (its model/ is pushed) or a checkpoint folder (config.json + "
                        "model.safetensors)")
    p.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="target model repository")
    p.add_argument("--private", action="store_true", help="create the repository as private (if it is new)")
    p.add_argument("--revision", metavar="BRANCH", help="branch to commit to (created if missing; default main)")
    p.add_argument("--dry-run", action="store_true", help="stage the files and the card, upload nothing")
    p.add_argument("--out", metavar="DIR", help="staging folder to keep (new or empty; default: a temporary one)")
    p.add_argument("--overwrite-card", action="store_true", help="replace a README.md that exists on the Hub")
    p.add_argument("--commit-message", metavar="TEXT", help="commit summary")
    p.add_argument("--results", metavar="FILE",
                   help="evaluation results JSON (default evaluation.json of the checkpoint or run folder)")
    p.add_argument("--training", metavar="FILE",
                   help="training summary JSON (default training_summary.json of the checkpoint or run folder)")
    p.set_defaults(func=_push)

    p = sub.add_parser(
        "card", help="regenerate model cards (model_cards/<name>.md)",
        description="Regenerate the model card of a zoo entry from the entry, its recipe, and evaluation "
                    "results / training summary (default: <cards-dir>/results/<name>.json and "
                    "<cards-dir>/training/<name>.json when present). Writes atomically; unchanged cards are "
                    "left alone.")
    p.add_argument("name", nargs="?", metavar="NAME", help="zoo name")
    p.add_argument("--all", action="store_true", help="every zoo entry shipped with mrizoo")
    p.add_argument("--results", metavar="FILE", help="evaluation results JSON (one model only)")
    p.add_argument("--training", metavar="FILE", help="training summary JSON (one model only)")
    p.add_argument("--cards-dir", default="model_cards", metavar="DIR",
                   help="folder of the cards and their results/ and training/ (default: model_cards)")
    p.add_argument("--out", metavar="DIR", help="write the cards here instead of --cards-dir")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a card is out of date")
    p.set_defaults(func=_card)


def _push(args: argparse.Namespace) -> int:
    from mrizoo.cards.publish import push_checkpoint  # imports torch: only when the command runs

    push_checkpoint(args.run_dir, args.repo_id, private=args.private, revision=args.revision,
                    dry_run=args.dry_run, overwrite_card=args.overwrite_card,
                    commit_message=args.commit_message, out=args.out, results=args.results,
                    training=args.training)
    return 0


def _card(args: argparse.Namespace) -> int:
    from mrizoo.cards import card_for, card_path, regenerate_cards, shipped_entry_names  # imports torch: only when run

    if bool(args.name) == bool(args.all):
        raise InputError("give one zoo NAME or --all", field="NAME", expected="exactly one of NAME, --all")
    names = shipped_entry_names() if args.all else [args.name]
    out = Path(args.out or args.cards_dir)
    if args.check:
        if (args.results or args.training) and len(names) != 1:
            raise InputError("--results/--training apply to one model, not to several")
        stale = []
        for n in names:
            text = card_for(n, cards_dir=args.cards_dir, results=args.results, training=args.training)
            path = card_path(n, out)
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        for s in stale:
            print(f"out of date: {s}", file=sys.stderr)
        if stale:
            print("regenerate with: mrizoo card --all", file=sys.stderr)
        return 1 if stale else 0
    changed = regenerate_cards(names, cards_dir=args.cards_dir, out_dir=out, results=args.results,
                               training=args.training)
    for n, did in changed.items():
        print(f"{'wrote' if did else 'unchanged'} {card_path(n, out)}")
    return 0
