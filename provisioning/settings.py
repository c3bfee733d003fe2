"""What provisioning needs to run beside the control plane: the secret and the broker's faces."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge.mqtt import BrokerAddress
from edge.protocol import BrokerEndpoint

from .credentials import broker_password, load_secret


@dataclass(frozen=True)
class ProvisioningSettings:
    secret: bytes = field(repr=False)
    broker: BrokerAddress
    """Where the control plane reaches the broker; its logins come from the secret."""
    public_broker: BrokerEndpoint
    """Where terminals reach it, told to each at enrollment (may differ: NAT, TLS, a name)."""
    dynsec_file: Path | None = None
    """The broker's login file, when the control plane can read it (checked after changes)."""
    content_keys: tuple[str, ...] = ()
    """Ed25519 public keys (base64) that terminals accept content signatures from."""
    initial_config: tuple[tuple[str, str], ...] = ()

    def login(self, username: str) -> BrokerAddress:
        """``broker`` with one of termfleet's own logins."""
        return self.broker.with_credentials(username, broker_password(self.secret, username))

    def password(self, username: str, generation: int = 1) -> str:
        return broker_password(self.secret, username, generation)


def provisioning_settings(
    secret_file: Path,
    broker: BrokerAddress,
    *,
    public_broker_url: str | None = None,
    dynsec_file: Path | None = None,
    content_keys: Iterable[str] = (),
) -> ProvisioningSettings:
    """From the command line's options; SecretError or ValueError say what is wrong.

    ``content_keys`` (base64 Ed25519 public keys) go to every terminal that enrolls, so that it
    accepts the packages signed with their private keys.
    """
    public = BrokerAddress.from_url(public_broker_url) if public_broker_url else broker
    return ProvisioningSettings(
        secret=load_secret(secret_file),
        broker=broker.with_credentials(None, None),
        public_broker=BrokerEndpoint(host=public.host, port=public.port, tls=public.tls),
        dynsec_file=dynsec_file,
        content_keys=tuple(sorted(content_keys)),
    )
