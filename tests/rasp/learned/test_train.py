"""Training: the authors' temperature schedule, the same run for the same seed, a resumed
run equal to an uninterrupted one, a finished run read back as the same program, and the
training step: its noise drawn in one call equals one call per choice, the compiled step
equals the uncompiled one, and a step that cannot compile runs uncompiled."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from rasp.learned import tasks, train
from rasp.learned.model import ProgramModel, Sampler
from rasp.learned.program import hard_predictions, to_program
from rasp.learned.train import LearnSettings, TrainStep, learn, sequence_loss, train_epoch
from workbench.errors import CheckpointError, InputError

SMALL = {"n_layers": 1, "cat_heads": 1, "num_heads": 1, "cat_mlps": 1, "num_mlps": 1}


@pytest.fixture(scope="module")
def data() -> tasks.Dataset:
    return tasks.load("hist", size=600, seed=0)


def settings(**changes: object) -> LearnSettings:
    return LearnSettings(
        **{"task": "hist", "size": 600, "epochs": 3, "batch_size": 128, **SMALL, **changes}
    )  # type: ignore[arg-type]


def test_temperature_schedule_is_the_authors() -> None:
    """Per epoch geometric from 3 to 0.01; within an epoch geometric to the next epoch's;
    the last epoch constant (run.py's run_training with smooth_temps)."""
    s = LearnSettings(task="hist", epochs=4)
    temps = s.temperatures(3)
    per_epoch = np.geomspace(3.0, 0.01, 4)
    assert temps.shape == (12,)
    np.testing.assert_allclose(temps[:3], np.geomspace(per_epoch[0], per_epoch[1], 3))
    np.testing.assert_allclose(temps[9:], [0.01] * 3)
    assert temps[0] == 3.0 and all(np.diff(temps) <= 0)


def test_same_seed_same_program(data: tasks.Dataset) -> None:
    torch.set_num_threads(1)
    a = learn(settings(), progress=False, data=data)
    b = learn(settings(), progress=False, data=data)
    c = learn(settings(seed=1), progress=False, data=data)
    for name, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[name], value, rtol=0, atol=0)
    assert not torch.equal(a.model.W_U, c.model.W_U)
    assert a.metrics["history"] == b.metrics["history"]
    assert set(a.metrics) == {"train_accuracy", "val_accuracy", "test_accuracy", "history"}


def test_resumed_run_equals_an_uninterrupted_one(
    data: tasks.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    whole = learn(settings(), progress=False, data=data)

    class CtrlCNow:  # Ctrl-C during the first epoch
        requested = True

        def __enter__(self) -> CtrlCNow:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    with monkeypatch.context() as m:
        m.setattr(train, "DeferredInterrupt", CtrlCNow)
        with pytest.raises(KeyboardInterrupt, match="after epoch 1"):
            learn(settings(), tmp_path / "run", progress=False, data=data)
    assert (tmp_path / "run" / train.RESUME_FILE).is_file()
    with pytest.raises(CheckpointError, match="other settings"):
        learn(settings(lr=0.01), tmp_path / "run", progress=False, data=data)
    resumed = learn(settings(), tmp_path / "run", progress=False, data=data)
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0)
    assert resumed.metrics == whole.metrics
    assert not (tmp_path / "run" / train.RESUME_FILE).exists()

    model, meta = train.load(tmp_path / "run")
    assert meta["words"] == list(data.words) and meta["metrics"] == whole.metrics
    assert meta["compiled"] is False  # 12 steps: shorter than COMPILE_FROM_STEPS
    program = to_program(model)
    np.testing.assert_array_equal(
        program.run(data.test.inputs), hard_predictions(whole.model, data.test.inputs)
    )
    with pytest.raises(CheckpointError, match="already holds a finished program"):
        learn(settings(), tmp_path / "run", progress=False, data=data)
    again = learn(settings(), tmp_path / "run", progress=False, data=data, force=True)
    assert again.metrics == whole.metrics


def test_bad_settings_and_directories(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="epochs must be >= 1"):
        settings(epochs=0)
    with pytest.raises(ValueError, match="unknown task"):
        LearnSettings(task="nope")
    with pytest.raises(InputError, match="holds no finished learned program"):
        train.load(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        learn(settings(), tmp_path / "file", progress=False)


class PerChoice(Sampler):
    """The Gumbel-softmax with one `torch.rand` call per discrete choice."""

    def __init__(self, tau: float, generator: torch.Generator) -> None:
        super().__init__(tau, None, hard=False)
        self.generator = generator

    def __call__(self, logits: Tensor, dim: int = -1) -> Tensor:
        u = torch.rand(logits.shape, generator=self.generator)
        return ((logits - (-u.clamp_min(1e-20).log()).log()) / self.tau).softmax(dim)


def steps(
    data: tasks.Dataset, compiled: bool, seed: int = 0, lr: float = 5e-2, **shape: int
) -> tuple[TrainStep, list[float]]:
    """Four steps of a fresh model (three batches of 128, one of 102) at falling temperatures;
    with `lr` 0 every step's gradients are of the initial weights (SGD)."""
    torch.manual_seed(seed)
    model = ProgramModel(settings(**shape).shape(data))
    opt = torch.optim.Adam(model.parameters(), lr=lr) if lr else torch.optim.SGD(model.parameters())
    noise = torch.Generator().manual_seed(seed + 1)
    step = TrainStep(model, opt, noise, batch_size=128, compiled=compiled)
    x, y = torch.as_tensor(data.train.inputs), torch.as_tensor(data.train.targets)
    batches = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).split(128)
    return step, train_epoch(step, x, y, batches, np.geomspace(3.0, 1.0, len(batches)))


NO_FALLBACK = ("error", "torch.compile could not")  # a warning of fallback fails the test


def test_a_step_draws_the_noise_one_call_per_choice_would(data: tasks.Dataset) -> None:
    torch.set_num_threads(1)
    step, losses = steps(data, compiled=False)
    torch.manual_seed(0)
    model = ProgramModel(settings().shape(data))
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    noise = torch.Generator().manual_seed(1)
    x, y = torch.as_tensor(data.train.inputs), torch.as_tensor(data.train.targets)
    batches = torch.randperm(len(x), generator=torch.Generator().manual_seed(0)).split(128)
    assert [len(b) for b in batches] == [128, 128, 128, 102]
    for batch, tau, loss in zip(batches, np.geomspace(3.0, 1.0, 4), losses, strict=True):
        expected = sequence_loss(model(x[batch], PerChoice(float(tau), noise)), y[batch])
        opt.zero_grad(set_to_none=True)
        expected.backward()
        opt.step()
        assert float(expected.detach()) == loss
    for name, value in model.state_dict().items():
        torch.testing.assert_close(step.model.state_dict()[name], value, rtol=0, atol=0)
    assert torch.equal(noise.get_state(), step.noise.get_state())


def test_the_compiled_step_is_the_uncompiled_step(data: tasks.Dataset) -> None:
    """The same losses and gradients up to float rounding (inductor's kernels round
    differently), the same draws, at every temperature, on full and shorter batches (the last
    of 102 runs uncompiled); with the weights held (lr 0) so rounding cannot grow through
    Adam."""
    torch.set_num_threads(1)
    plain, expected = steps(data, compiled=False, lr=0.0)
    with warnings.catch_warnings():
        warnings.filterwarnings(*NO_FALLBACK)
        fast, losses = steps(data, compiled=True, lr=0.0)
    assert fast.compiled is not None
    assert losses == pytest.approx(expected, rel=1e-5)
    for (name, a), b in zip(plain.model.named_parameters(), fast.model.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert torch.equal(plain.noise.get_state(), fast.noise.get_state())


def test_a_compiled_run_repeats_itself(data: tasks.Dataset) -> None:
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.filterwarnings(*NO_FALLBACK)
        first, losses = steps(data, compiled=True)
        again, losses_again = steps(data, compiled=True)
    assert losses == losses_again
    for name, value in first.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[name], value, rtol=0, atol=0)


def failing_backend(*args: object, **kwargs: object) -> object:
    raise RuntimeError("no C++ compiler here")


def test_a_step_that_cannot_compile_runs_uncompiled_with_a_warning(
    data: tasks.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    plain = learn(settings(), progress=False, data=data, compiled=False)
    monkeypatch.setattr(train, "COMPILE_BACKEND", failing_backend)
    with pytest.warns(
        UserWarning,
        match=r"could not compile the training step \(RuntimeError: no C\+\+ compiler here\)",
    ):
        step, _ = steps(data, compiled=True)
    assert step.compiled is None
    monkeypatch.setattr(train, "COMPILE_FROM_STEPS", 12)  # settings(): 3 epochs x 4 steps
    with pytest.warns(UserWarning, match="could not compile"):  # tried by default
        fallen_back = learn(settings(), progress=False, data=data)
    for name, value in plain.model.state_dict().items():
        torch.testing.assert_close(fallen_back.model.state_dict()[name], value, rtol=0, atol=0)
    monkeypatch.setattr(train, "COMPILE_FROM_STEPS", 13)
    with warnings.catch_warnings():
        warnings.filterwarnings(*NO_FALLBACK)  # a shorter run is not compiled: nothing tried
        assert learn(settings(), progress=False, data=data).metrics == plain.metrics


def test_too_many_compiled_shapes_in_a_process_run_uncompiled_with_a_warning(
    data: tasks.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.compile keeps a limited number of compiled versions of the step per process;
    past it the step runs uncompiled, said in a warning, not silently."""
    torch.set_num_threads(1)
    monkeypatch.setattr(train, "COMPILE_BACKEND", "eager")  # traced, nothing to compile
    plain = {d: steps(data, compiled=False, d_mlp=d)[1] for d in (8, 9)}
    limit = pytest.warns(UserWarning, match="could not compile.*FailOnRecompileLimitHit")
    with torch._dynamo.config.patch(recompile_limit=1), limit:
        for d in (8, 9):  # two shapes: the second at the latest is past the limit
            step, losses = steps(data, compiled=True, d_mlp=d)
            assert losses == pytest.approx(plain[d], rel=1e-5)
    assert step.compiled is None
