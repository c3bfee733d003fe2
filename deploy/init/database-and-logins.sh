#!/bin/sh
# Service "broker-init" of docker-compose.yml: the database's schema and the broker's first
# login file, once PostgreSQL answers and before the broker and the control planes start.
#
# Runs as root in the control-plane image at every `up`. The migrations run here, once, so the
# replicas (TERMFLEET_AUTO_MIGRATE=0) never race each other to apply them. The login file is
# written only when the broker has none: afterwards the broker owns it and rewrites it on every
# change, and the control plane's reconcile keeps a running broker in step with the database,
# the source of truth (docs/provisioning.md).
#
# The database URL, the pgpass file and the secret come from the environment
# (TERMFLEET_DATABASE_URL, PGPASSFILE, TERMFLEET_SECRET_FILE). tests/test_compose_init.py runs
# this file with DYNSEC_DIR pointed elsewhere.
set -eu
umask 077

DYNSEC_DIR=${DYNSEC_DIR:-/mosquitto/dynsec}
MOSQUITTO_UID=1883  # eclipse-mosquitto's user, which rewrites the file (and a .new beside it)

termfleet db migrate
if [ ! -s "$DYNSEC_DIR/dynamic-security.json" ]; then
    termfleet provision broker-file --out "$DYNSEC_DIR/dynamic-security.json"
fi
chown -R "$MOSQUITTO_UID:$MOSQUITTO_UID" "$DYNSEC_DIR"
chmod 700 "$DYNSEC_DIR"
