"""One driver per peripheral kind: a codec from ``codecs`` over a ``UsbTransport``."""
