"""The service-item catalog (事项清单) as terminals hold it, and what they can serve now. Pure.

``items`` is the file format delivered in packages of kind "catalog"; ``servable`` tells, from
the terminal's peripherals, which items it can complete, only query, or not offer at all.
"""

from .items import (
    CATALOG_FILE,
    CATALOG_FORMAT,
    Catalog,
    CatalogError,
    CatalogErrorReason,
    ServiceChannel,
    ServiceItem,
    decode_catalog,
    encode_catalog,
)
from .servable import Availability, ItemAvailability, Level, servable

__all__ = [
    "CATALOG_FILE",
    "CATALOG_FORMAT",
    "Availability",
    "Catalog",
    "CatalogError",
    "CatalogErrorReason",
    "ItemAvailability",
    "Level",
    "ServiceChannel",
    "ServiceItem",
    "decode_catalog",
    "encode_catalog",
    "servable",
]
