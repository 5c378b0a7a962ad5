#!/usr/bin/env bash
# Start a throwaway MariaDB for the gwsms MySQL tests.
#
#   eval "$(bash .ci/mariadb.sh)"          # start; exports GWSMS_TEST_MYSQL_URL
#   bash .ci/mariadb.sh stop "$GWSMS_TEST_MYSQL_DIR"   # stop and delete it
#
# Installs nothing (.ci/run apt-installs mariadb-server).  The server runs as
# the current user (root in CI) on 127.0.0.1 with an OS-chosen free port, its
# own datadir, socket and pid file under a temp directory.  Only the export
# lines go to stdout; progress and errors go to stderr.  The user may create
# and drop any database named gwsms_test* (tests use one per test case).
set -euo pipefail

log() { echo "mariadb.sh: $*" >&2; }

if [[ "${1:-}" == "stop" ]]; then
    dir="${2:-${GWSMS_TEST_MYSQL_DIR:-}}"
    [[ -n "$dir" && -d "$dir" ]] || { log "stop: no such directory '${dir}'"; exit 1; }
    if [[ -f "$dir/mariadb.pid" ]]; then
        pid="$(cat "$dir/mariadb.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
    log "stopped and removed $dir"
    exit 0
fi

first() { for c in "$@"; do if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return 0; fi; done
          for c in "$@"; do if [[ -x "/usr/sbin/$c" ]]; then echo "/usr/sbin/$c"; return 0; fi; done
          return 1; }

server="$(first mariadbd mysqld)" || { log "mariadbd/mysqld not found (apt-get install mariadb-server)"; exit 1; }
installdb="$(first mariadb-install-db mysql_install_db)" || { log "mariadb-install-db not found"; exit 1; }
client="$(first mariadb mysql)" || { log "mariadb client not found"; exit 1; }

dir="$(mktemp -d "${TMPDIR:-/tmp}/gwsms-mariadb.XXXXXX")"
mkdir -p "$dir/data" "$dir/tmp"
sock="$dir/mariadb.sock"
pidfile="$dir/mariadb.pid"

port="$(python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
)"

user="$(id -un)"
if ! "$installdb" --no-defaults --datadir="$dir/data" --user="$user" \
        --auth-root-authentication-method=normal --skip-test-db \
        >"$dir/install.log" 2>&1; then
    log "$installdb failed; see $dir/install.log:"
    tail -n 20 "$dir/install.log" >&2
    exit 1
fi

# Detached from our stdout, so $(...) around this script returns.
setsid "$server" --no-defaults --user="$user" --datadir="$dir/data" \
    --tmpdir="$dir/tmp" --socket="$sock" --pid-file="$pidfile" \
    --port="$port" --bind-address=127.0.0.1 --log-error="$dir/error.log" \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
    --skip-name-resolve --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 \
    </dev/null >/dev/null 2>&1 &

ready=""
for _ in $(seq 1 300); do   # 30 s
    if "$client" --no-defaults --socket="$sock" -uroot -e "SELECT 1" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
if [[ -z "$ready" ]]; then
    log "server did not answer within 30 s; see $dir/error.log:"
    tail -n 20 "$dir/error.log" >&2 || true
    [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    exit 1
fi

db=gwsms_test
dbuser=gwsms
dbpass="gw$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
"$client" --no-defaults --socket="$sock" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS $db CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER '$dbuser'@'127.0.0.1' IDENTIFIED BY '$dbpass';
CREATE USER '$dbuser'@'localhost' IDENTIFIED BY '$dbpass';
GRANT ALL PRIVILEGES ON \`gwsms\\_test%\`.* TO '$dbuser'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`gwsms\\_test%\`.* TO '$dbuser'@'localhost';
FLUSH PRIVILEGES;
SQL

log "MariaDB on 127.0.0.1:$port (pid $(cat "$pidfile")); stop with: bash .ci/mariadb.sh stop $dir"
echo "export GWSMS_TEST_MYSQL_URL=mysql://$dbuser:$dbpass@127.0.0.1:$port/$db"
echo "export GWSMS_TEST_MYSQL_DIR=$dir"
echo "export GWSMS_TEST_MYSQL_PIDFILE=$pidfile"
