"""Training: the authors' temperature schedule, the same run for the same seed, a resumed
run equal to an uninterrupted one, and a finished run read back as the same program."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rasp.learned import tasks, train
from rasp.learned.program import hard_predictions, to_program
from rasp.learned.train import LearnSettings, learn
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
