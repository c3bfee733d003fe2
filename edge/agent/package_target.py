"""The work on one package target: download, verify, stage, wait for permission, install.

A ``TargetWork`` lives from the notice that names its target until a notice names another
target for its package (the manager then retires it) or the agent stops. The blocking steps
(``package_work``) run in threads; a retired work's thread may outlive it, so the manager lets
the next work on the same name wait for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from edge.content.download import DownloadError, DownloadReason
from edge.content.download_retry import BackoffLike
from edge.content.install import ContentStore
from edge.content.manifest import ContentError
from edge.content.signing import TrustedKeys
from edge.protocol import PackageKind, PackagePhase, PackageTarget

from . import package_work as steps
from .citizen_activity import CitizenActivity
from .package_plan import (
    Fit,
    Reason,
    Step,
    download_name,
    first_step,
    incompatibility,
    install_blocker,
)
from .package_report import PROGRESS_INTERVAL_S, Progress
from .package_work import FetchSettings, PackageWorkError

if TYPE_CHECKING:
    from edge.content.package import VerifiedPackage

log = logging.getLogger(__name__)

T = TypeVar("T")

TICK_S = 1.0
"""How often waiting installs look at the clock again (idle spells, install windows)."""
RETRY_AFTER_S = 60.0
"""After a download's tries in a row got nowhere (the network is down), the wait for the next."""
_PHASE_AFTER_STEP = {
    Step.DONE: PackagePhase.INSTALLED,
    Step.INCOMPATIBLE: PackagePhase.INCOMPATIBLE,
}


class FirmwareFlasher(Protocol):
    """Flashes peripherals through DFU (``firmware_bridge.dfu``); on error the old one stays."""

    def peripherals(self) -> frozenset[str]: ...
    def flash(self, peripheral: str, image: bytes) -> None: ...


@dataclasses.dataclass(frozen=True)
class ManagerTiming:
    tick_s: float = TICK_S
    retry_after_s: float = RETRY_AFTER_S
    progress_interval_s: float = PROGRESS_INTERVAL_S


@dataclasses.dataclass(frozen=True)
class Workshop:
    """What every target's work shares: the store, the keys, the settings, the clocks."""

    store: ContentStore
    root: Path
    downloads: Path
    keys: TrustedKeys
    activity: CitizenActivity
    fetch: FetchSettings
    timing: ManagerTiming
    backoff: Callable[[], BackoffLike]
    flasher: FirmwareFlasher | None
    clock: Callable[[], datetime]
    monotonic: Callable[[], float]
    moment: asyncio.Condition
    """Notified on every tick and every change of sessions or orders: waiting installs look."""

    def fit(self) -> Fit:
        flashable = None if self.flasher is None else self.flasher.peripherals()
        return Fit(has_keys=bool(self.keys), flashable=flashable)


Changed = Callable[[bool], None]
"""Told of each change of a work's progress: whether it is news (more than bytes)."""


class TargetWork:
    """One target's progress, its cancel flag and its blocking step under way."""

    def __init__(
        self,
        target: PackageTarget,
        shop: Workshop,
        changed: Changed,
        thread_ended: Callable[[], None],
    ) -> None:
        self.target = target
        self.progress = Progress(
            target=target.version,
            rollout_id=target.rollout_id,
            phase=PackagePhase.UNKNOWN,
            at=shop.clock(),
        )
        self.stop = threading.Event()
        self.retired = False
        self.task: asyncio.Task[None] | None = None
        self.thread: asyncio.Future[Any] | None = None
        self._shop = shop
        self._changed = changed
        self._thread_ended = thread_ended
        self._progress_told = 0.0

    @property
    def failed(self) -> bool:
        return self.progress.phase is PackagePhase.FAILED

    def busy(self) -> bool:
        """Whether a blocking step still runs in a thread (it may outlive the task)."""
        return self.thread is not None and not self.thread.done()

    def retire(self) -> None:
        """Stop: its download ends at the next chunk, its reports are dropped from now on."""
        self.retired = True
        self.stop.set()
        if self.task is not None:
            self.task.cancel()

    async def run(self, earlier: list[TargetWork]) -> None:
        # A retired work's thread may still write this name's file or install it: let it end.
        threads = {w.thread for w in earlier if w.thread is not None}
        if threads:
            await asyncio.wait(threads)
        try:
            await self._carry_out()
        except ContentError as error:
            if not self.stop.is_set():
                self._fail(str(error.reason), str(error))
        except OSError as error:
            log.exception("%s: the disk failed the package work", self.target.name)
            self._fail(Reason.DISK, str(error))

    async def _carry_out(self) -> None:
        shop, target = self._shop, self.target
        installed = shop.store.installed_version(target.name)
        previous = steps.previous_version(shop.root, target.name)
        step = first_step(target, installed, previous, shop.fit())
        if step in _PHASE_AFTER_STEP:
            reason = incompatibility(target, shop.fit())
            self.set(phase=_PHASE_AFTER_STEP[step], reason=reason.value if reason else "")
            self._drop_download()
            return
        if step is Step.NO_KEYS:
            msg = "the agent holds no content keys to verify packages with"
            raise PackageWorkError(Reason.NO_KEYS, msg)
        if step is Step.ROLL_BACK:
            # The previous version was verified when it was installed; it waits on disk.
            self.set(phase=PackagePhase.STAGED)
            await self._until_allowed()
            self.set(phase=PackagePhase.INSTALLING, detail="")
            if target.kind is PackageKind.FIRMWARE:  # the peripheral runs what is flashed
                kept = steps.kept_firmware_image
                image = await self._in_thread(kept, shop.root, target.name, target.version)
                await self._flash_image(image)
            await self._in_thread(steps.roll_back, shop.store, target)
            self.set(phase=PackagePhase.INSTALLED)
            return
        path = await self._download()
        try:
            package = await self._in_thread(steps.verify, path, target, shop.keys, installed)
        except ContentError:
            path.unlink(missing_ok=True)  # a refused file is never installed: fetch it anew
            raise
        self.set(phase=PackagePhase.STAGED, detail="")
        await self._until_allowed()
        self.set(phase=PackagePhase.INSTALLING, detail="")
        if target.kind is PackageKind.FIRMWARE:
            await self._flash(package)
        await self._in_thread(steps.install, shop.store, package)
        self.set(phase=PackagePhase.INSTALLED)
        self._drop_download()

    async def _download(self) -> Path:
        shop = self._shop
        backoff = shop.backoff()
        while True:
            size = self.target.artifact.size
            self.set(phase=PackagePhase.DOWNLOADING, bytes_total=size, detail="")
            try:
                return await self._in_thread(
                    steps.fetch,
                    self.target,  # read on every try: a new notice may carry a fresh URL
                    shop.downloads,
                    settings=shop.fetch,
                    backoff=backoff,
                    progress=self._progress(),
                    stop=self.stop,
                )
            except DownloadError as error:
                if error.reason is not DownloadReason.NETWORK:
                    raise
                wait_s = shop.timing.retry_after_s
                log.warning("%s: %s; trying again in %.0f s", self.target.name, error, wait_s)
                self.set(detail=f"network: {error}; trying again in {wait_s:.0f} s")
                await asyncio.sleep(wait_s)

    async def _flash(self, package: VerifiedPackage) -> None:
        await self._flash_image(await self._in_thread(steps.firmware_image, package))

    async def _flash_image(self, image: bytes) -> None:
        flasher, peripheral = self._shop.flasher, self.target.peripheral
        if flasher is None:  # first_step found it incompatible already; kept for the types
            raise PackageWorkError(Reason.NO_PERIPHERALS, "this agent cannot flash firmware")
        try:
            await self._in_thread(flasher.flash, peripheral, image)
        except ContentError:
            raise
        except Exception as error:  # any driver error: the old firmware runs on
            raise PackageWorkError(Reason.FIRMWARE_UPDATE_FAILED, str(error)) from error

    async def _until_allowed(self) -> None:
        """Return once the target's install permission allows it now; say what it waits for."""
        shop = self._shop
        async with shop.moment:
            while True:
                blocker = install_blocker(
                    self.target,
                    shop.clock(),
                    in_session=shop.activity.in_session(),
                    idle=shop.activity.idle(),
                )
                if blocker is None:
                    return
                if self.progress.detail != blocker.value:
                    self.set(detail=blocker.value)
                await shop.moment.wait()

    async def _in_thread(self, step: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run a blocking step in a thread; a cancelled task leaves it to end on its own.

        Installs are never interrupted half-way by us (the store's own promise covers crashes),
        and a download ends at its next chunk once ``stop`` is set.
        """
        future = asyncio.ensure_future(asyncio.to_thread(step, *args, **kwargs))
        future.add_done_callback(self._ended)
        self.thread = future
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.stop.set()
            raise

    def _ended(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: a retired step's error is nobody's news
        self._thread_ended()

    def set(self, **changes: object) -> None:
        """Change the progress and tell the manager; a retired work's news is dropped."""
        if self.retired:
            return
        before = self.progress
        self.progress = dataclasses.replace(before, **changes, at=self._shop.clock())  # type: ignore[arg-type]
        if self.progress.phase is not before.phase:
            log.info(
                "package %s version %s: %s %s",
                self.target.name,
                self.target.version,
                self.progress.phase.value,
                self.progress.reason or self.progress.detail,
            )
        self._changed(bool(changes.keys() - {"bytes_done", "bytes_total"}))

    def _fail(self, reason: str, detail: str) -> None:
        name, version = self.target.name, self.target.version
        log.warning("package %s version %s failed: %s (%s)", name, version, reason, detail)
        self.set(phase=PackagePhase.FAILED, reason=reason, detail=detail)

    def _progress(self) -> Callable[[int, int], None]:
        loop = asyncio.get_running_loop()
        interval = self._shop.timing.progress_interval_s

        def tell(done: int, total: int) -> None:  # in the download's thread
            now = self._shop.monotonic()
            if done == total or now - self._progress_told >= interval:
                self._progress_told = now
                report = functools.partial(self.set, bytes_done=done, bytes_total=total)
                loop.call_soon_threadsafe(report)

        return tell

    def _drop_download(self) -> None:
        (self._shop.downloads / download_name(self.target)).unlink(missing_ok=True)
