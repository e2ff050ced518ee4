"""The "next release" of the hooks, for the hot-swap scenario: the same code, another default image.

Served with `uvicorn --factory hooks_next:create_app`; importing this module changes nothing.
"""

NEXT_IMAGE = "quay.io/jupyter/base-notebook:2025-03-24"


def create_app():
    import hooks.notebook
    from hooks.app import app

    hooks.notebook.DEFAULT_NOTEBOOK_IMAGE = NEXT_IMAGE
    return app
