#!/usr/bin/env bash
# Build a PostgreSQL 15 Docker image without a container registry.
#
#   ci/build-postgres-image.sh [--force]
#
# The image is assembled from Debian packages (debootstrap + apt in a chroot)
# and handed to `docker import`, so the only network access needed is a Debian
# package mirror. Its entrypoint follows the official `postgres` image's
# contract (POSTGRES_* variables, `postgres -c ...` arguments,
# /docker-entrypoint-initdb.d), so it can stand in for that image wherever no
# registry is reachable:
#
#   REHEARSE_DOCKER_IMAGE=rehearse-postgres:15 rehearse ...
#
# Environment:
#   REHEARSE_IMAGE_NAME              tag to build (default rehearse-postgres:15)
#   REHEARSE_DEBIAN_MIRROR           default http://deb.debian.org/debian
#   REHEARSE_DEBIAN_SECURITY_MIRROR  default http://deb.debian.org/debian-security
#
# Needs root (debootstrap and chroot do) on a Debian or Ubuntu host with a
# running Docker daemon.

set -Eeuo pipefail

readonly IMAGE="${REHEARSE_IMAGE_NAME:-rehearse-postgres:15}"
readonly MIRROR="${REHEARSE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly SECURITY_MIRROR="${REHEARSE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
readonly SUITE=bookworm
readonly PG_MAJOR=15
# The official image's uid/gid, so data directories bind-mounted from the host
# or shared with it keep working when switching between the two images.
readonly PG_UID=999
readonly PG_GID=999
readonly PGDATA=/var/lib/postgresql/data

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly ENTRYPOINT_SRC="$HERE/postgres-image/docker-entrypoint.sh"

log() { printf '%s: [%3d s] %s\n' "${0##*/}" "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	cat <<-EOF
	usage: ${0##*/} [--force]

	Builds the PostgreSQL $PG_MAJOR image $IMAGE from Debian packages, without
	any container registry. Does nothing if the image already exists, unless
	--force is given. Set REHEARSE_IMAGE_NAME to build under another tag.
	EOF
}

force=false
for arg in "$@"; do
	case "$arg" in
		--force) force=true ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; exit 2 ;;
	esac
done

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (is it running, may this user use it?)"

old_image_id="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
if [ -n "$old_image_id" ] && ! "$force"; then
	echo "$IMAGE already exists (use --force to rebuild)"
	exit 0
fi

[ -f "$ENTRYPOINT_SRC" ] || die "missing $ENTRYPOINT_SRC"
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it); try: sudo $0 $*"

SECONDS=0

if ! command -v debootstrap >/dev/null || [ ! -s /usr/share/keyrings/debian-archive-keyring.gpg ]; then
	command -v apt-get >/dev/null || die "debootstrap is missing and there is no apt-get to install it"
	log "installing debootstrap"
	# The host's package lists may be stale or absent (slim CI images).
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		debootstrap debian-archive-keyring >/dev/null
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/rehearse-postgres-image.XXXXXX")"
readonly work
readonly rootfs="$work/rootfs"
imported_id=''

cleanup() {
	local status=$? mounts
	# A failed or interrupted debootstrap/chroot can leave /proc, /sys or a
	# bind-mounted /dev under the rootfs: unmount (deepest first) before
	# deleting, and never let rm cross into another filesystem.
	mounts="$(awk -v w="$work" 'index($2, w "/") == 1 { print $2 }' /proc/self/mounts | sort -r)"
	if [ -n "$mounts" ]; then
		# shellcheck disable=SC2086 # one mount point per line, no spaces (mktemp)
		umount -l $mounts 2>/dev/null || true
	fi
	if mountpoint -q "$work"; then
		umount -l "$work" || true
	fi
	rm -rf --one-file-system "$work"
	# An import that never got its tag would linger as a <none> image.
	if [ "$status" != 0 ] && [ -n "$imported_id" ]; then
		docker image rm "$imported_id" >/dev/null 2>&1 || true
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# dpkg fsyncs every file it writes; on a real disk that alone costs ~20 s of a
# ~50 s build. The rootfs is thrown away after the import, so build it in RAM
# (about 600 MB at its peak) when we can, and on disk otherwise.
if mount -t tmpfs -o size=3g,mode=0700 rehearse-rootfs "$work" 2>/dev/null; then
	log "building in a tmpfs at $work"
else
	log "building on disk at $work (could not mount a tmpfs there)"
fi

# A clean environment for everything run in the chroot: a host locale that
# does not exist there would make perl-based maintainer scripts complain.
# Proxy settings are kept for mirrors that are only reachable through one.
chroot_env=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive)
for var in http_proxy https_proxy no_proxy; do
	if [ -n "${!var:-}" ]; then chroot_env+=("$var=${!var}"); fi
done
in_root() { chroot "$rootfs" /usr/bin/env -i "${chroot_env[@]}" "$@"; }

# Runs a chatty command with its output kept in a log that is shown only if
# the command fails.
quietly() {
	if ! "$@" >>"$work/build.log" 2>&1; then
		tail -n 40 "$work/build.log" >&2
		die "failed: $*"
	fi
}

log "debootstrap $SUITE (minbase) from $MIRROR"
quietly debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR"

# Packages come from apt rather than debootstrap's --include: debootstrap
# reads a single suite, so it would miss the PostgreSQL minor releases and
# library fixes that Debian ships through bookworm-security.
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF

# Kept in the image, so images built FROM it stay small too.
cat >"$rootfs/etc/apt/apt.conf.d/90rehearse" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/90rehearse-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
# Build-time only (removed below): no fsync, no daemons started by postinst.
echo 'DPkg::Options { "--force-unsafe-io"; };' >"$rootfs/etc/apt/apt.conf.d/00rehearse-build"
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"

# Create the account before the packages do, to pin the official uid/gid.
in_root groupadd --system --gid "$PG_GID" postgres
in_root useradd --system --uid "$PG_UID" --gid postgres \
	--home-dir /var/lib/postgresql --shell /bin/bash postgres
install -d -o "$PG_UID" -g "$PG_GID" -m 0755 "$rootfs/var/lib/postgresql"

# The entrypoint runs initdb itself; the Debian "main" cluster would only be
# deleted again (and costs an initdb at build time).
install -d "$rootfs/etc/postgresql-common"
echo 'create_main_cluster = false' >"$rootfs/etc/postgresql-common/createcluster.conf"

log "installing postgresql-$PG_MAJOR (with $SUITE-security updates)"
quietly in_root apt-get update
quietly in_root apt-get dist-upgrade -y
# confold keeps our createcluster.conf over the packaged one.
quietly in_root apt-get install -y -o Dpkg::Options::=--force-confold "postgresql-$PG_MAJOR"
# shellcheck disable=SC2016 # ${Version} is dpkg-query's syntax, not the shell's
pg_version="$(in_root dpkg-query -W -f '${Version}' "postgresql-$PG_MAJOR")"

# The official image's locale: initdb takes the cluster's default collation
# from LANG, and rehearsals should sort text like a typical production server.
in_root localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8

# Accept TCP connections from outside the container. Set in the sample that
# initdb copies, so nothing has to be edited at container start.
sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" \
	"$rootfs/usr/share/postgresql/$PG_MAJOR/postgresql.conf.sample"
grep -q "^listen_addresses = '\*'" "$rootfs/usr/share/postgresql/$PG_MAJOR/postgresql.conf.sample" ||
	die "could not set listen_addresses in postgresql.conf.sample"

# Same directories and modes as the official image. The socket directory
# (the Debian build's default) is created at boot by systemd on a normal host;
# a container has no systemd, so it must exist in the image.
install -d -o "$PG_UID" -g "$PG_GID" -m 3777 "$rootfs/run/postgresql"
install -d -o "$PG_UID" -g "$PG_GID" -m 0700 "$rootfs$PGDATA"
install -d -m 0755 "$rootfs/docker-entrypoint-initdb.d"
install -m 0755 "$ENTRYPOINT_SRC" "$rootfs/usr/local/bin/docker-entrypoint.sh"

# A cluster initialised now, exactly as the entrypoint's initdb would at a
# default first start (superuser postgres, the image's LANG and time zone),
# shipped as a gzipped tar: 5 MB to read instead of 39 MB, which matters on
# slow storage drivers (fuse-overlayfs). The entrypoint unpacks it and sets
# the password in single-user mode instead of running initdb and a temporary
# server. It records what it was made for; a container started with another
# POSTGRES_USER, locale, time zone or initdb arguments runs initdb.
readonly PRISTINE_DIR=/usr/local/share/rehearse-postgres
readonly IMAGE_LANG=en_US.utf8
zone="$(readlink "$rootfs/etc/localtime")" || die "the rootfs has no /etc/localtime link"
zone="${zone#*/zoneinfo/}"
install -d -m 0755 "$rootfs$PRISTINE_DIR"
install -d -o "$PG_UID" -g "$PG_GID" -m 0700 "$rootfs/tmp/cluster"
quietly chroot "$rootfs" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/var/lib/postgresql \
	LANG="$IMAGE_LANG" TZ="$zone" \
	setpriv --reuid=postgres --regid=postgres --init-groups \
	"/usr/lib/postgresql/$PG_MAJOR/bin/initdb" -D /tmp/cluster --username=postgres \
	--auth-local=trust --auth-host=scram-sha-256 --no-sync
# pg_hba.conf is written by the entrypoint, for the auth method asked for.
rm -f "$rootfs/tmp/cluster/pg_hba.conf"
# The chroot has no /dev/shm, so initdb fell back to System V shared memory
# where a container's initdb picks posix: write what a container would.
sed -ri "s/^(dynamic_shared_memory_type) = \S+/\1 = posix/" "$rootfs/tmp/cluster/postgresql.conf"
grep -q '^dynamic_shared_memory_type = posix' "$rootfs/tmp/cluster/postgresql.conf" ||
	die "could not set dynamic_shared_memory_type in the prebuilt cluster"
tar -C "$rootfs/tmp/cluster" -cf - . | gzip -1 >"$rootfs$PRISTINE_DIR/cluster.tar.gz"
rm -rf "$rootfs/tmp/cluster"
printf 'USER=postgres LANG=%s TZ=%s' "$IMAGE_LANG" "$zone" >"$rootfs$PRISTINE_DIR/cluster.identity"

# Slim down: package lists and caches, documentation, message translations
# (the server logs in English), locale sources (en_US.UTF-8 is compiled
# above), logs, and the host files debootstrap copied in (Docker provides
# its own resolv.conf, hosts and hostname).
rm -f "$rootfs/usr/sbin/policy-rc.d" "$rootfs/etc/apt/apt.conf.d/00rehearse-build"
in_root apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
	"$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
	"$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
	"$rootfs"/usr/share/i18n/locales/* "$rootfs"/usr/share/i18n/charmaps/* \
	"$rootfs"/tmp/* "$rootfs"/var/tmp/*
find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find "$rootfs/var/log" -type f -delete
: >"$rootfs/etc/resolv.conf"
rm -f "$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"

log "importing into Docker as $IMAGE"
changes=(
	--change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]'
	--change 'CMD ["postgres"]'
	--change "ENV PATH=/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	--change "ENV PG_MAJOR=$PG_MAJOR"
	--change "ENV PG_VERSION=$pg_version"
	--change "ENV PGDATA=$PGDATA"
	--change "ENV LANG=$IMAGE_LANG"
	--change 'EXPOSE 5432'
	# The entrypoint starts as root to fix ownership of mounted volumes, then
	# drops to the postgres user before running anything else.
	--change 'USER root'
	--change 'WORKDIR /'
	--change 'LABEL org.opencontainers.image.title=rehearse-postgres'
	--change "LABEL org.opencontainers.image.version=$pg_version"
	--change "LABEL org.opencontainers.image.description=\"PostgreSQL $PG_MAJOR from Debian $SUITE packages, built without a registry\""
)
# SIGINT is PostgreSQL's "fast shutdown": `docker stop` disconnects clients at
# once instead of waiting for them and killing the server after its timeout.
# Older daemons (Docker 20.10, for one) refuse STOPSIGNAL in `import --change`;
# ask with an empty import rather than after streaming the whole rootfs.
readonly STOPSIGNAL_CHANGE='STOPSIGNAL SIGINT'
if probe_id="$(tar -cf - -T /dev/null | docker import --change "$STOPSIGNAL_CHANGE" - 2>/dev/null)"; then
	docker image rm "$probe_id" >/dev/null 2>&1 || true
	changes+=(--change "$STOPSIGNAL_CHANGE")
	stopsignal_by_build=false
else
	stopsignal_by_build=true
fi

# /dev, /proc and /sys are provided by the container runtime.
imported_id="$(
	tar --numeric-owner --xattrs -C "$rootfs" \
		--exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
		docker import "${changes[@]}" \
			--message "built by ${0##*/} (postgresql-$PG_MAJOR $pg_version)" - )"
if "$stopsignal_by_build"; then
	# A metadata-only build on top of the import: the classic builder uses
	# the local image and never contacts a registry (BuildKit with a
	# container driver would try to).
	printf 'FROM %s\n%s\n' "$imported_id" "$STOPSIGNAL_CHANGE" |
		DOCKER_BUILDKIT=0 quietly docker build --tag "$IMAGE" -
else
	docker tag "$imported_id" "$IMAGE"
fi

new_image_id="$(docker image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$old_image_id" ] && [ "$old_image_id" != "$new_image_id" ]; then
	# The rebuilt image took the tag; drop the old one unless a container
	# still uses it.
	docker image rm "$old_image_id" >/dev/null 2>&1 || true
fi

size="$(docker image inspect --format '{{.Size}}' "$IMAGE")"
echo "built $IMAGE (postgresql-$PG_MAJOR $pg_version, $((size / 1000000)) MB) in $SECONDS s"
