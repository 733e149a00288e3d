"""A cap on the share of a run's wall time that an evaluation callback spends during `fit`."""

from __future__ import annotations

import time
from collections.abc import Callable

from lightning_dgm.errors import ConfigError


class TimeShare:
    """Keeps a callback's evaluations within `share` of the run's wall time so far, evaluations
    included: an evaluation that is due runs only if, with its expected cost t, the time spent
    evaluating stays within the share, (spent + t) / (elapsed + t) <= share; otherwise it waits for
    a later due epoch. The expected cost is the last evaluation's; before the first, the caller times
    its first batch, multiplies it out and stops there if that is over the allowance (`over`).

    Time the caller leaves out (`exclude`: the real images' features, extracted once and cached on
    disk) counts neither as evaluation nor as the run's. `clock` is a monotonic clock in seconds
    (tests pass their own).
    """

    def __init__(self, share: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < share < 1:
            raise ConfigError(f"max_time_share must be between 0 and 1 (0.1: a tenth of the run), got {share}")
        self.share, self.clock = share, clock
        self.start()

    def start(self) -> None:
        """At the start of a fit: nothing spent, nothing known of the cost."""
        self.started, self.spent, self.excluded, self.expected = self.clock(), 0.0, 0.0, None

    def allowance(self) -> float:
        """The seconds the next evaluation may take."""
        elapsed = self.clock() - self.started - self.excluded
        return (self.share * elapsed - self.spent) / (1 - self.share)

    def due(self) -> bool:
        """Whether an evaluation expected to cost what the last one cost fits now (the first always
        starts: its first batch tells)."""
        return self.expected is None or self.expected <= self.allowance()

    def over(self, first_batch_seconds: float, batches: int, allowance: float) -> bool:
        """After the first batch of an evaluation whose cost is not known yet: whether all `batches`
        at this pace exceed `allowance`; if so the pace is remembered as the expected cost."""
        projected = first_batch_seconds * batches
        if projected > allowance:
            self.expected = projected
            return True
        return False

    def exclude(self, seconds: float) -> None:
        """Leaves `seconds` of the run's time out of the account."""
        self.excluded += seconds

    def spend(self, seconds: float, completed: bool) -> None:
        """Counts an evaluation's `seconds`; a completed one sets the expected cost of the next."""
        self.spent += seconds
        if completed:
            self.expected = seconds
