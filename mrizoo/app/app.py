"""The mrizoo web app (Gradio): reconstruct a raw scan with zoo models in the browser.

Run it with ``mrizoo app`` (served on 127.0.0.1), or use this file as a Hugging Face Space's
``app.py`` (``requirements.txt``: ``mrizoo[app]``); it needs no network: the shipped scan and
the shipped demo models are inside the package. The work is :mod:`mrizoo.app.pipeline`; this
module only lays out the page. The button is also the named API endpoint ``/reconstruct``::

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    figure, table, commands, files, status = client.predict(
        [handle_file("scan.h5")], ["varnet-mini-r4", "zerofilled"], "equispaced_fraction", 4, 8, 0, 0,
        api_name="/reconstruct")

Uploads live in a folder of the browser session, removed when the session ends.
"""

import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from mrizoo.app.pipeline import DEFAULT_APP_MODELS, MAX_UPLOAD_MB, offline_models, prepare_input, run_models
from mrizoo.errors import InputError, MrizooError
from mrizoo.masks import list_masks

__all__ = ["build_app", "main", "HEADERS"]

HEADERS = ["method", "SSIM", "PSNR (dB)", "NMSE", "time (s)", "mean posterior std"]
_SESSIONS = Path(os.environ.get("MRIZOO_APP_DIR") or Path(tempfile.gettempdir()) / "mrizoo-app")


def _gradio() -> Any:
    try:
        # optional (the app extra), and seconds to import: only the web app needs it
        import gradio as gr
    except ImportError:
        raise InputError("the web app needs gradio", field="app", expected='pip install "mrizoo[app]"',
                         got="gradio not installed") from None
    return gr


def _session_dir(request: Any) -> Path:
    key = getattr(request, "session_hash", None) or "api"
    return _SESSIONS / "".join(c for c in str(key) if c.isalnum() or c in "-_")[:64]


def _prune(max_age_s: float = 6 * 3600) -> None:
    """Remove session folders untouched for ``max_age_s`` (sessions whose unload never came, e.g. API clients)."""
    if not _SESSIONS.is_dir():
        return
    now = time.time()
    for folder in _SESSIONS.iterdir():
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > max_age_s:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


def _files(upload: Any) -> list[str]:
    """Paths of an upload as Gradio hands it over (None, a path, a list of paths or file objects)."""
    if not upload:
        return []
    items = upload if isinstance(upload, (list, tuple)) else [upload]
    out = []
    for item in items:
        path = item.get("path") if isinstance(item, dict) else getattr(item, "name", item)
        if path:
            out.append(os.fspath(path))
    return out


def reconstruct(upload: Any, models: list[str] | None, mask: str, acceleration: float, samples: float,
                seed: float, adapt_steps: float = 0, request: Any = None, progress: Any = None) -> tuple[Any, ...]:
    """The ``/reconstruct`` endpoint: (figure, metrics table, commands, output files, status message)."""
    table_empty: list[list[Any]] = []
    _prune()
    work = _session_dir(request)
    started = time.perf_counter()

    def report(frac: float, text: str) -> None:
        if progress is not None:
            progress(frac, desc=text)

    try:
        run_dir = work / f"run-{time.strftime('%H%M%S')}-{os.getpid()}-{time.perf_counter_ns() % 10**6}"
        report(0.0, "reading the scan")
        prepared = prepare_input(_files(upload), run_dir / "input")
        result = run_models(prepared, list(models or []), run_dir, mask=mask, acceleration=float(acceleration),
                            samples=int(samples), seed=int(seed), progress=report,
                            adapt_steps=int(adapt_steps) if adapt_steps else None)
    except MrizooError as err:
        return None, table_empty, "", None, f"**Error:** {err}"
    except Exception as err:  # never take the server down; say what went wrong
        traceback.print_exc()
        return None, table_empty, "", None, f"**Error:** unexpected {type(err).__name__}: {err}"
    total = time.perf_counter() - started
    status = [f"Reconstructed **{result.source}** with {len(result.rows)} method(s) in {total:.1f} s."]
    if not any(row[1] is not None for row in result.rows):
        status.append("No metrics: " + (" ".join(result.notes) or "the scan has no fully sampled reference."))
    return (str(result.figure), result.rows, result.command_text,
            [str(p) for p in result.downloads], " ".join(status))


def build_app() -> Any:
    """The Gradio Blocks of the app (not launched)."""
    gr = _gradio()

    choices = offline_models()

    def run(upload: Any, models: list[str], extra: str, mask: str, acceleration: float, samples: float,
            seed: float, adapt_steps: float, request: gr.Request,
            progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        names = list(models or []) + [m.strip() for m in (extra or "").split(",") if m.strip()]
        return reconstruct(upload, names, mask, acceleration, samples, seed, adapt_steps, request, progress)

    def api(upload: Any, models: list[str], mask: str, acceleration: float, samples: float, seed: float,
            adapt_steps: float, request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        return reconstruct(upload, models, mask, acceleration, samples, seed, adapt_steps, request, progress)

    with gr.Blocks(title="mrizoo: accelerated-MRI reconstruction", delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            "# mrizoo\nReconstruct undersampled multi-coil k-space with zoo models and classical baselines. "
            f"Upload a fastMRI `.h5`, a BART `.cfl` + `.hdr` (or a zip of both), a Siemens `.dat` or a complex "
            f"`.npy` k-space array (at most {MAX_UPLOAD_MB:g} MB), or leave the upload empty to use the shipped "
            "brain scan (8 coils, 4x equispaced, with its fully sampled reference). Fully sampled uploads are "
            "undersampled with the mask below; undersampled ones are reconstructed as measured. Uploads are "
            "kept only for this session.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="raw scan (empty: the shipped scan)", file_count="multiple",
                                 elem_id="upload")
                models = gr.CheckboxGroup(choices, value=[m for m in DEFAULT_APP_MODELS if m in choices],
                                          label="models", elem_id="models")
                extra = gr.Textbox(label="other zoo names or checkpoint folders (comma-separated)", value="",
                                   elem_id="extra")
                with gr.Accordion("mask for fully sampled input, posterior samples", open=False):
                    mask = gr.Dropdown(list_masks(), value="equispaced_fraction", label="mask")
                    acceleration = gr.Number(4, label="acceleration R", minimum=1.0)
                    samples = gr.Slider(2, 32, value=8, step=1, label="posterior samples P")
                    seed = gr.Number(0, label="seed", precision=0, minimum=0)
                    adapt = gr.Slider(0, 100, value=0, step=1, elem_id="adapt",
                                      label="test-time adaptation: most steps per slice (0: none; learned models; minutes on a CPU)")
                button = gr.Button("Reconstruct", variant="primary", elem_id="run")
            with gr.Column(scale=2):
                status = gr.Markdown("", elem_id="status", label="status")
                figure = gr.Image(label="reference, reconstructions, errors and posterior std", type="filepath",
                                  elem_id="figure", interactive=False, show_label=False)
                table = gr.Dataframe(headers=HEADERS, label="metrics (fastMRI region) and time per method",
                                     elem_id="metrics", interactive=False)
                commands = gr.Code(label="the commands that reproduce these outputs", language="shell",
                                   elem_id="commands", interactive=False)
                downloads = gr.File(label="outputs (.h5 and NIfTI)", file_count="multiple", elem_id="downloads",
                                    interactive=False)
        outputs = [figure, table, commands, downloads, status]
        button.click(run, [upload, models, extra, mask, acceleration, samples, seed, adapt], outputs,
                     api_visibility="private")
        hidden = gr.Button(visible=False)
        hidden.click(api, [upload, models, mask, acceleration, samples, seed, adapt], outputs, api_name="reconstruct")
        def cleanup(request: gr.Request) -> None:  # the session's uploads and outputs go with it
            shutil.rmtree(_session_dir(request), ignore_errors=True)

        app.unload(cleanup)
    return app


def main(host: str | None = None, port: int | None = None, share: bool = False) -> None:
    """Serve the app: on ``host`` (default 127.0.0.1, or ``GRADIO_SERVER_NAME`` as Spaces set it)."""
    host = host or os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    app = build_app()
    app.queue(default_concurrency_limit=1).launch(server_name=host, server_port=port, share=share,
                                                  max_file_size=f"{MAX_UPLOAD_MB:g}mb", show_error=True, ssr_mode=False,
                                                  allowed_paths=[str(_SESSIONS)])


if __name__ == "__main__":  # a Hugging Face Space runs this file as app.py
    main()
