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
