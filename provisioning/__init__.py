"""Getting a terminal into the fleet: pre-registration, claim codes, enrollment, per-terminal
broker credentials, commissioning, replacement and retirement.

The enrollment flows land with the provisioning issue; the wire messages they use
(``ClaimRequest``/``ClaimResponse``) are already part of ``edge.protocol``.
"""
