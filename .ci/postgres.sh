# shellcheck shell=bash
# Sourced by .ci/run: a throw-away PostgreSQL server for the tests of the
# PostgreSQL backend (eventstore/postgres and the suites that run on it).
#
# It installs PostgreSQL from the system's packages when initdb/postgres are
# missing, starts a private server as a non-root user, listening only on a
# unix socket in a temporary directory (no TCP port), creates a database and
# exports MUNINN_PG_URL. An EXIT trap stops the server and removes the
# directory, so nothing is left behind; two runs at once do not meet (each
# has its own directory and socket).

muninn_pg_bindir() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
		fi
	done | sort -V | tail -n 1
}

muninn_pg_as() {
	if [ "${#MUNINN_PG_RUN[@]}" -eq 0 ]; then
		"$@"
	elif [ "${MUNINN_PG_RUN[0]}" = su ]; then
		"${MUNINN_PG_RUN[@]}" "$(printf '%q ' "$@")"
	else
		"${MUNINN_PG_RUN[@]}" "$@"
	fi
}

muninn_pg_start() {
	local bin
	bin="$(muninn_pg_bindir)"
	if [ -z "$bin" ]; then
		echo "== installing PostgreSQL (apt-get install -y postgresql)"
		source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
		muninn_apt_install postgresql || return 1
		bin="$(muninn_pg_bindir)"
		if [ -z "$bin" ]; then
			echo "postgres.sh: no initdb under /usr/lib/postgresql/*/bin after installing" >&2
			return 1
		fi
	fi

	# The server runs as a non-root user: the current one, or postgres when
	# this script runs as root.
	MUNINN_PG_RUN=()
	local user
	user="$(id -un)"
	if [ "$(id -u)" -eq 0 ]; then
		user=postgres
		if ! id postgres >/dev/null 2>&1; then
			useradd --system --no-create-home postgres
		fi
		if command -v runuser >/dev/null 2>&1; then
			MUNINN_PG_RUN=(runuser -u postgres --)
		else
			MUNINN_PG_RUN=(su postgres -s /bin/sh -c)
		fi
	fi

	MUNINN_PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/muninn-pg.XXXXXX")"
	chmod 755 "$MUNINN_PG_DIR"
	mkdir -p "$MUNINN_PG_DIR/data"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R postgres: "$MUNINN_PG_DIR"
	fi
	chmod 700 "$MUNINN_PG_DIR/data"
	MUNINN_PG_BIN="$bin"
	trap muninn_pg_stop EXIT

	muninn_pg_as "$bin/initdb" -D "$MUNINN_PG_DIR/data" -U postgres -A trust -E UTF8 --no-locale >"$MUNINN_PG_DIR/initdb.log" 2>&1 ||
		{ cat "$MUNINN_PG_DIR/initdb.log" >&2; return 1; }
	# Tuned for tests: many connections (packages test in parallel), no TCP.
	# fsync stays on: the tests are about durability too.
	muninn_pg_as "$bin/pg_ctl" -D "$MUNINN_PG_DIR/data" -l "$MUNINN_PG_DIR/server.log" -w -t 60 \
		-o "-c listen_addresses= -k $MUNINN_PG_DIR -c max_connections=300 -c shared_buffers=128MB -c max_locks_per_transaction=256" \
		start >/dev/null || { cat "$MUNINN_PG_DIR/server.log" >&2; return 1; }
	muninn_pg_as "$bin/createdb" -h "$MUNINN_PG_DIR" -U postgres muninn
	export MUNINN_PG_URL="postgres:///muninn?host=$MUNINN_PG_DIR&user=postgres"
	echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on $MUNINN_PG_DIR (MUNINN_PG_URL set)"
}

muninn_pg_stop() {
	if [ -n "${MUNINN_PG_DIR:-}" ] && [ -d "$MUNINN_PG_DIR" ]; then
		if [ -f "$MUNINN_PG_DIR/data/postmaster.pid" ]; then
			muninn_pg_as "$MUNINN_PG_BIN/pg_ctl" -D "$MUNINN_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
		fi
		rm -rf "$MUNINN_PG_DIR"
	fi
}

muninn_pg_start
