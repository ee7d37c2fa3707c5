#!/usr/bin/env bash
# Start any of the local test servers (Redis, PostgreSQL, MariaDB, NATS) that
# is installed but not listening. Used by .ci/run; safe to run any time.
set -u

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # port name
  for _ in $(seq 1 60); do listening "$1" && return 0; sleep 0.5; done
  echo "start-services: $2 did not come up on port $1" >&2
  return 1
}

if ! listening 6379 && command -v redis-server >/dev/null; then
  echo "start-services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for 6379 Redis
fi

if ! listening 5432 && command -v pg_ctlcluster >/dev/null; then
  echo "start-services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  wait_for 5432 PostgreSQL
fi

if ! listening 3306 && [ -x /usr/sbin/mariadbd ]; then
  echo "start-services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for 3306 MariaDB
fi

# 16 MiB values must fit in one MariaDB packet (the server default is 16 MiB
# in total, too small for a 16 MiB value plus the statement). A runtime
# setting: reapplied on every run.
if listening 3306 && command -v mariadb >/dev/null; then
  mariadb -uroot -h 127.0.0.1 -e "SET GLOBAL max_allowed_packet=67108864" 2>/dev/null \
    || echo "start-services: could not raise MariaDB max_allowed_packet (16 MiB values will fail)" >&2
fi

if ! listening 4222 && [ -x /usr/sbin/nats-server ]; then
  echo "start-services: starting NATS"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_for 4222 NATS
fi
exit 0
