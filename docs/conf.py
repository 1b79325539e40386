"""Sphinx configuration of the trio_hface documentation."""

from __future__ import annotations

import os
import sys

# Document the package from this checkout, not from an installed copy.
sys.path.insert(0, os.path.abspath(".."))

import trio_hface

project = "trio_hface"
author = "trio_hface contributors"
copyright = "trio_hface contributors"
release = trio_hface.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinxcontrib_trio",
]

# No intersphinx: the documentation must build without network access.

exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"

nitpicky = False

html_theme = "alabaster"
html_title = f"trio_hface {release}"

# Code blocks are at most 88 characters wide (tests/test_docs.py CODE_WIDTH). In
# alabaster's defaults (a page of 940 pixels, a body of at most 800) about 80 fit;
# a page of 1180 pixels with no body limit holds 91 without horizontal scrolling
# (measured in Chromium: 9.2 pixels per character of the code font).
html_theme_options = {"page_width": "1180px", "body_max_width": "none"}
html_static_path = ["_static"]
html_css_files = ["trio-hface.css"]
