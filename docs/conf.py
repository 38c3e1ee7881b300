"""Sphinx configuration of the logscan documentation.

Build (warnings are errors): ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
The package is documented from the checkout: it need not be installed.
"""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from logscan import __version__  # noqa: E402  (after the path is set)

project = "logscan"
author = "the logscan developers"
copyright = "the logscan developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
]

# Examples in docstrings are run by pytest (--doctest-modules), not by Sphinx.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections say the types

exclude_patterns = ["_build"]
templates_path = []
html_theme = "alabaster"
html_static_path = []
html_title = f"logscan {release}"
nitpicky = False
