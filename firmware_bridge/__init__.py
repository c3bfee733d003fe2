"""The terminals' USB peripherals: review pad, ID-card reader, receipt printer and the rest.

Each driver is a pure frame codec (``codecs``) over a thin pyusb transport (``transport``); the
bridge (``bridge``) keeps the terminal's peripherals found and asked; a simulated USB bus
(``simulated``) runs the same drivers in tests and in the demo's simulated terminals.
docs/peripherals.md tells the whole story.
"""
