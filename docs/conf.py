"""Sphinx configuration of greenpools' documentation.

Build: ``.venv/bin/sphinx-build -W --keep-going -b html docs docs/_build/html``
(``pip install -e '.[docs]'`` first), or ``tox -e docs``.

The build needs no network: no intersphinx, kombu's and Python's pages
are linked by URL.  It documents the plain-Python build of the pool core
(``GREENPOOLS_NO_SPEEDUPS=1`` below, before greenpools is imported), so
that autodoc reads the same signatures and docstrings whether or not the
compiled build is installed.
"""

from __future__ import annotations

import os
import sys

os.environ["GREENPOOLS_NO_SPEEDUPS"] = "1"
os.environ.setdefault("GREENPOOLS_BACKEND", "threading")
sys.path.insert(0, os.path.abspath(".."))

import greenpools  # noqa: E402

project = "greenpools"
author = "the greenpools developers"
copyright = "the greenpools developers, BSD-3-Clause"
release = version = greenpools.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.extlinks",
]

exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_theme = "furo"
html_title = f"greenpools {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True

nitpicky = False
suppress_warnings: list[str] = []

extlinks = {
    "kombu": ("https://docs.celeryq.dev/projects/kombu/en/stable/%s", "%s"),
    "celery": ("https://docs.celeryq.dev/en/stable/%s", "%s"),
    "py": ("https://docs.python.org/3/%s", "%s"),
    "issue": ("https://github.com/%s", "%s"),
}
