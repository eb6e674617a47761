"""The circuits API's typed boundary: the frozen `Problem` that patching and discovery take,
ACDC's typed resume state (read and written in the job store's format), and the options
parsed from text once."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import workbench
from circuits.ablation import Ablation, Replacement
from circuits.acdc import AcdcState, acdc
from circuits.graph import build_graph
from circuits.jobs import Settings
from circuits.metrics import METRICS, AnswerProb, LogitDiff, OutputDistance, TaskMetric, task_metric
from circuits.options import Distance, IgOver, Method
from circuits.problem import Problem
from workbench.errors import InputError


def tiny():
    model = workbench.build("gpt2-small-tiny", n_layers=1, seed=0)
    gen = torch.Generator().manual_seed(0)
    clean, corrupted = torch.randint(0, model.config.d_vocab, (2, 2, 5), generator=gen)
    return model, clean, corrupted


def test_a_problem_is_frozen_and_builds_the_models_graph() -> None:
    model, clean, corrupted = tiny()
    metric = LogitDiff(torch.tensor([1, 2]), torch.tensor([3, 4]))
    problem = Problem(model, clean, Replacement.of("patch", source=corrupted), metric)
    assert problem.graph == build_graph(model.config)
    assert problem.attention_mask is None and problem.memory_budget == 1 << 30
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.metric = metric  # type: ignore[misc]
    with torch.no_grad():
        distance = OutputDistance(model(clean), "kl")
    other = problem.with_metric(distance)
    assert other.metric is distance and other.graph is problem.graph
    assert other.target is problem.target and problem.metric is metric


def test_acdc_state_reads_and_writes_the_stores_json() -> None:
    # the dict the job store has held since ACDC became resumable
    stored = {"removed": ["a0.h1->logits"], "scores": {"a0.h1->logits": 0.001}, "distance": 0.2}
    state = AcdcState.from_json(json.loads(json.dumps(stored)))
    assert state == AcdcState(("a0.h1->logits",), {"a0.h1->logits": 0.001}, 0.2)
    assert state.to_json() == stored
    assert AcdcState.from_json({}) == AcdcState()  # a job that never finished a batch
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.distance = 0.0  # type: ignore[misc]


def test_acdc_reports_its_state_after_every_batch_and_resumes_from_any() -> None:
    model, clean, corrupted = tiny()
    with torch.no_grad():
        distance = OutputDistance(model(clean), "kl")
    problem = Problem(model, clean, Replacement.of("patch", source=corrupted), distance)
    states: list[AcdcState] = []
    whole = acdc(problem, threshold=0.01, batch_size=4, on_state=states.append)
    assert len(states) > 2
    assert [len(s.scores) for s in states] == sorted({len(s.scores) for s in states})
    assert dict(states[-1].scores) == whole.scores
    for state in (states[0], states[len(states) // 2]):
        assert acdc(problem, threshold=0.01, batch_size=4, state=state).edges == whole.edges


def test_settings_parse_text_once_and_store_the_same_strings() -> None:
    settings = Settings("m", "eap-ig", top_k=3, ablation="zero", metric="logit_diff")
    assert settings.method is Method.EAP_IG and settings.ablation is Ablation.ZERO
    assert settings.metric is Distance.LOGIT_DIFF and settings.ig_over is IgOver.INPUTS
    stored = json.loads(json.dumps(vars(settings)))
    assert stored["method"] == "eap-ig" and stored["ablation"] == "zero"
    assert Settings(**stored) == settings  # a stored job's settings read back
    assert f"--method={settings.method}" == "--method=eap-ig"
    with pytest.raises(InputError, match="unknown method 'magic'; choose one of: acdc, eap"):
        Settings("m", "magic")
    with pytest.raises(InputError, match="unknown ablation 'noise'; choose one of patch"):
        Settings("m", "acdc", ablation="noise")


def test_task_metrics_and_ablations_parse_with_the_valid_names() -> None:
    assert METRICS == ("logit_diff", "prob", "loss", "kl")
    answer, wrong, logits = torch.tensor([1]), torch.tensor([2]), torch.zeros(1, 3, 5)
    assert isinstance(
        task_metric("prob", answer=answer, wrong=wrong, clean_logits=logits), AnswerProb
    )
    assert TaskMetric.parse("kl") is TaskMetric.KL and Ablation.parse("mean") is Ablation.MEAN
    with pytest.raises(InputError, match="unknown metric 'acc'; choose one of logit_diff, prob"):
        task_metric("acc", answer=answer, wrong=wrong, clean_logits=logits)
    with pytest.raises(InputError, match="unknown ablation None"):
        Ablation.parse(None)
