#!/usr/bin/env bash
# Builds the cachenode image without any registry: FROM scratch, out of a
# static cachenode built here and this machine's redis-server and redis-cli
# with the shared libraries ldd lists (plus the dynamic loader). The result
# has the runtime layout of the Dockerfile users build (same paths, user,
# ENV, ENTRYPOINT, HEALTHCHECK, STOPSIGNAL) and is tagged as the image
# docker-compose.yml uses, so `docker compose up` runs it without pulling
# or building.
#
#   scripts/image-offline.sh            # tags peercache/cachenode:latest
#   IMAGE=name:tag scripts/image-offline.sh
#
# Needs: go, docker, redis-server and redis-cli (make deps installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-peercache/cachenode:latest}
GO=${GO:-go}
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
REDIS_SERVER=${REDIS_SERVER:-$(command -v redis-server || true)}
REDIS_CLI=${REDIS_CLI:-$(command -v redis-cli || true)}

die() { echo "image-offline: $*" >&2; exit 1; }
[ -n "$REDIS_SERVER" ] || die "redis-server not found (make deps installs it)"
[ -n "$REDIS_CLI" ] || die "redis-cli not found (make deps installs it)"
command -v docker >/dev/null || die "docker not found"
command -v ldd >/dev/null || die "ldd not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/peercache-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/usr/local/bin" "$root/usr/bin" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"

echo "image-offline: building a static cachenode ($VERSION)"
CGO_ENABLED=0 $GO build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
	-o "$root/usr/local/bin/cachenode" ./cmd/cachenode

# copy_elf SRC DEST copies a dynamically linked program (following symlinks:
# Debian's redis-server is a link to redis-check-rdb, and Redis picks its mode
# from argv[0], so the file must be named redis-server) and every library ldd
# lists, at the path ldd prints, plus the dynamic loader.
copy_elf() {
	local src=$1 dest=$2 lib
	cp -L "$src" "$root$dest"
	ldd "$src" >"$work/ldd.txt" || die "ldd $src failed"
	while read -r lib; do
		[ -n "$lib" ] || continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' "$work/ldd.txt")
	if grep -q 'not found' "$work/ldd.txt"; then
		die "ldd $src: a library is missing: $(grep 'not found' "$work/ldd.txt")"
	fi
}
copy_elf "$REDIS_SERVER" /usr/bin/redis-server
copy_elf "$REDIS_CLI" /usr/bin/redis-cli

# The non-root user the image runs as (the same uid as the Dockerfile's).
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
cachenode:x:10001:10001:peercache node:/tmp:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
cachenode:x:10001:
nogroup:x:65534:
GROUP
echo "hosts: files dns" >"$root/etc/nsswitch.conf"

# The cluster secret's directory (a volume in docker-compose.yml), owned by
# the image's user so that keygen can write there.
mkdir -p "$work/peercache"
echo "cluster secret volume (docker-compose.yml)" >"$work/peercache/README"
cp docker/offline.Dockerfile "$work/Dockerfile"
echo "image-offline: docker build -t $IMAGE (FROM scratch, $(du -sh "$root" | cut -f1) rootfs)"
# The classic builder: it needs no BuildKit/buildx and pulls nothing for
# FROM scratch. Its output (a deprecation notice, the image id) is shown only
# on failure.
if ! DOCKER_BUILDKIT=0 docker build --label "org.opencontainers.image.version=$VERSION" \
	--label peercache.offline=1 -t "$IMAGE" "$work" >"$work/build.log" 2>&1; then
	cat "$work/build.log" >&2
	die "docker build of $IMAGE failed"
fi
# The image this build replaced under the tag is left untagged: remove it.
docker image prune -f --filter label=peercache.offline=1 >/dev/null 2>&1 || true
echo "image-offline: built $IMAGE ($(docker image inspect -f '{{.Id}}' "$IMAGE" | cut -c1-19), $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}'))"
