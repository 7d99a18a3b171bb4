#!/usr/bin/env bash
# Builds relayd's container image as an OCI image archive, without a
# container engine: a Debian 12 root file system (debootstrap, minbase plus
# relayd's libraries), the .deb installed into it, one layer.
#
#   bash tools/build_image.sh [--deb FILE] [--out DIR] [--rootfs_cache DIR]
#
# Without --deb it builds one (tools/package_deb.sh). The image: user
# relayd = uid/gid 65532 (what deploy/kubernetes/relayd.yaml runs as),
# entry point /usr/bin/relayd --flagfile=/etc/relayd/relayd.flags, ports
# 7777/udp and 9781/tcp, /var/lib/relayd owned by relayd. Writes
# DIR/relayd-image.tar (OCI layout: oci-layout, index.json, blobs/sha256/)
# and DIR/rootfs-check.txt, the output of relayd --version and
# --check_config run inside the image's file system (chroot, as uid 65532).
# Load it with `podman load -i`, `docker load -i` (Docker 25+) or
# `skopeo copy oci-archive:DIR/relayd-image.tar docker://...`.
# Needs root (debootstrap, chroot) and python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deb=""
out=.
cache=${RELAYD_IMAGE_CACHE:-/var/tmp/relayd-image}
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) deb=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --rootfs_cache) cache=$2; shift 2 ;;
    *) echo "build_image: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "build_image: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap > /dev/null || { echo "build_image: needs debootstrap (apt install debootstrap)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/relayd-image-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -z "$deb" ]; then
  deb=$(bash "$root/tools/package_deb.sh" --out "$work")
fi

# The base: Debian 12 minbase with the package's Depends (read from the
# .deb), built once per set.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep -v '^$' | sort -u | paste -sd,)
packages=ca-certificates,$depends
stamp="$cache/base.ok-$(echo "$packages" | md5sum | cut -c1-8)"
if [ ! -e "$stamp" ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2> /dev/null || true)
  rm -rf "$cache/base" "$cache"/base.ok-*
  mkdir -p "$cache"
  debootstrap --variant=minbase --include="$packages" bookworm "$cache/base" \
    "${mirror:-http://deb.debian.org/debian}" > "$cache/debootstrap.log" 2>&1 \
    || { echo "build_image: debootstrap failed: $(tail -3 "$cache/debootstrap.log")" >&2; exit 1; }
  touch "$stamp"
fi
fs="$work/rootfs"
cp -a "$cache/base" "$fs"

# relayd's user with the uid the manifests use, then the package (its
# postinst finds the user and keeps it).
chroot "$fs" groupadd --system --gid 65532 relayd
chroot "$fs" useradd --system --uid 65532 -K SYS_UID_MAX=65532 --gid 65532 --home-dir /var/lib/relayd \
  --no-create-home --shell /usr/sbin/nologin relayd
cp "$deb" "$fs/tmp/relayd.deb"
chroot "$fs" dpkg -i /tmp/relayd.deb > "$work/dpkg.log" 2>&1 \
  || { echo "build_image: dpkg -i in the image: $(tail -5 "$work/dpkg.log")" >&2; exit 1; }
install -d -o 65532 -g 65532 -m 0700 "$fs/var/lib/relayd"
# The token is the deployment's (a Secret, a bind mount): none baked in.
rm -f "$fs/tmp/relayd.deb" "$fs"/etc/relayd/*_token "$fs/etc/relayd/bridge_authkey"
rm -rf "$fs"/var/cache/apt/* "$fs"/var/lib/apt/lists/* "$fs"/var/log/*.log \
  "$fs"/usr/share/man/* "$fs"/usr/share/info/*
# Flags for a container: listen everywhere, metrics for probes and
# Prometheus, the token from a mounted file.
cat >> "$fs/etc/relayd/relayd.flags" <<'FLAGS'

## Container image defaults (tools/build_image.sh)
--admin_token_file=/etc/relayd/token/admin_token
# No tailnet bridge in the image (mount a token and set this to add one).
--admin_bridge_token_file=
--metrics_listen=0.0.0.0:9781
--stop_timeout=10s
FLAGS

# The image's own file system runs relayd, as the image's user.
mkdir -p "$fs/etc/relayd/token"
echo "image-check" > "$fs/etc/relayd/token/admin_token"
{
  chroot --userspec=65532:65532 "$fs" /usr/bin/relayd --version
  chroot --userspec=65532:65532 "$fs" /usr/bin/relayd --flagfile=/etc/relayd/relayd.flags \
    --advertise=192.0.2.10 --check_config
  chroot --userspec=65532:65532 "$fs" /usr/bin/relayctl help | head -1
} > "$out/rootfs-check.txt" 2>&1 \
  || { echo "build_image: relayd does not run in the image: $(cat "$out/rootfs-check.txt")" >&2; exit 1; }
rm -rf "$fs/etc/relayd/token"
version=$(sed -n 's/^relayd \([0-9.]*\) .*/\1/p' "$out/rootfs-check.txt")

# One layer, reproducible order and times.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2> /dev/null || date +%s)}
tar --sort=name --numeric-owner --mtime="@$epoch" --xattrs -C "$fs" -cf "$work/layer.tar" .
python3 - "$work" "$version" "$epoch" <<'PY'
import gzip, hashlib, json, os, shutil, sys, time
work, version, epoch = sys.argv[1], sys.argv[2], int(sys.argv[3])
layout = os.path.join(work, "oci")
blobs = os.path.join(layout, "blobs", "sha256")
os.makedirs(blobs)

def put(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)

raw = open(os.path.join(work, "layer.tar"), "rb").read()
diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
layer_digest, layer_size = put(gzip.compress(raw, mtime=0))
created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
config = {
    "created": created,
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "User": "65532:65532",
        "Entrypoint": ["/usr/bin/relayd"],
        "Cmd": ["--flagfile=/etc/relayd/relayd.flags"],
        "ExposedPorts": {"7777/udp": {}, "9781/tcp": {}},
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "WorkingDir": "/var/lib/relayd",
        "StopSignal": "SIGTERM",
        "Labels": {"org.opencontainers.image.title": "relayd",
                   "org.opencontainers.image.version": version},
    },
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": created, "created_by": "tools/build_image.sh"}],
}
config_digest, config_size = put(json.dumps(config, sort_keys=True).encode())
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": config_digest, "size": config_size},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest, "size": layer_size}],
}
manifest_digest, manifest_size = put(json.dumps(manifest, sort_keys=True).encode())
index = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": manifest_digest, "size": manifest_size,
                   "annotations": {"org.opencontainers.image.ref.name": "relayd:" + version}}],
}
open(os.path.join(layout, "index.json"), "w").write(json.dumps(index, sort_keys=True))
open(os.path.join(layout, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
print(manifest_digest)
PY
tar --sort=name --mtime="@$epoch" --owner=0 --group=0 -C "$work/oci" -cf "$out/relayd-image.tar" .
echo "$out/relayd-image.tar"
