#!/usr/bin/env bash
# make container-test: build the Bento's image with podman, run it, segment a labelled photo, stop.
#
#   deploy/container_test.sh            (PYTHON=... BENTOML=... to pick the virtualenv; root, podman)
#
# 1. the base image: deploy/base_image.sh makes nailseg-base:bookworm locally if it is missing
#    (there is no Docker Hub here): the shipped base (python:3.11-slim-bookworm) made by hand,
#    Debian bookworm + Python 3.11;
# 2. `bentoml build` with the bundled model imported into a temporary BENTOML_HOME, from a copy of
#    bentofile.yaml that differs only in docker.base_image;
# 3. `bentoml containerize --backend podman`, with a uv cache volume outside the image (wheels are
#    downloaded once; later builds also reuse podman's layer cache);
# 4. runs the image on a free loopback port and checks it with deploy/smoke_check.py (/readyz,
#    segment examples/nails_01.jpg, Dice against its label >= 0.85, /model-info);
# 5. removes the container, the Bento and the temporary store. It keeps, for speed, the base image,
#    the test image (tag nail-segmentation:container-test; the previous build's image is removed),
#    podman's layer cache and the uv cache ($UV_CACHE_DIR, default /var/tmp/nailseg-uv-cache).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
BENTOML="${BENTOML:-$(dirname "$PYTHON")/bentoml}"
BASE_IMAGE="${BASE_IMAGE:-localhost/nailseg-base:bookworm}"
IMAGE="${IMAGE:-localhost/nail-segmentation:container-test}"
UV_CACHE_DIR="${UV_CACHE_DIR:-/var/tmp/nailseg-uv-cache}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/containers.conf}"
export BENTOML_DO_NOT_TRACK=True
started=$(date +%s)
say() { echo "[container-test +$(( $(date +%s) - started ))s] $*"; }

command -v podman >/dev/null || { echo "podman is not installed (apt-get install podman runc)"; exit 2; }
WORK="$(mktemp -d /var/tmp/nailseg-container-test.XXXXXX)"
CONTAINER="nailseg-container-test-$$"
cleanup() {
    podman rm -f "$CONTAINER" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 130" INT TERM

say "base image $BASE_IMAGE"
deploy/base_image.sh "$BASE_IMAGE"

say "bentoml build (bundled model, temporary store $WORK/home)"
export BENTOML_HOME="$WORK/home"
"$PYTHON" -m models_import >"$WORK/import.log" 2>&1 || { cat "$WORK/import.log"; exit 1; }
"$PYTHON" - "$BASE_IMAGE" "$WORK/bentofile.yaml" <<'PY'
import sys, yaml
spec = yaml.safe_load(open("bentofile.yaml"))
spec["docker"]["base_image"] = sys.argv[1]  # the only difference from the shipped bentofile
yaml.safe_dump(spec, open(sys.argv[2], "w"), sort_keys=False)
PY
TAG="$("$BENTOML" build --bentofile "$WORK/bentofile.yaml" --output tag . 2>"$WORK/build.log" | tail -n1)"
TAG="${TAG#__tag__:}"
[[ "$TAG" == nail-segmentation:* ]] || { cat "$WORK/build.log"; exit 1; }

say "bentoml containerize $TAG --backend podman -> $IMAGE"
mkdir -p "$UV_CACHE_DIR"
previous="$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
build_started=$(date +%s)
"$BENTOML" containerize "$TAG" --backend podman --image-tag "$IMAGE" \
    --opt "volume=$UV_CACHE_DIR:/root/.cache/uv" >"$WORK/containerize.log" 2>&1 \
    || { tail -n 60 "$WORK/containerize.log"; exit 1; }
build_s=$(( $(date +%s) - build_started ))
current="$(podman image inspect --format '{{.Id}}' "$IMAGE")"
if [[ -n "$previous" && "$previous" != "$current" ]]; then
    podman rmi "$previous" >/dev/null 2>&1 || true
fi
size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
say "image built in ${build_s}s: $IMAGE $(( size / 1000000 )) MB"

PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
say "podman run -p 127.0.0.1:$PORT:3000 $IMAGE"
podman run -d --name "$CONTAINER" -p "127.0.0.1:$PORT:3000" "$IMAGE" >/dev/null
if ! "$PYTHON" deploy/smoke_check.py "http://127.0.0.1:$PORT" --timeout "${READY_TIMEOUT:-600}"; then
    podman logs --tail 80 "$CONTAINER" || true
    say "FAILED"
    exit 1
fi
say "PASSED (image ${build_s}s to build, $(( size / 1000000 )) MB; total $(( $(date +%s) - started ))s)"
