#!/usr/local/bin/python
"""The notebook image's default command, standing in for docker-stacks' start-notebook.py.

Runs `jupyter $DOCKER_STACKS_JUPYTER_CMD` (default: lab), then the words of NOTEBOOK_ARGS, then
this script's own arguments, so the last flag wins as the hooks expect (hooks/notebook.py reads
the port and base URL in that order). The token comes from JUPYTER_TOKEN_FILE and the config from
JUPYTER_CONFIG_PATH, both read by Jupyter Server itself; the port from JUPYTER_PORT
(/etc/jupyter/jupyter_server_config.py). JupyterHub's single-user mode is not supported.
"""

import os
import shlex
import sys

command = ["jupyter", os.environ.get("DOCKER_STACKS_JUPYTER_CMD", "lab")]
command += shlex.split(os.environ.get("NOTEBOOK_ARGS", ""))
command += sys.argv[1:]
os.execvp(command[0], command)
