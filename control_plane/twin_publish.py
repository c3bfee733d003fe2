"""Keeping every device's retained ``DesiredConfig`` in step with the layers: issue, publish, count.

The desired config is target state, so one loop (``TwinSync.run``) brings the broker in step
with the database: it re-merges every device now and then, which also covers devices enrolled,
moved or re-labelled by any route (the API, an import, the CLI on the database), and publishes
what the broker has not been handed. A layer change does the same at once for the devices it
reaches (``TwinSync.apply``).

It publishes through the ingest's own connection (QoS 1, retained), as the ingest sends its
acknowledgements. That connection keeps no session of its own, so a message not yet
acknowledged by the broker when it breaks may be lost: after every new connection the desired
config of each device that has not reported applying it is published again. Retained messages
are latest-wins, so publishing one twice costs nothing but the bytes.

With several replicas, each runs this loop; their passes agree (the same merge of the same
rows), and a device row written by two at once keeps one of two equal results.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge import mqtt
from edge.protocol import Channel, encode
from edge.protocol import topics as wire
from edge.protocol.channels import SPECS
from monitoring import metrics as names

from . import twin_devices
from .db import DATABASE_ERRORS
from .db.twin_models import DeviceTwin
from .db.whole import whole
from .twin import LayerCounts

log = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = 60.0
"""Every device is merged again this often: enrollments, moves, labels, imports reach it so."""
TICK_S = 5.0
"""How often counts of fresh reports are refreshed and a new broker connection is noticed."""


class Publisher(Protocol):
    def publish_nowait(self, message: mqtt.Outgoing) -> None: ...


class DownlinkSource(Protocol):
    """The ingest: its connection to the broker while it has one."""

    @property
    def downlink(self) -> Publisher | None: ...


class TwinSync:
    """Issues and publishes desired config; keeps the per-layer counts for the metrics."""

    def __init__(
        self,
        source: DownlinkSource | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        reconcile_interval_s: float = RECONCILE_INTERVAL_S,
    ) -> None:
        self._source = source
        self._clock = clock
        self._interval_s = reconcile_interval_s
        self._lock = asyncio.Lock()
        self._published_on: Publisher | None = None
        self._reports_waiting = False
        self.counts: Mapping[str, LayerCounts] = {}
        self.layer_ids: tuple[str, ...] = ()

    def reported(self, _device_id: str) -> None:
        """A device's report was stored: the counts are refreshed at the next tick."""
        self._reports_waiting = True

    async def apply(self, device_ids: Collection[str] | None) -> twin_devices.Reconciled:
        """Issue and publish now for ``device_ids`` (None: every device); then recount."""
        async with self._lock:
            done = await twin_devices.reconcile(device_ids, self._clock())
            await self._publish()
            await self._recount()
            return done

    async def run(self) -> None:
        """Until cancelled: a full pass every interval; new connections and reports each tick."""
        last_full = -self._interval_s
        while True:
            try:
                if time.monotonic() - last_full >= self._interval_s:
                    await whole(self.apply(None))
                    last_full = time.monotonic()
                else:
                    await whole(self._tick())
            except DATABASE_ERRORS as exc:
                log.warning("could not bring desired config in step: %s", exc)
            await asyncio.sleep(TICK_S)

    async def _tick(self) -> None:
        async with self._lock:
            connection = self._source.downlink if self._source else None
            if connection is not None and connection is not self._published_on:
                await self._publish()
            if self._reports_waiting:
                await self._recount()

    async def _publish(self) -> int:
        """Hand the broker each desired config it has not had on the present connection."""
        connection = self._source.downlink if self._source else None
        if connection is None:
            return 0
        fresh = connection is not self._published_on
        rows = await twin_devices.to_publish(unconfirmed_too=fresh)
        sent = []
        try:
            for row in rows:
                connection.publish_nowait(_outgoing(row))
                sent.append(row)
        except mqtt.MqttError as exc:
            log.warning("desired config not published (%d left): %s", len(rows) - len(sent), exc)
            self._published_on = None
        else:
            self._published_on = connection
        await twin_devices.mark_published(sent)
        if sent:
            log.info("desired config published to %d devices", len(sent))
        return len(sent)

    async def _recount(self) -> None:
        self._reports_waiting = False
        self.counts = await twin_devices.layer_counts()
        self.layer_ids = tuple(self.counts)


def _outgoing(row: DeviceTwin) -> mqtt.Outgoing:
    spec = SPECS[Channel.DESIRED]
    topic = wire.downlink(row.device_id, Channel.DESIRED)
    return mqtt.Outgoing(topic, encode(twin_devices.desired_message(row)), spec.qos, spec.retain)


class TwinCollector(Collector):
    """Devices per config layer and state, from the counts of the last pass.

    One series per layer and state: layers are made by administrators, a few dozen at most, so
    the label stays bounded; a deleted layer's series go with it.
    """

    def __init__(self, sync: TwinSync) -> None:
        self._sync = sync

    def collect(self) -> Iterator[Metric]:
        spec = names.CONFIG_LAYER_DEVICES
        family = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        for layer_id, counts in sorted(self._sync.counts.items()):
            for state, value in twin_devices.counts_view({layer_id: counts}, layer_id).items():
                family.add_metric([layer_id, state], value)
        yield family


def install_metrics(sync: TwinSync, registry: CollectorRegistry) -> None:
    registry.register(TwinCollector(sync))
