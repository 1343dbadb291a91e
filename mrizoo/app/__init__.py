"""The web app (``mrizoo app``; needs ``mrizoo[app]``): :mod:`mrizoo.app.pipeline` does the work
without any web dependency, :mod:`mrizoo.app.app` lays out the Gradio page and doubles as a
Hugging Face Space's ``app.py``."""
