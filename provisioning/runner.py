"""Provisioning inside the control-plane process: the claim service and the broker reconcile.

Both change the broker's logins, so they take turns (one lock): a reconcile that read the
database just before an enrollment committed would otherwise take the new login for an unknown
one and disable it. Several control-plane replicas each run both; the claim requests are split
between them (a shared subscription), and reconciles are idempotent.
"""

from __future__ import annotations

import asyncio
import logging

from control_plane.db import DATABASE_ERRORS
from control_plane.metrics import ControlPlaneMetrics
from edge import mqtt

from . import dynsec
from .broker_admin import DynsecError, open_admin
from .claim_service import ClaimService
from .device_actions import desired_state, revoke_on_broker
from .reconcile import Report, reconcile
from .settings import ProvisioningSettings

log = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = 300.0
RETRY_S = 10.0
RETRIED_ERRORS: tuple[type[Exception], ...] = (mqtt.MqttError, DynsecError, *DATABASE_ERRORS)
"""The broker or the database away or refusing: the reconcile is tried again in ``RETRY_S``."""


class Provisioning:
    def __init__(self, settings: ProvisioningSettings, metrics: ControlPlaneMetrics) -> None:
        self.settings = settings
        self._metrics = metrics
        self._exclusive = asyncio.Lock()
        self.claims = ClaimService(
            settings,
            exclusive=self._exclusive,
            counted=lambda outcome: metrics.enrollments.labels(outcome).inc(),
        )
        self.last_report: Report | None = None
        self._reported_save_failures = 0
        self._revoking: set[asyncio.Task[None]] = set()

    def device_retired(self, device_id: str) -> None:
        """Revoke the login of a terminal just retired through the API.

        Now, rather than at the next reconcile (which would find it too, as retired_present).
        """
        task = asyncio.get_running_loop().create_task(self._revoke(device_id))
        self._revoking.add(task)
        task.add_done_callback(self._revoking.discard)

    async def _revoke(self, device_id: str) -> None:
        session = mqtt.SessionOptions(client_id=f"termfleet-retire-{device_id}"[:64])
        try:
            async with (
                self._exclusive,
                open_admin(self.settings.login(dynsec.ADMIN_USERNAME)) as admin,
                mqtt.connect(self.settings.login(dynsec.CONTROL_PLANE_USERNAME), session) as cp,
            ):
                kick_s = await revoke_on_broker(device_id, admin, cp)
            log.info("revoked the broker login of %s in %.1f ms", device_id, kick_s * 1000)
        except (mqtt.MqttError, DynsecError) as exc:
            log.warning("could not revoke %s now (reconcile will): %s", device_id, exc)

    async def run(self, *, reconcile_every_s: float = RECONCILE_INTERVAL_S) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.claims.run(), name="claims")
            tasks.create_task(self.keep_reconciled(reconcile_every_s), name="reconcile")

    async def keep_reconciled(self, every_s: float) -> None:
        """Reconcile at start and every ``every_s``; a failure is retried sooner."""
        while True:
            try:
                async with open_admin(self.settings.login(dynsec.ADMIN_USERNAME)) as admin:
                    self._reported_save_failures = 0
                    while True:
                        async with self._exclusive:
                            report = await reconcile(
                                admin,
                                await desired_state(self.settings),
                                dynsec_file=self.settings.dynsec_file,
                            )
                        self._record(report)
                        await asyncio.sleep(every_s)
            except RETRIED_ERRORS as exc:
                self._metrics.broker_reconciles.labels("failed").inc()
                log.warning("broker reconcile failed, retrying in %.0f s: %s", RETRY_S, exc)
            await asyncio.sleep(RETRY_S)

    def _record(self, report: Report) -> None:
        self.last_report = report
        self._metrics.broker_reconciles.labels("ok").inc()
        for kind, count in report.drift.items():
            self._metrics.broker_drift.labels(kind.value).set(count)
        if report.file_ok is not None:
            self._metrics.broker_file_in_step().set(1 if report.file_ok else 0)
            if not report.file_ok:
                log.error("the broker's login file is not in step: %s", report.file_problem)
        new_failures = report.save_failures - self._reported_save_failures
        if new_failures > 0:
            self._metrics.broker_save_failures.inc(new_failures)
            self._reported_save_failures = report.save_failures
