"""Continuous evaluation: golden sets, synthetic cases, metrics, judges and gates.

The eval machinery talks to agents through :class:`AgentRunner`; bindings to
the durable runtime and to bare models are in :mod:`daytwo.evals.bindings`.
"""

from daytwo.evals.cases import Case, ExpectedToolCall, parse_cases_jsonl
from daytwo.evals.datasets import GoldenSets, SetDiff, StoredCase, VersionInfo
from daytwo.evals.gates import GateResult, WatchResult, gate, watch
from daytwo.evals.judges import (
    JudgeSpec,
    PairwiseJudge,
    PairwiseVerdict,
    PointwiseJudge,
    PointwiseVerdict,
    summarize_pairwise,
)
from daytwo.evals.runner import AgentResult, AgentRunner, CallableRunner, ModelAgentRunner
from daytwo.evals.runs import EvalRuns, RunInfo
from daytwo.evals.scoring import MetricValue, Scorer
from daytwo.evals.stats import paired_bootstrap, window_change

__all__ = [
    "AgentResult",
    "AgentRunner",
    "CallableRunner",
    "Case",
    "EvalRuns",
    "ExpectedToolCall",
    "GateResult",
    "GoldenSets",
    "JudgeSpec",
    "MetricValue",
    "ModelAgentRunner",
    "PairwiseJudge",
    "PairwiseVerdict",
    "PointwiseJudge",
    "PointwiseVerdict",
    "RunInfo",
    "Scorer",
    "SetDiff",
    "StoredCase",
    "VersionInfo",
    "WatchResult",
    "gate",
    "paired_bootstrap",
    "parse_cases_jsonl",
    "summarize_pairwise",
    "watch",
    "window_change",
]
