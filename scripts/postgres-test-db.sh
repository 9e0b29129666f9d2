#!/usr/bin/env bash
# Starts Debian's PostgreSQL cluster if needed, ensures a test role and database, and prints
# the SQLAlchemy URL the PostgreSQL tests use. Prints nothing when PostgreSQL is unavailable
# (those tests then say they were skipped).
set -u
command -v pg_lsclusters >/dev/null 2>&1 || exit 0
cluster=$(pg_lsclusters --no-header 2>/dev/null | head -n 1)
[ -n "$cluster" ] || exit 0
version=$(echo "$cluster" | awk '{print $1}')
name=$(echo "$cluster" | awk '{print $2}')
port=$(echo "$cluster" | awk '{print $3}')
pg_ctlcluster "$version" "$name" start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do
  su postgres -c "psql -p $port -tAc 'select 1'" >/dev/null 2>&1 && break
  sleep 0.5
done
su postgres -c "psql -p $port -tAc \"select 1 from pg_roles where rolname='comptoir'\"" 2>/dev/null | grep -q 1 \
  || su postgres -c "psql -p $port -c \"create role comptoir login password 'comptoir' createdb\"" >/dev/null 2>&1
su postgres -c "psql -p $port -tAc \"select 1 from pg_database where datname='comptoir_test'\"" 2>/dev/null | grep -q 1 \
  || su postgres -c "createdb -p $port -O comptoir comptoir_test" >/dev/null 2>&1
echo "postgresql+psycopg://comptoir:comptoir@127.0.0.1:$port/comptoir_test"
