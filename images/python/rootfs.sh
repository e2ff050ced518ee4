#!/bin/bash
# rootfs.sh OUT.tar.gz MIRROR SECURITY_MIRROR
# Debian bookworm (minbase) with python3 and what python:3.11-slim also ships (ca-certificates,
# netbase, tzdata), with the current bookworm-updates and bookworm-security packages, as a tarball.
# The mirrors are the ones apt uses on this machine (images/build.py reads them from apt's sources).
set -euo pipefail
out=$1 mirror=$2 security=$3
dir=$(mktemp -d "${out%/*}/rootfs.XXXXXX")
chmod 755 "$dir"  # apt's _apt user downloads into it
cleanup() {
  for m in proc; do mountpoint -q "$dir/$m" && umount "$dir/$m"; done
  rm -rf "$dir"
}
trap cleanup EXIT
echo "rootfs: debootstrap --variant=minbase bookworm"
log=${out%.tar.gz}.log
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,netbase,tzdata \
  bookworm "$dir" "$mirror" >"$log" 2>&1 || { tail -20 "$log"; exit 1; }
cat >"$dir/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
# Like Debian's slim images: no documentation, manual pages or translations (copyrights stay).
cat >"$dir/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
SLIM
find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$dir"/usr/share/{man,groff,info,lintian,linda,locale}/*
echo "rootfs: apt-get upgrade (bookworm-updates, bookworm-security)"
mount -t proc proc "$dir/proc"
{
  chroot "$dir" apt-get -qq update
  DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get -qq -y -o Dpkg::Use-Pty=0 upgrade
  chroot "$dir" apt-get -qq clean
} >>"$log" 2>&1 || { tail -20 "$log"; exit 1; }
umount "$dir/proc"
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/log/*.log "$dir"/var/cache/ldconfig/aux-cache
echo "rootfs: packing"
# Device nodes come from the container runtime, not the image.
tar --numeric-owner --sort=name --exclude='./dev/*' -C "$dir" -czf "$out.part" .
mv "$out.part" "$out"
