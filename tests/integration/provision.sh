#!/usr/bin/env bash
# Provision the local integration-test runtime (idempotent; a no-op when up to date).
#   .cache/venvs/eg    jupyter_enterprise_gateway 3.3.0 + ipykernel 6 (Python 3.11: EG needs pyzmq<25)
#   .cache/venvs/fe    jupyter_server 2.21 + jupyterlab 4 + websocket-client (the notebook image's server)
#   /usr/bin/chromium  Debian's chromium (apt); `playwright install` is never run.
#   .cache/eg-sdist    jupyter_enterprise_gateway 3.3.0's source distribution, unpacked: its
#                      etc/kernel-launchers and etc/kernelspecs (the wheel lacks them) are what
#                      the EG and kernel images ship; tests/kernels runs them (hash pinned)
# Env: PYTHON (default python3.11), CACHE (default <repo>/.cache), SKIP_BROWSER=1.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${CACHE:-$REPO/.cache}"
PYTHON="${PYTHON:-python3.11}"
export PIP_CACHE_DIR="$CACHE/pip" PIP_DISABLE_PIP_VERSION_CHECK=1
t0=$(date +%s%N)

pyver="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$pyver" in 3.8|3.9|3.10|3.11) ;; *) echo "provision: need Python <= 3.11 for EG 3.3.0 (pyzmq<25), got $pyver from $PYTHON" >&2; exit 1;; esac

venv() {  # venv NAME LOCKFILE
  local dir="$CACHE/venvs/$1" lock="$HERE/$2"
  local stamp; stamp="$(cat "$lock" | sha256sum | cut -c1-16)-py$pyver"
  if [[ -x "$dir/bin/python" && "$(cat "$dir/.provisioned" 2>/dev/null)" == "$stamp" ]]; then
    echo "provision: venv $1 up to date"; return
  fi
  echo "provision: building venv $1 from $2"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install -q --no-input -r "$lock"
  "$dir/bin/pip" check
  echo "$stamp" > "$dir/.provisioned"
}

venv eg requirements-eg.lock &
p1=$!
venv fe requirements-fe.lock &
p2=$!
rc=0
wait $p1 || rc=1; wait $p2 || rc=1
[[ $rc == 0 ]] || { echo "provision: venv build failed" >&2; exit 1; }

EG_SDIST=jupyter_enterprise_gateway-3.3.0
EG_SDIST_SHA256=58d61fef0f30d8010553bf3755c7d205c072383849c416916b37d3ef940725b7  # as tests/eg_launcher.py SHA256
if ! [[ -f "$CACHE/eg-sdist/$EG_SDIST/etc/kernel-launchers/kubernetes/scripts/launch_kubernetes.py" ]]; then
  echo "provision: fetching the $EG_SDIST source distribution"
  rm -rf "$CACHE/eg-sdist" && mkdir -p "$CACHE/eg-sdist"
  "$CACHE/venvs/eg/bin/pip" download -q --no-binary :all: --no-deps --require-hashes -d "$CACHE/eg-sdist" \
    -r <(echo "jupyter_enterprise_gateway==3.3.0 --hash=sha256:$EG_SDIST_SHA256")
  echo "$EG_SDIST_SHA256  $CACHE/eg-sdist/$EG_SDIST.tar.gz" | sha256sum -c --quiet
  tar -xzf "$CACHE/eg-sdist/$EG_SDIST.tar.gz" -C "$CACHE/eg-sdist"
fi

if [[ "${SKIP_BROWSER:-0}" != 1 ]] && ! [[ -x /usr/bin/chromium ]]; then
  echo "provision: installing Debian chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi

for f in eg/bin/jupyter-enterprisegateway fe/bin/jupyter-lab; do
  [[ -x "$CACHE/venvs/$f" ]] || { echo "provision: missing $CACHE/venvs/$f" >&2; exit 1; }
done
printf 'provision: done in %sms (%s; %s; chromium %s)\n' \
  "$(( ($(date +%s%N) - t0) / 1000000 ))" \
  "$(grep -ih '^jupyter_enterprise_gateway==' "$HERE/requirements-eg.lock")" \
  "$(grep -ihE '^(jupyter_server|jupyterlab)==' "$HERE/requirements-fe.lock" | tr '\n' ' ')" \
  "$( [[ -x /usr/bin/chromium ]] && dpkg-query -W -f='${Version}' chromium 2>/dev/null || echo none)"
