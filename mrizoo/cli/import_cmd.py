"""``mrizoo import FORMAT FILE OUT_DIR``: turn a checkpoint in another project's format into an mrizoo folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.zoo.import_checkpoint import IMPORT_FORMATS

    formats = "; ".join(f"{k}: {v}" for k, v in IMPORT_FORMATS.items())
    p = sub.add_parser(
        "import", help="convert a checkpoint file you already have into an mrizoo checkpoint folder",
        description="Convert a checkpoint file in another project's format into an mrizoo checkpoint folder "
                    "(config.json, model.safetensors, README.md naming the file and its sha256) that "
                    "mrizoo.load(OUT_DIR) and `mrizoo push OUT_DIR` take. Pickled files are read with "
                    f"torch.load(weights_only=True) only. Formats: {formats}.")
    p.add_argument("format", metavar="FORMAT", choices=sorted(IMPORT_FORMATS), help=f"one of {sorted(IMPORT_FORMATS)}")
    p.add_argument("file", metavar="FILE", help="the checkpoint file")
    p.add_argument("out_dir", metavar="OUT_DIR", help="the checkpoint folder to write (new or empty)")
    p.add_argument("--name", help="a zoo entry whose model and settings the weights go into (they must fit it), "
                                  "or a new zoo name; default <arch>-imported")
    p.add_argument("--overwrite", action="store_true", help="replace the checkpoint in a non-empty OUT_DIR")
    p.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.models.checkpoint import read_config

    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.zoo.import_checkpoint import import_checkpoint

    out = import_checkpoint(args.format, args.file, args.out_dir, name=args.name, overwrite=args.overwrite)
    doc = read_config(out)
    print(f"wrote {out} ({doc['name']}, {doc['arch']}; source sha256 {doc['imported']['sha256']})")
    print(f"load it with mrizoo.load({str(out)!r}); publish it with `mrizoo push {out} --repo-id ORG/NAME`")
    return 0
