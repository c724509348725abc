#!/usr/bin/env bash
# Entrypoint of the offline PostgreSQL image built by ci/build-postgres-image.sh.
#
# It follows the official `postgres` image's contract closely enough that the
# two are interchangeable for tests and CI:
#   - POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
#     POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default: the user),
#     POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), POSTGRES_INITDB_ARGS,
#     POSTGRES_INITDB_WALDIR, and the *_FILE variants for Docker secrets;
#   - `docker run IMAGE -c fsync=off` and `docker run IMAGE postgres -c ...`
#     both start the server with those arguments; any other command runs as is;
#   - on first start, /docker-entrypoint-initdb.d/*.sh, *.sql and *.sql.gz run
#     against a temporary server that listens on the unix socket only, so
#     nothing polling TCP sees the database before its setup is complete. Like
#     the official image, that server logs to stdout and the final one to
#     stderr: tools that wait for "ready to accept connections" on both
#     streams work unchanged.

set -Eeuo pipefail

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
pwfile='' # global: the EXIT trap that removes it may run after a failure

# VAR from the environment, or read from the file named by VAR_FILE.
file_env() {
	local var="$1" file_var="${1}_FILE" default="${2:-}" value
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		echo >&2 "error: both $var and $file_var are set, but they are exclusive"
		exit 1
	fi
	value="$default"
	if [ -n "${!var:-}" ]; then
		value="${!var}"
	elif [ -n "${!file_var:-}" ]; then
		value="$(<"${!file_var}")"
	fi
	export "$var=$value"
	unset "$file_var"
}

# As root: make the data directories usable by postgres. Needed when they are
# volumes (created root-owned by Docker); a no-op walk of an empty directory
# otherwise.
prepare_directories() {
	mkdir -p "$PGDATA"
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	chmod 0700 "$PGDATA"
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
		chmod 0700 "$POSTGRES_INITDB_WALDIR"
	fi
}

check_settings() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		cat >&2 <<-'EOF'
		error: the database is uninitialized and POSTGRES_PASSWORD is not set.

		  Set POSTGRES_PASSWORD (e.g. `-e POSTGRES_PASSWORD=secret`) to the
		  superuser's password. To allow every connection without a password
		  instead (never on a reachable network), set
		  POSTGRES_HOST_AUTH_METHOD=trust.
		EOF
		exit 1
	fi
	if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
		echo >&2 "warning: POSTGRES_HOST_AUTH_METHOD=trust: every connection is accepted without a password"
	fi
}

# Arguments: the server's arguments (without the leading "postgres").
init_database_directory() {
	local -a extra_args=() pwfile_arg=()
	local arg
	# A server told not to fsync (`-c fsync=off`, `-F`) will not keep its
	# data across an OS crash anyway, so flushing initdb's files to disk is
	# wasted: it is the slowest step of a first start on a busy disk (seconds).
	# Without such an argument initdb syncs, as in the official image.
	for arg; do
		# Patterns match -c fsync=off, -cfsync=off and --fsync=off alike.
		case "$arg" in
			-F | *fsync=[Oo][Ff][Ff] | *fsync=[Ff][Aa][Ll][Ss][Ee] | *fsync=[Nn][Oo] | *fsync=0)
				extra_args=(--no-sync)
				;;
			*fsync=[Oo][Nn] | *fsync=[Tt][Rr][Uu][Ee] | *fsync=[Yy][Ee][Ss] | *fsync=1)
				extra_args=() # the last setting wins, as in the server
				;;
		esac
	done
	# POSTGRES_INITDB_ARGS is shell words, quotes allowed, as in the official
	# image (which also evals it).
	eval "extra_args+=($POSTGRES_INITDB_ARGS)"
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		extra_args=(--waldir "$POSTGRES_INITDB_WALDIR" "${extra_args[@]}")
	fi
	if [ -n "$POSTGRES_PASSWORD" ]; then
		# A private file, so the password never appears in a process list.
		pwfile="$(umask 077 && mktemp)"
		trap 'rm -f "$pwfile"' EXIT
		printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
		pwfile_arg=(--pwfile="$pwfile")
	fi
	# Without TZ, initdb finds the system time zone by comparing
	# /etc/localtime with every zone file: up to a second of a ~2 s start.
	# Naming the zone /etc/localtime links to gives the same answer at once
	# (a bind-mounted /etc/localtime is a file, not a link, and still works).
	local zone
	local -a tz=()
	if [ -z "${TZ:-}" ] && zone="$(readlink /etc/localtime)"; then
		tz=(TZ="${zone#*/zoneinfo/}")
	fi
	# The --auth options only keep initdb from warning about its default
	# "trust"; pg_hba.conf is rewritten below.
	env "${tz[@]}" initdb --username="$POSTGRES_USER" "${pwfile_arg[@]}" \
		--auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" \
		"${extra_args[@]}"
	if [ -n "$pwfile" ]; then
		rm -f "$pwfile"
		trap - EXIT
	fi

	cat >"$PGDATA/pg_hba.conf" <<-EOF
	# Written by docker-entrypoint.sh at initialization.
	# Inside the container the unix socket is trusted (init scripts, pg_isready,
	# docker exec psql); everything over TCP authenticates.
	local all         all trust
	local replication all trust
	host  all         all all $POSTGRES_HOST_AUTH_METHOD
	EOF
}

# Arguments: the server's arguments (without the leading "postgres"), so that
# settings such as shared_preload_libraries also apply while init scripts run.
temp_server_start() {
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
	pg_ctl -D "$PGDATA" -m fast -w stop
}

setup_database() {
	local -a psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ "$POSTGRES_DB" != postgres ]; then
		"${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
		CREATE DATABASE :"db";
		EOSQL
	fi

	local f
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] || continue
		case "$f" in
			*.sh)
				# Executable scripts run on their own; others are sourced, so
				# they can use this script's variables (the official behaviour).
				if [ -x "$f" ]; then
					echo "$0: running $f"
					"$f"
				else
					echo "$0: sourcing $f"
					# The official entrypoint does not use `set -u`; scripts
					# written for it may rely on that.
					set +u
					# shellcheck disable=SC1090
					. "$f"
					set -u
				fi
				;;
			*.sql)
				echo "$0: running $f"
				"${psql[@]}" --dbname "$POSTGRES_DB" -f "$f"
				;;
			*.sql.gz)
				echo "$0: running $f"
				gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB"
				;;
			*) echo "$0: ignoring $f" ;;
		esac
	done
}

# `postgres --version` and friends print and exit: no setup for those.
wants_help() {
	local arg
	for arg; do
		case "$arg" in
			-'?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

main() {
	# `docker run IMAGE -c fsync=off` means `postgres -c fsync=off`.
	if [ "${1:0:1}" = '-' ]; then
		set -- postgres "$@"
	fi
	# Any other command (bash, psql, pg_dump ...) runs as given.
	if [ "$1" != postgres ] || wants_help "$@"; then
		exec "$@"
	fi

	if [ "$(id -u)" = 0 ]; then
		prepare_directories
		# Everything else, initdb included, runs as postgres: re-enter this
		# script through setpriv (util-linux, present in every Debian base).
		export HOME=/var/lib/postgresql
		exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
	fi

	# Also for `docker run --user postgres`, where the block above is skipped.
	mkdir -p "$PGDATA"
	chmod 0700 "$PGDATA" || :

	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		file_env POSTGRES_PASSWORD
		file_env POSTGRES_USER postgres
		file_env POSTGRES_DB "$POSTGRES_USER"
		file_env POSTGRES_INITDB_ARGS
		: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
		check_settings
		init_database_directory "${@:2}"
		temp_server_start "${@:2}"
		setup_database
		temp_server_stop
		echo
		echo 'PostgreSQL init process complete; ready for start up.'
		echo
	else
		echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
	fi

	# The password is not needed any more: keep it out of the server's
	# environment (and of anything it spawns, such as archive_command).
	unset POSTGRES_PASSWORD
	exec "$@"
}

main "$@"
