"""The agent's package manager: converge to the latest content notice, and report every step.

Per target (``package_plan`` decides, ``package_target`` carries it out, ``package_work`` does
the blocking steps in threads): download in the background at any time, verify, stage, then
install only when the target's permission allows and no citizen session is under way
(``citizen_activity``). A changed target cancels the work on the old one; a target the notice
no longer names is left as installed. Work that failed stays failed until the control plane
sends a different target for its name (a new URL is enough).

``report()`` is the retained ``packages`` message; ``publish_reports`` sends it on each change
(download progress alone at most once a second) through whatever connection the agent has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from edge.aio import cancel_and_wait
from edge.content.download import part_path
from edge.content.download_retry import BackoffLike
from edge.content.install import ContentStore
from edge.content.manifest import ContentError
from edge.content.signing import TrustedKeys
from edge.protocol import ContentNotice, PackageReport, PackageTarget, Record

from . import package_work as steps
from .backoff import Backoff
from .citizen_activity import CitizenActivity
from .package_plan import download_name, same_package, usable_targets
from .package_report import Pace, Versions, package_report
from .package_target import FirmwareFlasher, ManagerTiming, TargetWork, Workshop
from .package_work import FetchSettings

log = logging.getLogger(__name__)

DEFAULT_FETCH = FetchSettings()
DEFAULT_TIMING = ManagerTiming()
PACKAGE_FILE_SUFFIXES = frozenset({".tfpkg", ".part"})


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class PackageManager:
    """Downloads, verifies, stages, installs and reports the packages the notices name."""

    def __init__(  # noqa: PLR0913 - the manager's collaborators, each injected for tests
        self,
        content_root: Path,
        downloads: Path,
        keys: TrustedKeys,
        activity: CitizenActivity,
        *,
        fetch: FetchSettings = DEFAULT_FETCH,
        timing: ManagerTiming = DEFAULT_TIMING,
        backoff: Callable[[], BackoffLike] = Backoff,
        flasher: FirmwareFlasher | None = None,
        clock: Callable[[], datetime] = _wall_clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = ContentStore(content_root)
        self._activity = activity
        self._shop = Workshop(
            store=self.store,
            root=content_root,
            downloads=downloads,
            keys=keys,
            activity=activity,
            fetch=fetch,
            timing=timing,
            backoff=backoff,
            flasher=flasher,
            clock=clock,
            monotonic=monotonic,
            moment=asyncio.Condition(),
        )
        self._works: dict[str, TargetWork] = {}
        self._retired: list[TargetWork] = []
        """Retired works whose thread may still run (it decides which files are in use)."""
        self._pending: ContentNotice | None = None
        self._poke = asyncio.Event()
        self._changed = asyncio.Event()
        self._news = asyncio.Event()
        """Set with ``_changed`` for a change beyond download progress, reported at once."""
        self._sweep_due = False

    # --- what the agent calls -------------------------------------------------------------

    def notice(self, notice: ContentNotice) -> None:
        """Take the latest content notice; the work follows it in ``run``."""
        self._pending = notice
        self._poke.set()

    def observe(self, record: Record) -> None:
        """A record the agent sends: a session that started or ended changes what may install."""
        if self._activity.observe(record):
            self._poke.set()

    def report(self) -> PackageReport:
        root = self._shop.root
        names = set(steps.installed_names(root)) | set(self._works)
        versions = {
            name: Versions(self.store.installed_version(name), steps.previous_version(root, name))
            for name in names
        }
        progress = {name: work.progress for name, work in self._works.items()}
        return package_report(versions, progress, self._shop.clock())

    async def publish_reports(self, publish: Callable[[PackageReport], Awaitable[object]]) -> None:
        """Publish the report now and after every change; until cancelled.

        A new phase, reason or detail goes out at once; download progress alone at most once a
        second (``Pace``), however fast the bytes come.
        """
        pace = Pace()
        monotonic = self._shop.monotonic
        while True:
            self._news.clear()
            self._changed.clear()
            await publish(self.report())
            pace.published(monotonic())
            await self._changed.wait()
            if not self._news.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._news.wait(), pace.wait_s(monotonic()))

    async def run(self) -> None:
        """Recover the store, then follow notices and the clock until cancelled."""
        try:
            removed = await asyncio.to_thread(self.store.recover)
        except (OSError, ContentError) as exc:
            # A broken disk must not silence the terminal: each target's work meets the same
            # fault and reports it, so the rollout sees why instead of a device gone quiet.
            log.error("content store: cannot recover %s: %s", self._shop.root, exc)  # noqa: TRY400 - the cause is in the message; no traceback for a disk fault
        else:
            if removed:
                log.info(
                    "content store: removed %d leftovers of an interrupted install", len(removed)
                )
        self._shop.downloads.mkdir(parents=True, exist_ok=True)
        self._changed.set()
        moment = self._shop.moment
        try:
            while True:
                self._poke.clear()
                if self._pending is not None:
                    notice, self._pending = self._pending, None
                    self._follow(notice)
                    self._sweep_due = True
                if self._sweep_due:
                    self._sweep_due = False
                    self._sweep_downloads()
                async with moment:
                    moment.notify_all()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), self._shop.timing.tick_s)
        finally:
            works = [*self._works.values(), *self._retired]
            for work in works:
                work.stop.set()
            await cancel_and_wait(w.task for w in works if w.task is not None)

    # --- following notices ----------------------------------------------------------------

    def _follow(self, notice: ContentNotice) -> None:
        targets = usable_targets(notice)
        for name, work in list(self._works.items()):
            new = targets.get(name)
            # A failed work is tried again only for a target that differs (a new URL, say).
            carry_on = new is not None and same_package(work.target, new)
            if new is not None and carry_on and not (work.failed and new != work.target):
                self._update_orders(work, new)
                continue
            self._retire(name)
        for name, target in targets.items():
            if name not in self._works:
                self._start(target)

    def _update_orders(self, work: TargetWork, target: PackageTarget) -> None:
        """Same package, new orders (install permission, URL, rollout): the work carries on."""
        work.target = target
        if work.progress.rollout_id != target.rollout_id:
            work.set(rollout_id=target.rollout_id)

    def _start(self, target: PackageTarget) -> None:
        work = TargetWork(target, self._shop, self._work_changed, self._thread_ended)
        earlier = [w for w in self._retired if w.target.name == target.name and w.busy()]
        self._works[target.name] = work
        work.task = asyncio.create_task(work.run(earlier), name=f"package-{target.name}")

    def _retire(self, name: str) -> None:
        work = self._works.pop(name)
        work.retire()
        self._retired = [w for w in self._retired if w.busy()] + [work]
        self._work_changed(news=True)

    def _work_changed(self, news: bool) -> None:  # noqa: FBT001 - the Changed callback's shape
        if news:
            self._news.set()
        self._changed.set()

    def _thread_ended(self) -> None:
        self._sweep_due = True  # its file may be free to delete now
        self._poke.set()

    def _sweep_downloads(self) -> None:
        """Delete package files no target names, except those a thread still writes."""
        self._retired = [w for w in self._retired if w.busy()]
        kept: set[str] = set()
        for work in [*self._works.values(), *self._retired]:
            name = download_name(work.target)
            kept |= {name, part_path(Path(name)).name}
        for entry in self._shop.downloads.iterdir():
            if entry.suffix in PACKAGE_FILE_SUFFIXES and entry.name not in kept and entry.is_file():
                log.info("removing %s: no target names it", entry.name)
                entry.unlink(missing_ok=True)
