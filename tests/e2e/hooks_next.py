"""The "next release" of the hooks, for the hot-swap scenario: the same code, another default image."""

import hooks.notebook
from hooks.app import app

NEXT_IMAGE = "quay.io/jupyter/base-notebook:2025-03-24"
hooks.notebook.DEFAULT_NOTEBOOK_IMAGE = NEXT_IMAGE

__all__ = ["app"]
