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
#   - a first start with an empty data directory unpacks the cluster that
#     ci/build-postgres-image.sh initialised at build time (when it was made
#     for the same superuser, locale and time zone) and sets the password and
#     database in single-user mode: ~0.2 s instead of initdb plus a temporary
#     server (~1.5 s). Any other first start runs initdb, as the official
#     image does; both end in the same state;
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

# Arguments: the server's arguments. Succeeds when they turn fsync off.
# A server told not to fsync (`-c fsync=off`, `-F`) will not keep its data
# across an OS crash anyway, so flushing the new cluster's files to disk is
# wasted: it is the slowest step of a first start on a busy disk (seconds).
# Without such an argument the files are synced, as in the official image.
fsync_off() {
	local arg off=1
	for arg; do
		# Patterns match -c fsync=off, -cfsync=off and --fsync=off alike.
		case "$arg" in
			-F | *fsync=[Oo][Ff][Ff] | *fsync=[Ff][Aa][Ll][Ss][Ee] | *fsync=[Nn][Oo] | *fsync=0)
				off=0
				;;
			*fsync=[Oo][Nn] | *fsync=[Tt][Rr][Uu][Ee] | *fsync=[Yy][Ee][Ss] | *fsync=1)
				off=1 # the last setting wins, as in the server
				;;
		esac
	done
	return "$off"
}

# The zone /etc/localtime links to, or nothing (TZ set, or not a link).
# Without TZ, initdb finds the system time zone by comparing /etc/localtime
# with every zone file: up to a second of a ~2 s start. Naming the zone
# /etc/localtime links to gives the same answer at once (a bind-mounted
# /etc/localtime is a file, not a link, and still works).
linked_zone() {
	local zone
	if [ -z "${TZ:-}" ] && zone="$(readlink /etc/localtime)"; then
		printf '%s' "${zone#*/zoneinfo/}"
	fi
}

# Everything over TCP authenticates; inside the container the unix socket is
# trusted (init scripts, pg_isready, docker exec psql).
write_hba() {
	cat >"$PGDATA/pg_hba.conf" <<-EOF
	# Written by docker-entrypoint.sh at initialization.
	# Inside the container the unix socket is trusted (init scripts, pg_isready,
	# docker exec psql); everything over TCP authenticates.
	local all         all trust
	local replication all trust
	host  all         all all $POSTGRES_HOST_AUTH_METHOD
	EOF
}

# The cluster ci/build-postgres-image.sh initialised, and what it was made
# for (`USER=... LANG=... TZ=...`).
readonly PRISTINE=/usr/local/share/rehearse-postgres/cluster.tar.gz
readonly PRISTINE_IDENTITY=/usr/local/share/rehearse-postgres/cluster.identity

# Succeeds when the prebuilt cluster is the one initdb would make now: the
# same superuser, locale and time zone, no initdb arguments or WAL directory,
# and a password single-user mode can read on one line.
can_copy_pristine() {
	[ -s "$PRISTINE" ] && [ -r "$PRISTINE_IDENTITY" ] || return 1
	[ -z "$POSTGRES_INITDB_ARGS" ] && [ -z "${POSTGRES_INITDB_WALDIR:-}" ] || return 1
	case "$POSTGRES_HOST_AUTH_METHOD" in scram-sha-256 | trust) ;; *) return 1 ;; esac
	case "$POSTGRES_PASSWORD" in *$'\n'* | *$'\r'*) return 1 ;; esac
	[ -z "${LC_ALL:-}${LC_COLLATE:-}${LC_CTYPE:-}${LC_MESSAGES:-}${LC_MONETARY:-}${LC_NUMERIC:-}${LC_TIME:-}" ] || return 1
	local zone
	zone="${TZ:-$(linked_zone)}"
	[ "$(<"$PRISTINE_IDENTITY")" = "USER=$POSTGRES_USER LANG=${LANG:-} TZ=$zone" ]
}

# Arguments: the server's arguments (without the leading "postgres").
# Unpacks the prebuilt cluster and sets the superuser's password and the
# database in single-user mode: no server listens while it happens.
copy_pristine() {
	tar -xzf "$PRISTINE" -C "$PGDATA"
	write_hba
	local q="'" dq='"'
	# The statements go through a pipe from shell builtins, never a command
	# line; log_min_error_statement=panic keeps them out of the log even if
	# one fails, and exit_on_error turns a failure into a non-zero exit.
	{
		if [ -n "$POSTGRES_PASSWORD" ]; then
			printf 'ALTER ROLE "%s" PASSWORD %s;\n' "${POSTGRES_USER//$dq/$dq$dq}" \
				"$q${POSTGRES_PASSWORD//$q/$q$q}$q"
		fi
		if [ "$POSTGRES_DB" != postgres ]; then
			printf 'CREATE DATABASE "%s";\n' "${POSTGRES_DB//$dq/$dq$dq}"
		fi
	} | postgres --single -D "$PGDATA" -c log_min_error_statement=panic -c exit_on_error=on \
		-c fsync=off postgres >/dev/null
	if ! fsync_off "$@"; then
		initdb --sync-only -D "$PGDATA" >/dev/null
	fi
}

# Arguments: the server's arguments (without the leading "postgres").
init_database_directory() {
	local -a extra_args=() pwfile_arg=()
	if fsync_off "$@"; then
		extra_args=(--no-sync)
	fi
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
	local zone
	local -a tz=()
	zone="$(linked_zone)"
	if [ -n "$zone" ]; then
		tz=(TZ="$zone")
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
	write_hba
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

create_database() {
	if [ "$POSTGRES_DB" != postgres ]; then
		"${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
		CREATE DATABASE :"db";
		EOSQL
	fi
}

# Succeeds when /docker-entrypoint-initdb.d holds anything to run.
has_init_scripts() {
	local f
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] && return 0
	done
	return 1
}

run_init_scripts() {
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
		psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
		if can_copy_pristine; then
			copy_pristine "${@:2}"
			if has_init_scripts; then
				temp_server_start "${@:2}"
				run_init_scripts
				temp_server_stop
			fi
		else
			init_database_directory "${@:2}"
			temp_server_start "${@:2}"
			create_database
			run_init_scripts
			temp_server_stop
		fi
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
