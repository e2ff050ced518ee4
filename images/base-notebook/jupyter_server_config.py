# /etc/jupyter/jupyter_server_config.py of the notebook image: the defaults docker-stacks sets
# (listen on every address, on JUPYTER_PORT; no browser; deleting files does not move them to a
# trash directory). Files in JUPYTER_CONFIG_PATH (the hooks' mounts) come first and win.
import os

c = get_config()  # noqa: F821 (Jupyter's config loader defines it)
c.ServerApp.ip = "0.0.0.0"
c.ServerApp.open_browser = False
c.ServerApp.port = int(os.getenv("JUPYTER_PORT", "8888"))
c.FileContentsManager.delete_to_trash = False
