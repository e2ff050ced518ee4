#!/bin/bash
# layout-eg-files.sh ETC OUT VERSION
# The files Enterprise Gateway's etc/Makefile packs for its images, from the etc/ of its unpacked
# source distribution (the wheel lacks them):
#   OUT/kernelspecs         target ../build/kernelspecs: every kernelspec with its launcher and
#                           resources (upstream's jupyter_enterprise_gateway_kernelspecs tarball)
#   OUT/kernel_image_files  bootstrap-kernel.sh and kernel-launchers/ (upstream's
#                           jupyter_enterprise_gateway_kernel_image_files tarball)
#   OUT/start-enterprise-gateway.sh  the gateway image's command
# Not here: Toree's jars (kernel-launchers/scala/lib), which upstream builds with sbt and downloads
# from repository.apache.org; the Scala kernelspecs come without them.
set -euo pipefail
etc=$1 out=$2 version=$3
cd "$etc"
shopt -s nullglob
ks=$out/kernelspecs img=$out/kernel_image_files
mkdir -p "$ks" "$img/kernel-launchers"

into() {  # into SOURCE... -- DIR...: copy every SOURCE into every DIR (upstream: xargs cp -r)
  local sources=() d
  while [[ $1 != -- ]]; do sources+=("$1"); shift; done
  shift
  for d in "$@"; do cp -r "${sources[@]}" "$d/"; done
}

cp -r kernelspecs/. "$ks/"
into kernel-launchers/python/scripts -- "$ks"/python_distributed "$ks"/dask_python_* \
  "$ks"/spark_python_conductor* "$ks"/spark_python_yarn*
into kernel-launchers/R/scripts -- "$ks"/spark_R_conductor* "$ks"/spark_R_yarn*
# Container-based kernelspecs (and operators) get the container launchers.
into kernel-launchers/kubernetes/* -- "$ks"/{python,R,scala,python_tf,python_tf_gpu}_kubernetes \
  "$ks"/spark_{python,R,scala}_kubernetes
into kernel-launchers/docker/* -- "$ks"/{python,R,scala,python_tf,python_tf_gpu}_docker
into kernel-launchers/operators/* -- "$ks"/spark_python_operator
# Kernel resources; tensorflow is also python, so it comes last.
into kernel-resources/ir/* -- "$ks"/*R*
into kernel-resources/apache_toree/* -- "$ks"/*scala*
into kernel-resources/python/* -- "$ks"/*python*
into kernel-resources/tensorflow/* -- "$ks"/*tf*
cp -r kernelspecs/. "$ks/"  # again: per-kernel overrides win, as upstream
find "$ks" -name kernel.json -exec sed -i "s/VERSION/$version/g" {} +

cp kernel-launchers/bootstrap/* "$img/"
cp -r kernel-launchers/python kernel-launchers/R "$img/kernel-launchers/"
cp docker/enterprise-gateway/start-enterprise-gateway.sh "$out/"
chmod 0755 "$img/bootstrap-kernel.sh" "$out/start-enterprise-gateway.sh"
