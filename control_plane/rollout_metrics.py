"""Rollout progress as gauges computed at scrape time from the executor's memory.

``termfleet_rollouts{phase}`` counts every rollout; ``termfleet_rollout_devices{rollout, step}``
and ``termfleet_rollout_wave{rollout}`` cover only the unfinished ones, so a rollout's series go
away once it is done: the series are bounded by the rollouts under way (a dozen steps each), not
by every rollout ever made. Per-device detail is in the API.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring import metrics as names

from .rollout_executor import RolloutExecutor
from .rollouts import DeviceStep, RolloutPhase


class RolloutCollector(Collector):
    """The three rollout gauges of the executor ``executor()`` returns (None: none yet)."""

    def __init__(self, executor: Callable[[], RolloutExecutor | None]) -> None:
        self._executor = executor

    def collect(self) -> Iterator[Metric]:
        executor = self._executor()
        rollouts = list(executor.rollouts.values()) if executor is not None else []
        phases = Counter(tracked.state.phase for tracked in rollouts)
        spec = names.ROLLOUTS
        family = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        for phase in RolloutPhase:
            family.add_metric([phase.value], phases[phase])
        yield family
        under_way = [tracked for tracked in rollouts if not tracked.final]
        spec = names.ROLLOUT_DEVICES
        devices = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        spec = names.ROLLOUT_WAVE
        waves = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        for tracked in under_way:
            steps = Counter(progress.step for progress in tracked.devices.values())
            for step in DeviceStep:
                devices.add_metric([tracked.rollout_id, step.value], steps[step])
            waves.add_metric([tracked.rollout_id], tracked.state.wave + 1)
        yield devices
        yield waves
