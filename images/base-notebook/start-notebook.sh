#!/bin/bash
# Kept, as in docker-stacks, for templates that still name the shell script.
exec /usr/local/bin/start-notebook.py "$@"
