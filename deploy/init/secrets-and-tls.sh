#!/bin/sh
# Service "secrets-init" of docker-compose.yml: the stack's secrets and TLS files.
#
# Runs as root in the control-plane image before anything else, at every `up`. It makes what is
# missing (never replaces what exists: every terminal holds passwords derived from the secret
# and trusts the CA), then hands each volume to the one user that reads it. No secret is ever in
# the repository, the compose file or an environment variable (docs/deploy.md).
#
# The directories are the container's; tests/test_compose_init.py runs this file with them
# pointed elsewhere.
set -eu
umask 077

SECRET_DIR=${SECRET_DIR:-/etc/termfleet}                # control planes: secret, pgpass
POSTGRES_SECRET_DIR=${POSTGRES_SECRET_DIR:-/run/secrets/postgres}
GRAFANA_SECRET_DIR=${GRAFANA_SECRET_DIR:-/run/secrets/grafana}
CA_DIR=${CA_DIR:-/var/lib/termfleet-ca}                 # the CA and its key: here only
BROKER_TLS_DIR=${BROKER_TLS_DIR:-/mosquitto/certs}      # what the broker needs, never ca.key
CONTENT_DIR=${CONTENT_DIR:-/var/lib/termfleet/content}  # the replicas' shared package store
BROKER_HOST=${TERMFLEET_BROKER_HOST:-localhost}

# The users of the images that read each volume: termfleet (Dockerfile), postgres (Debian
# image), grafana, and mosquitto (eclipse-mosquitto), which drops root before reading its key.
TERMFLEET_UID=10001
POSTGRES_UID=999
GRAFANA_UID=472
MOSQUITTO_UID=1883

# random_password FILE: a new random password in FILE unless it has one; written whole or not
# at all, so a crash never leaves half a password that a later start would keep.
random_password() {
    [ -s "$1" ] && return 0
    python -c 'import secrets; print(secrets.token_urlsafe(32))' >"$1.new"
    mv "$1.new" "$1"
    echo "made $1"
}

# The provisioning secret that every broker password derives from (docs/provisioning.md).
if [ ! -s "$SECRET_DIR/secret" ]; then
    termfleet provision secret init --file "$SECRET_DIR/secret"
fi

# PostgreSQL's password: the database takes it on its first start (POSTGRES_PASSWORD_FILE); the
# control plane reads it from a pgpass file, so the database URL holds none.
random_password "$POSTGRES_SECRET_DIR/password"
printf '*:*:*:termfleet:%s\n' "$(cat "$POSTGRES_SECRET_DIR/password")" >"$SECRET_DIR/pgpass.new"
mv "$SECRET_DIR/pgpass.new" "$SECRET_DIR/pgpass"

# Grafana's admin password (GF_SECURITY_ADMIN_PASSWORD__FILE).
random_password "$GRAFANA_SECRET_DIR/admin-password"

# The broker's private CA and server certificate, for every name clients reach it by: the
# compose service name inside, the public name outside (docs/tls.md).
if [ ! -s "$CA_DIR/ca.pem" ]; then
    termfleet provision ca init --dir "$CA_DIR" --name broker --name localhost --name "$BROKER_HOST"
fi
# A certificate without the public name would make every terminal refuse the broker; say so now
# rather than at the first enrollment.
python - "$CA_DIR/server.pem" "$BROKER_HOST" <<'PY'
import sys
from pathlib import Path
from provisioning.ca import describe
names = describe(Path(sys.argv[1]))["names"]
if sys.argv[2].lower() not in [n.lower() for n in names]:
    sys.exit(f"{sys.argv[1]} names {', '.join(names)}, not TERMFLEET_BROKER_HOST={sys.argv[2]}:"
             " renew the server certificate for it (docs/deploy.md, TLS certificates)")
PY
# The broker gets the CA certificate, its certificate and its key; ca.key stays behind. Copied
# at every start, so a renewed certificate reaches the broker at its next restart.
for file in ca.pem server.pem server.key; do
    cp "$CA_DIR/$file" "$BROKER_TLS_DIR/$file.new"
    mv "$BROKER_TLS_DIR/$file.new" "$BROKER_TLS_DIR/$file"
done

chown -R "$TERMFLEET_UID:$TERMFLEET_UID" "$SECRET_DIR"
chown "$TERMFLEET_UID:$TERMFLEET_UID" "$CONTENT_DIR"
chown -R "$POSTGRES_UID:$POSTGRES_UID" "$POSTGRES_SECRET_DIR"
chown -R "$GRAFANA_UID:$GRAFANA_UID" "$GRAFANA_SECRET_DIR"
chown -R "$MOSQUITTO_UID:$MOSQUITTO_UID" "$BROKER_TLS_DIR"
chmod 700 "$SECRET_DIR" "$POSTGRES_SECRET_DIR" "$GRAFANA_SECRET_DIR" "$CA_DIR" "$BROKER_TLS_DIR"
