"""The review pad's case for the shared driver contract suite (``tests/support/peripherals.py``)."""

from __future__ import annotations

from firmware_bridge.drivers.review_pad import REVIEW_PAD
from firmware_bridge.simulated.review_pad import VirtualReviewPad
from tests.support.peripherals import ContractCase

CONTRACT_CASE = ContractCase(id="review_pad", spec=REVIEW_PAD, make_device=VirtualReviewPad)
