#!/usr/bin/env bash
# The container image (tools/build_image.sh): an OCI archive whose index,
# manifest, config and layer agree byte for byte (digests, sizes, diff_id),
# whose config runs relayd as uid 65532 with the flag file, and whose file
# system, unpacked from the layer, serves: relayd started from it (chroot,
# as uid 65532, the image's entry point and flags plus loopback addresses)
# answers /readyz and relays nothing it should not.
#
#   bash tests/image_test.sh DEB        (needs root, debootstrap, python3)
set -euo pipefail
DEB="$1"
work=$(mktemp -d /var/tmp/relayd-image-test.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
if [ "$(id -u)" != 0 ] || ! command -v debootstrap > /dev/null; then
  [ -z "${CI:-}" ] || fail "needs root and debootstrap"
  echo "image test: skipped: needs root and debootstrap"; exit 0
fi
here=$(cd "$(dirname "$0")/.." && pwd)
archive=$(bash "$here/tools/build_image.sh" --deb "$DEB" --out "$work/out" | tail -1)
[ -f "$archive" ] || fail "no archive"
grep -q "config ok: port 7777" "$work/out/rootfs-check.txt" || fail "check in the image: $(cat "$work/out/rootfs-check.txt")"
mkdir "$work/oci" "$work/fs"
tar -xf "$archive" -C "$work/oci"
layer=$(python3 - "$work/oci" <<'PY'
import gzip, hashlib, json, os, sys
d = sys.argv[1]
def blob(desc):
    alg, hexd = desc["digest"].split(":")
    data = open(os.path.join(d, "blobs", alg, hexd), "rb").read()
    assert alg == "sha256" and hashlib.sha256(data).hexdigest() == hexd, "digest " + desc["digest"]
    assert len(data) == desc["size"], "size of " + desc["digest"]
    return data
assert json.load(open(os.path.join(d, "oci-layout")))["imageLayoutVersion"] == "1.0.0"
index = json.load(open(os.path.join(d, "index.json")))
assert index["schemaVersion"] == 2 and len(index["manifests"]) == 1
assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"].startswith("relayd:")
manifest = json.loads(blob(index["manifests"][0]))
assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
config = json.loads(blob(manifest["config"]))
c = config["config"]
assert c["User"] == "65532:65532", c["User"]
assert c["Entrypoint"] == ["/usr/bin/relayd"] and c["Cmd"] == ["--flagfile=/etc/relayd/relayd.flags"]
assert set(c["ExposedPorts"]) == {"7777/udp", "9781/tcp"}
assert len(manifest["layers"]) == 1 and manifest["layers"][0]["mediaType"].endswith("tar+gzip")
raw = gzip.decompress(blob(manifest["layers"][0]))
assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(raw).hexdigest()], "diff_id"
path = os.path.join(d, "layer.tar")
open(path, "wb").write(raw)
print(path)
PY
) || fail "OCI archive: $layer"
tar -xf "$layer" -C "$work/fs"
[ "$(stat -c %u:%g "$work/fs/var/lib/relayd")" = 65532:65532 ] || fail "state directory owner"
[ ! -e "$work/fs/etc/relayd/admin_token" ] || fail "a token baked into the image"
# Serve from the image's file system, as the image would run.
mkdir -p "$work/fs/etc/relayd/token"
echo tok > "$work/fs/etc/relayd/token/admin_token"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chroot --userspec=65532:65532 "$work/fs" /usr/bin/relayd --flagfile=/etc/relayd/relayd.flags \
  --listen=127.0.0.1 --port=0 --admin_listen=127.0.0.1:0 --metrics_listen=127.0.0.1:$port \
  --key_file=/var/lib/relayd/key 2> "$work/relayd.log" &
pid=$!
for _ in $(seq 100); do grep -q "metrics on" "$work/relayd.log" && break; sleep 0.05; done
grep -q "^ok" <<< "$(curl -sf "http://127.0.0.1:$port/readyz")" || fail "readyz from the image: $(cat "$work/relayd.log")"
[ -s "$work/fs/var/lib/relayd/key" ] || fail "no key written by uid 65532"
kill -INT $pid; wait $pid || fail "relayd exit"
pid=
echo "image test: $(basename "$archive") $(du -h "$archive" | cut -f1), digests agree, relayd serves from it as uid 65532"
