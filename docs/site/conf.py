"""Sphinx configuration of the documentation site (built by ``make docs``, i.e. ``python -m
workbench docs``, from a source tree it assembles under ``artifacts/site-src/``)."""

project = "es-workbench"
author = "the es-workbench authors"
copyright = "the es-workbench authors, Apache-2.0"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]

# The notebooks arrive executed (the tests' runs, reused): never run them again here.
nb_execution_mode = "off"
# No widget manager from a CDN: the site works offline, and widgets show the HTML they carry.
nb_ipywidgets_js = {}
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
myst_heading_anchors = 3
# Code blocks in a language Pygments cannot lex (CQL shown as SQL, TOML with <placeholders>) are
# shown unhighlighted; that is not a fault of the page.
suppress_warnings = ["misc.highlighting_failure"]

html_theme = "furo"
html_title = "es-workbench"
html_static_path = ["_static"]
html_js_files = ["plotly.min.js"]  # one copy of plotly.js, served by the site itself
html_css_files = ["site.css"]
html_show_sourcelink = False

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_inherit_docstrings = False
