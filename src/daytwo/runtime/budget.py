"""The budget of one run: steps, tokens, cost and wall time used versus the limits."""

from __future__ import annotations

from dataclasses import dataclass

from daytwo.exceptions import BudgetExceeded
from daytwo.runtime.spec import Budgets

__all__ = ["BudgetMeter"]


@dataclass
class BudgetMeter:
    """Counts use; :meth:`check` raises BudgetExceeded naming the limit that was passed."""

    limits: Budgets
    started_at: float
    steps: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    def elapsed_s(self, now: float) -> float:
        """Wall time since the run started."""
        return max(0.0, now - self.started_at)

    def remaining_ms(self, now: float) -> float:
        """Wall time left, in milliseconds."""
        return max(0.0, (self.limits.max_wall_s - self.elapsed_s(now)) * 1000)

    def remaining_cost(self) -> float:
        """Cost left, in USD."""
        return max(0.0, self.limits.max_cost_usd - self.cost_usd)

    def add(self, *, tokens: int = 0, cost_usd: float = 0.0) -> None:
        """Count one more step's usage."""
        self.tokens += tokens
        self.cost_usd += cost_usd

    def check(self, now: float, *, before_step: bool = False) -> None:
        """Raise BudgetExceeded when a limit is passed (``before_step`` counts the next step)."""
        lim = self.limits
        steps = self.steps + (1 if before_step else 0)
        if steps > lim.max_steps:
            raise BudgetExceeded(
                f"step budget exceeded: step {steps} > max_steps {lim.max_steps}",
                hint="raise budgets.max_steps in the agent spec",
                limit="max_steps",
            )
        if self.tokens > lim.max_tokens:
            raise BudgetExceeded(
                f"token budget exceeded: {self.tokens} > max_tokens {lim.max_tokens}",
                hint="raise budgets.max_tokens or shorten prompts",
                limit="max_tokens",
            )
        if self.cost_usd > lim.max_cost_usd:
            raise BudgetExceeded(
                f"cost budget exceeded: ${self.cost_usd:.4f} > max_cost_usd {lim.max_cost_usd}",
                hint="raise budgets.max_cost_usd or use cheaper tools/models",
                limit="max_cost_usd",
            )
        if self.elapsed_s(now) > lim.max_wall_s:
            raise BudgetExceeded(
                f"wall-time budget exceeded: {self.elapsed_s(now):.1f} s > max_wall_s "
                f"{lim.max_wall_s}",
                hint="raise budgets.max_wall_s",
                limit="max_wall_s",
            )
