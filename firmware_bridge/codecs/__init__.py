"""Pure frame codecs of the peripherals' protocols: bytes in, values, or FrameError.

Nothing here imports pyusb or does IO, so every decoder is property-tested on any bytes.
"""
