"""The running service's parts, handed to the API, SMTP and worker layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faxgate.clock import Clock
from faxgate.config import Config
from faxgate.jobs import DocumentPipeline
from faxgate.metrics import Metrics, TrunkStatus
from faxgate.store import Store


@dataclass
class ServiceContext:
    config: Config
    store: Store
    clock: Clock
    # Components that start after the store; each is None until its layer
    # has started, and the health endpoint reports which are up.
    components: dict[str, Any] = field(default_factory=dict)
    # Trunks by name. /health and /metrics read their status() when asked.
    trunks: dict[str, TrunkStatus] = field(default_factory=dict)
    # Checks uploads before a job is queued; the worker renders with it.
    pipeline: DocumentPipeline | None = None
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.trunks)
