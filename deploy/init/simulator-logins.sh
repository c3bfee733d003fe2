#!/bin/sh
# Service "simulator-logins" of docker-compose.yml, in the "simulator" profile only: records
# the demo district's simulated terminals as enrolled in the database and gives each its broker
# login at once, so the simulator's terminals log in as themselves (docs/deploy.md).
#
# The broker is running by now and owns its login file, so the file demo_logins insists on
# writing goes to a scratch path; the database is the source of truth, and reconcile brings the
# live broker in step with it through the admin login.
set -eu

python -m provisioning.demo_logins --district "${TERMFLEET_DISTRICT:-conghua}" \
    --broker-file "$(mktemp -d)/dynamic-security.json"
termfleet provision reconcile
