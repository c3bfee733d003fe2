"""The edge: the terminal agent, its MQTT adapter, the wire contract and the simulator."""

__version__ = "0.1.0.dev0"
