"""The terminals' USB peripherals: review pad, ID-card reader, receipt printer and the rest.

Each driver is a pure frame codec and a thin pyusb transport, with a simulated USB backend for
tests and the demo. The drivers land with the firmware_bridge issue; until then the agent
reports the simulated peripherals of ``edge.simulator.health``.
"""
