"""A runner that is not one: the API's collaborators in-process, without BentoML, torch or a server.

``FakeRunner`` answers the calls the API makes (``ping``, ``status``, ``infer``, ``reload``) the way the
runner service does, with a tiny model's metadata; ``deps`` builds the handlers' collaborators around it.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from nailseg.api.deps import Deps
from nailseg.api.schemas import RunnerStatus
from nailseg.config import Settings
from nailseg.model.spec import Architecture, Preprocessing, StoredModelInfo

MODEL_TAG = "unet:fake"
SIZE = (32, 32)


def stored_model(size: tuple[int, int] = SIZE) -> StoredModelInfo:
    return StoredModelInfo(architecture=Architecture(base_channels=4, depth=2), architecture_source="checkpoint",
                           model_variant="fake", parameters=1, preprocessing=Preprocessing(image_size=size),
                           preprocessing_source="checkpoint", source_file="/models/fake.pth", source_sha256="0" * 64)


class FakeRunner:
    """The runner's API, in-process: ``infer`` calls nail every pixel brighter than mid-grey. ``fail`` (an
    exception) is raised by the next ``failures`` calls; ``calls`` records each call's name."""

    def __init__(self, size: tuple[int, int] = SIZE, model_loaded: bool = True):
        self.size, self.model_loaded = size, model_loaded
        self.calls: list[str] = []
        self.fail: BaseException | None = None
        self.failures = 0
        self.to_async = SimpleNamespace(ping=self.ping, status=self.status, infer=self.infer, reload=self.reload)

    def _maybe_fail(self, name: str) -> None:
        self.calls.append(name)
        if self.failures > 0 and self.fail is not None:
            self.failures -= 1
            raise self.fail

    async def ping(self) -> bool:
        self._maybe_fail("ping")
        return True

    async def status(self, refresh: bool = False) -> dict:
        self._maybe_fail("status")
        model = stored_model(self.size) if self.model_loaded else None
        return RunnerStatus(model_loaded=self.model_loaded, model_tag=MODEL_TAG if model else None, model=model,
                            device="cpu", precision="fp32", backend="fake", gpu_available=False,
                            pools_ready=True).model_dump()

    async def infer(self, images: np.ndarray) -> np.ndarray:
        self._maybe_fail("infer")
        return (images.mean(axis=3) / 255.0 > 0.5).astype(np.float32)

    async def reload(self, force_reload: bool = False, warm_up: bool = True) -> dict:
        self._maybe_fail("reload")
        return await self.status()


def deps(runner: FakeRunner | None = None, settings: Settings | None = None) -> Deps:
    """The handlers' collaborators around ``runner`` (a FakeRunner by default), with default settings."""
    return Deps.build(settings or Settings(), runner or FakeRunner())
