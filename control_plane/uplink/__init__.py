"""The ingest's own MQTT 5 connection, lean enough for every record of the fleet.

``connection`` says why the ingest does not use paho-mqtt like the rest of termfleet.
"""

from .connection import UplinkConnection, connect

__all__ = ["UplinkConnection", "connect"]
