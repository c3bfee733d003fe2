"""One tree of errors for everything between the agent and a USB peripheral.

Each error carries ``reason``, the machine-readable cause that ends up in the heartbeat's
peripheral status (``PeripheralStatus.reason``), so a fault on a dashboard names its cause.
"""

from __future__ import annotations


class PeripheralError(Exception):
    """A peripheral could not do what was asked; ``reason`` says why in one word."""

    reason = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class PeripheralGoneError(PeripheralError):
    """The device left the bus (unplugged, powered off, reset); rediscover it before using it."""

    reason = "unplugged"


class NoAnswerError(PeripheralError):
    """The device is on the bus but did not answer within the timeout."""

    reason = "no_answer"


class StalledError(PeripheralError):
    """The device refused the request with a STALL handshake (unsupported or in an error state)."""

    reason = "stalled"


class AccessError(PeripheralError):
    """The operating system would not let us open the device (udev rules, another driver)."""

    reason = "no_access"


class FrameError(PeripheralError, ValueError):
    """Bytes from a device that are not a valid frame of its protocol (garbled, truncated).

    Every decoder in ``firmware_bridge.codecs`` raises this, and only this, for bad input.
    """

    reason = "garbled"
