"""USB vendor/product ids: how a peripheral is recognised on the bus, as configured."""

from __future__ import annotations

import re
from dataclasses import dataclass

_MAX_ID = 0xFFFF
_ID = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$")


@dataclass(frozen=True, order=True)
class UsbId:
    """A vendor and product id pair, written ``vvvv:pppp`` in hex as ``lsusb`` prints it."""

    vendor_id: int
    product_id: int

    def __post_init__(self) -> None:
        for name, value in (("vendor_id", self.vendor_id), ("product_id", self.product_id)):
            if not 0 <= value <= _MAX_ID:
                msg = f"{name} {value:#x} is not a 16-bit USB id"
                raise ValueError(msg)

    @classmethod
    def parse(cls, text: str) -> UsbId:
        """``"1a86:7584"`` → UsbId; a clear ValueError for anything else."""
        match = _ID.match(text.strip())
        if match is None:
            msg = f"USB id {text!r} is not vendor:product in hex, e.g. 1a86:7584 (see lsusb)"
            raise ValueError(msg)
        return cls(int(match.group(1), 16), int(match.group(2), 16))

    def __str__(self) -> str:
        return f"{self.vendor_id:04x}:{self.product_id:04x}"
