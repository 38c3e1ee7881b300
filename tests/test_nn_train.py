"""Tasks and the trainer: batches are well formed, a short deterministic run learns, options and errors."""

import argparse

import numpy as np
import pytest

from logscan.nn import model as model_lib
from logscan.nn import train as train_lib
from logscan.nn.tasks import CharCorpus, SelectiveCopy

TINY = dict(layers=2, width=16, expansion=1.0, mlp_ratio=2.0, seq_len=12, batch=16, eval_every=1000,
            eval_batches=2, progress=False, data_tokens=2, vocab=5)
TINY_CHARLM = {k: v for k, v in TINY.items() if k not in ("data_tokens", "vocab")}  # selective-copy's own options


def test_selective_copy_batches():
    task = SelectiveCopy(seq_len=20, data_tokens=5, vocab_size=9)
    inputs, targets, mask = task.batch(np.random.default_rng(0), 7)
    assert inputs.shape == targets.shape == mask.shape == (7, 20)
    assert (inputs[:, 15:] == SelectiveCopy.MARKER).all() and mask[:, 15:].all() and not mask[:, :15].any()
    for row_inputs, row_targets in zip(inputs, targets, strict=True):
        data = row_inputs[:15][row_inputs[:15] != SelectiveCopy.NOISE]
        np.testing.assert_array_equal(data, row_targets[15:])  # the data tokens, in order
        assert ((data >= 2) & (data < 9)).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(vocab_size=2), "vocab_size must be >= 3"),
    (dict(seq_len=5, data_tokens=3), "seq_len >= 2 \\* data_tokens"),
])
def test_selective_copy_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=f"SelectiveCopy: .*{match}"):
        SelectiveCopy(**kwargs)


def test_char_corpus_split_and_windows():
    text = "".join(chr(97 + k % 7) for k in range(200))
    corpus = CharCorpus(text, heldout_fraction=0.1)
    assert len(corpus.train) == 180 and len(corpus.heldout) == 20 and corpus.vocab_size == 7
    inputs, targets, mask = corpus.batch(np.random.default_rng(0), 3, 10)
    assert mask is None and inputs.shape == (3, 10)
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    batches = list(corpus.heldout_batches(2, 6))
    assert sum(len(b[0]) for b in batches) == 3  # (20 - 1) // 6 windows
    with pytest.raises(ValueError, match="character 'z' is not in the corpus"):
        corpus.encode("z")
    with pytest.raises(ValueError, match="the held-out part has 20 characters, fewer than seq_len"):
        list(corpus.heldout_batches(2, 50))


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_short_training_run_learns_and_is_reproducible(cell):
    first = train_lib.train(task="selective-copy", model=cell, steps=80, lr=1e-2, seed=3, **TINY)
    losses = first["losses"]
    assert len(losses) == 80
    assert np.mean(losses[-10:]) < 0.75 * np.mean(losses[:5]), (losses[:5], losses[-10:])
    again = train_lib.train(task="selective-copy", model=cell, steps=80, lr=1e-2, seed=3, **TINY)
    assert again["losses"] == losses  # same seed, same bits


def test_dropout_changes_training_reproducibly():
    plain = train_lib.train(task="selective-copy", steps=6, seed=3, **TINY)["losses"]
    dropped = train_lib.train(task="selective-copy", steps=6, seed=3, dropout=0.3, **TINY)["losses"]
    assert dropped[0] != plain[0]   # the masks change the very first forward pass
    assert train_lib.train(task="selective-copy", steps=6, seed=3, dropout=0.3, **TINY)["losses"] == dropped


def test_charlm_run_samples_and_checkpoints(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text("to be or not to be, that is the question.\n" * 20)
    checkpoint = tmp_path / "charlm.npz"
    result = train_lib.train(task="charlm", text=str(text_file), steps=5, conv=3, sample_length=30,
                             checkpoint=str(checkpoint), **TINY_CHARLM)
    assert len(result["sample"]) == 30 and set(result["sample"]) <= set(text_file.read_text())
    assert np.isfinite(result["heldout_loss"]) and "held-out loss" in train_lib.report(result)
    params, config, metadata = model_lib.load(checkpoint)
    assert config.conv_kernel == 3 and metadata["steps"] == 5 and set(metadata["chars"]) <= set(result["sample"]) | set(
        text_file.read_text())


def test_cli_arguments_reach_the_trainer(capsys):
    parser = train_lib.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--steps", "3", "--width", "8", "--layers", "1", "--seq-len", "8", "--batch", "4",
                              "--data-tokens", "2", "--vocab", "4", "--model", "minlstm", "--no-progress"])
    assert train_lib.run(args) == 0
    out = capsys.readouterr().out
    assert "task selective-copy: minlstm, 1 layers, width 8" in out and "held-out token accuracy" in out


def test_bad_options():
    with pytest.raises(ValueError, match="train: the charlm task needs --text FILE"):
        train_lib.train(task="charlm")
    with pytest.raises(ValueError, match="train: cannot read --text /nonexistent.txt"):
        train_lib.train(task="charlm", text="/nonexistent.txt")
    with pytest.raises(ValueError, match="train: steps must be >= 1"):
        train_lib.train(steps=0)
    with pytest.raises(ValueError, match=r"train: dropout must be in \[0, 1\), got 1.0"):
        train_lib.train(dropout=1.0)
    with pytest.raises(ValueError, match="device must be 'cpu' or 'gpu'"):
        train_lib.train(device="tpu", steps=1, **TINY)
    with pytest.raises(train_lib.TrainOptionError, match=r"train: SelectiveCopy: need .* seq_len >= 2 \* data_tokens"):
        train_lib.train(**dict(TINY, seq_len=3))


def test_charlm_text_too_short_is_refused_before_training(tmp_path, monkeypatch):
    text_file = tmp_path / "short.txt"
    text_file.write_text("abcdefghij" * 42)  # 420 characters: 42 held out
    monkeypatch.setattr(train_lib._Trainer, "step", lambda *args: pytest.fail("trained on a text too short"))
    with pytest.raises(train_lib.TrainOptionError, match=r"train: --text .*short.txt: CharCorpus: the held-out "
                                                         r"part has 42 characters, fewer than seq_len \+ 1 = 65"):
        train_lib.train(task="charlm", text=str(text_file), steps=5, **dict(TINY_CHARLM, seq_len=64))
    with pytest.raises(train_lib.TrainOptionError, match=r"train: --text .*short.txt: CharCorpus: the training part "
                                                         r"has 378 characters, fewer than seq_len \+ 1 = 401"):
        train_lib.train(task="charlm", text=str(text_file), steps=5, **dict(TINY_CHARLM, seq_len=400))


def test_charlm_text_without_a_newline_samples_and_checkpoints(tmp_path):
    text_file = tmp_path / "one-line.txt"
    text_file.write_text("to be or not to be, that is the question; " * 30)
    checkpoint = tmp_path / "one-line.npz"
    result = train_lib.train(task="charlm", text=str(text_file), steps=2, sample_length=12,
                             checkpoint=str(checkpoint), **TINY_CHARLM)
    assert len(result["sample"]) == 12 and set(result["sample"]) <= set(text_file.read_text())
    assert model_lib.load(checkpoint)[2]["steps"] == 2


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "logscan train: steps must be >= 1, got 0"),
    (["--task", "charlm"], "logscan train: the charlm task needs --text FILE"),
    (["--task", "charlm", "--text", "/nonexistent.txt"], "logscan train: cannot read --text /nonexistent.txt"),
    (["--seq-len", "4", "--data-tokens", "3"], "logscan train: SelectiveCopy: need"),
])
def test_bad_options_are_a_message_not_a_traceback(capsys, argv, message):
    parser = train_lib.add_arguments(argparse.ArgumentParser())
    assert train_lib.run(parser.parse_args([*argv, "--no-progress"])) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and "Traceback" not in captured.err and captured.out == ""


def test_gpu_device_without_a_usable_gpu(monkeypatch):
    """No CuPy, and a CuPy that sees no GPU, are both named errors before anything is built."""
    import importlib.util  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import types  # noqa: PLC0415

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "cupy" else object())
    with pytest.raises(train_lib.TrainOptionError, match="train: device 'gpu' needs CuPy: pip install"):
        train_lib.train(device="gpu", steps=1, **TINY)
    monkeypatch.undo()

    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: object())
    with pytest.raises(train_lib.TrainOptionError,
                       match="train: device 'gpu': CuPy finds no usable GPU .*no CUDA-capable device"):
        train_lib.train(device="gpu", steps=1, **TINY)
