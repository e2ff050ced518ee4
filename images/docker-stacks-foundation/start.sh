#!/bin/bash
# The notebook image's entrypoint (after tini), standing in for docker-stacks' start.sh: runs the
# hooks in /usr/local/bin/start-notebook.d and before-notebook.d (*.sh sourced, other executables
# run), then execs its arguments. docker-stacks' root mode (NB_USER/NB_UID/NB_GID changes,
# GRANT_SUDO, CHOWN_HOME) is not here: the image runs as jovyan (1000:100), as the hooks do.
set -e
if [ "$(id -u)" = 0 ]; then
  echo "start.sh: running as root; the root-mode options of docker-stacks are not supported here" >&2
fi
for dir in /usr/local/bin/start-notebook.d /usr/local/bin/before-notebook.d; do
  for hook in "$dir"/*; do
    [ -f "$hook" ] || continue
    case "$hook" in
      *.sh) echo "start.sh: sourcing $hook" >&2; . "$hook" ;;
      *) if [ -x "$hook" ]; then echo "start.sh: running $hook" >&2; "$hook"; fi ;;
    esac
  done
done
exec "$@"
