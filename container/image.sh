#!/usr/bin/env bash
# `make image` (build) and `make image-test` (test) with podman: no Docker daemon needed.
#
#   container/image.sh build   podman build of the Dockerfile as $IMAGE; the base image is
#                              $PYTHON_IMAGE, or (unset) a local one bootstrapped by base.sh
#   container/image.sh test    checks $IMAGE: runs as a non-root uid, works on a read-only root
#                              filesystem, has the compiled Avro reader, `map` gives the
#                              virtualenv's bytes, `demo` passes; and a base without Python's
#                              headers fails the build
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/container/containers.conf}
IMAGE=${IMAGE:-localhost/openai-capi-consumer:local}
VENV_BIN=${VENV_BIN:-.venv/bin}

command -v podman >/dev/null || {
    echo "podman is missing: apt-get install podman buildah mmdebstrap runc uidmap fuse-overlayfs" >&2
    exit 1
}

base_image() {
    if [[ -n "${PYTHON_IMAGE:-}" ]]; then
        echo "$PYTHON_IMAGE"
    else
        container/base.sh
    fi
}

# --network host: the machines have no iptables/nft for podman's bridge network.
build() { podman build --pull=never --network host --quiet "$@" .; }

# Runs as the image's own user, on a read-only root filesystem with a writable /tmp only.
run() {
    podman run --rm --network none --read-only --read-only-tmpfs=false --tmpfs /tmp \
        --security-opt label=disable "$@"
}

fail() {
    echo "image-test: FAILED: $*" >&2
    exit 1
}

cmd_build() {
    local base
    base=$(base_image)
    echo "building $IMAGE from $base" >&2
    # --no-cache: podman 4.3 keys the cache of `RUN --mount=type=bind,from=builder` without the
    # mounted stage's content, and would keep installing the previous build's wheels.
    local previous
    previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    build --no-cache --build-arg "PYTHON_IMAGE=$base" -t "$IMAGE" >/dev/null
    # The image it replaces, now untagged (nothing else of podman's store is touched).
    if [[ -n "$previous" && "$previous" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]]; then
        podman rmi "$previous" >/dev/null 2>&1 || true
    fi
    echo "built $IMAGE"
}

cmd_test() {
    podman image exists "$IMAGE" || fail "$IMAGE does not exist: run make image first"
    local work
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN

    local user uid
    user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
    uid=$(run --entrypoint id "$IMAGE" -u)
    [[ "$uid" != 0 && "$user" == "$uid:"* ]] || fail "runs as uid $uid (USER $user), not a non-root uid"
    echo "ok: runs as uid $uid"

    run --entrypoint python "$IMAGE" -c '
from consumer.avro import _avro_reader
from consumer.config import SchemaSettings
from consumer.avro.decoding import Decoder
assert Decoder(SchemaSettings()).engine == "native", "not decoding with the compiled reader"
' || fail "the compiled Avro reader is missing or unused"
    echo "ok: the compiled Avro reader is present and chosen"

    run --entrypoint python "$IMAGE" -c '
from transforms import identity
from transforms._sha256_hex import sha256_hex
assert identity.NATIVE_SHA256_HEX is sha256_hex, "hashing with hashlib"
' || fail "the one-call SHA-256 (transforms/_sha256_hex.c) is missing or unused"
    echo "ok: the one-call SHA-256 is present and used"

    run --entrypoint python "$IMAGE" -c '
from consumer.cli.json_values import projector
from transforms import MappingSettings
assert projector(MappingSettings().compile()) is not None, "map reads lines with orjson"
' || fail "map's JSON reader (consumer/cli/_json_values.c) is missing or unused"
    echo "ok: map's JSON reader is present and used"

    run --entrypoint python "$IMAGE" -c '
from consumer.cli.run import transforms_build
assert transforms_build() == "compiled", transforms_build()
' || fail "transforms/ is not compiled with mypyc (CAPI_CONSUMER_MYPYC=1 in the builder)"
    echo "ok: transforms/ compiled with mypyc"

    # Sample events (some invalid) mapped by the virtualenv and by the image: the same bytes.
    "$VENV_BIN/python" -c '
import sys, orjson
from consumer.devtools.samples import generate_events
for event in generate_events(200, seed=18, now_ms=1_773_892_800_000, invalid_ratio=0.1):
    sys.stdout.buffer.write(orjson.dumps(event) + b"\n")
' >"$work/events.jsonl"
    local now=1773892900000
    local venv_status=0 image_status=0
    "$VENV_BIN/capi-consumer" map --now "$now" <"$work/events.jsonl" >"$work/venv.out" 2>/dev/null \
        || venv_status=$?
    run -i "$IMAGE" map --now "$now" <"$work/events.jsonl" >"$work/image.out" 2>/dev/null \
        || image_status=$?
    [[ -s "$work/venv.out" ]] || fail "map in the virtualenv printed nothing"
    cmp -s "$work/venv.out" "$work/image.out" || fail "map inside the image differs from the virtualenv's"
    [[ "$venv_status" == "$image_status" ]] \
        || fail "map exits $image_status inside the image, $venv_status in the virtualenv"
    echo "ok: map inside the image is byte-identical to the virtualenv's ($(wc -l <"$work/venv.out") lines)"

    run "$IMAGE" demo >"$work/demo.out" 2>&1 || { cat "$work/demo.out" >&2; fail "demo failed inside the image"; }
    echo "ok: demo passes inside the image (read-only root filesystem)"

    # A base without Python's headers: the builder stage must fail, not ship without the reader.
    local base headless log="$work/headless-build.log"
    base=$(base_image)
    headless="localhost/capi-python-base-no-headers:$(podman image inspect --format '{{.Id}}' "$base" | cut -c1-12)"
    if ! podman image exists "$headless"; then
        printf 'FROM %s\nRUN rm -rf /usr/include/python3*\n' "$base" >"$work/Containerfile"
        podman build --pull=never --network host --quiet -t "$headless" -f "$work/Containerfile" "$work" >/dev/null
    fi
    if build --target builder --build-arg "PYTHON_IMAGE=$headless" >"$log" 2>&1; then
        fail "a base without Python headers built an image (it would ship without the compiled reader)"
    fi
    grep -q "Python.h" "$log" || { tail -20 "$log" >&2; fail "the headless build failed, but not on the compiled reader"; }
    echo "ok: a base without Python headers fails the build"
}

case "${1:-}" in
build) cmd_build ;;
test) cmd_test ;;
*)
    echo "usage: $0 build|test" >&2
    exit 2
    ;;
esac
