"""The rollouts API: create, list, show, and the operator's actions."""

from __future__ import annotations

from aiohttp import web

from control_plane.rollout_executor import RolloutExecutor

EXECUTOR = web.AppKey("rollouts", RolloutExecutor)
