"""What every handler is given: its collaborators (``Deps``), and the request's id and start (``Call``).

``Deps`` is built once, in the API service's ``__init__`` (service.py), and handed to every app and
handler when they are built (nailseg/api/endpoints.py): no handler looks the service up.
"""

from __future__ import annotations

from dataclasses import dataclass

from nailseg.api.request_trace import RecentRequests
from nailseg.api.runner_client import RunnerClient
from nailseg.api.schemas import ModelInfoBrief
from nailseg.api.segmenting import Segmenter
from nailseg.config import Settings
from nailseg.errors import ApiError


@dataclass(frozen=True)
class Call:
    """One request, as a handler needs it: its id (X-Request-ID) and when the guard took it (perf_counter)."""

    request_id: str
    started: float


@dataclass
class Deps:
    settings: Settings
    runner_client: RunnerClient
    segmenter: Segmenter
    recent_requests: RecentRequests | None = None  # GET /debug/requests (development.enable_debug_endpoints)

    @classmethod
    def build(cls, settings: Settings, runner, recent_requests: RecentRequests | None = None) -> Deps:
        """The collaborators of an API process whose runner is ``runner`` (BentoML's dependency, or a fake)."""
        client = RunnerClient(runner, settings.health)
        return cls(settings, client, Segmenter(settings, client), recent_requests)

    @property
    def brief(self) -> ModelInfoBrief | None:
        return self.segmenter.brief

    async def ready(self) -> bool:
        """BentoML's /readyz: False at once while the runner is unreachable (then BentoML asks the runner's)."""
        watch = self.runner_client.watch
        watch.start()
        return watch.up or await watch.probe_once()

    def alive(self) -> bool:
        """BentoML's /livez: False once the runner has been unreachable for health.liveness_runner_timeout_s."""
        self.runner_client.watch.start()
        return self.runner_client.watch.alive

    async def model_ready(self) -> bool:
        """Ready, and the runner reports a model loaded (the protocol's readiness)."""
        if not await self.ready():
            return False
        try:
            await self.runner_client.model_status()
        except ApiError:
            return False
        return True
