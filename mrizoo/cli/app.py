"""``mrizoo app``: serve the web app (see :mod:`mrizoo.app`)."""

from __future__ import annotations

import argparse
from typing import Any

from mrizoo.cli import _args

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``app`` command."""
    p = sub.add_parser("app", help="serve the web app in the browser (needs mrizoo[app])",
                       description="Serve the mrizoo web app (Gradio): upload a raw scan or use the shipped one, "
                                   "reconstruct it with zoo models and baselines, see metrics, errors and posterior "
                                   "std, download .h5 and NIfTI outputs and the command that reproduces them. "
                                   "Offline with the shipped models; the API endpoint /reconstruct serves "
                                   "gradio_client. Needs pip install \"mrizoo[app]\".")
    p.add_argument("--host", default=None,
                   help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=_args.positive_int, default=None, help="port (default 7860, or the next free one)")
    p.add_argument("--share", action="store_true", help="also open a public Gradio share link (needs network)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # imported on use: keeps `mrizoo --help` and `mrizoo list` light
    from mrizoo.app.app import main

    main(host=args.host, port=args.port, share=args.share)
    return 0
