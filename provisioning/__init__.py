"""Getting a terminal into the fleet and out of it again.

Pre-registration, claim codes, enrollment, per-terminal broker credentials, commissioning,
replacement and retirement land with the provisioning issue; the wire messages they use
(``ClaimRequest``/``ClaimResponse``) are already part of ``edge.protocol``.
"""
