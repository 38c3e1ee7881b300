"""Data-parallel training of a MinGRU model in two processes (torch.distributed, gloo, DistributedDataParallel):
the gradients DDP averages equal those of one process on the whole global batch, step after step.

The test starts this file twice as a script (ranks 0 and 1, on 127.0.0.1 only); each rank trains on its half of
every global batch and saves its gradients and final parameters for the test to compare.
"""

import datetime
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the torch adapter needs torch (the torch extra)")

from logscan.torch import MinGRU  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORLD_SIZE = 2
STEPS = 3
BATCH, SEQ_LEN, VOCAB, WIDTH = 8, 12, 7, 6  # BATCH: the global batch, split evenly between the ranks


class TinyModel(torch.nn.Module):
    """Embedding, two residual MinGRU blocks, a linear head; float64."""

    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, WIDTH, dtype=torch.float64)
        self.rnns = torch.nn.ModuleList(MinGRU(WIDTH, 2 * WIDTH, dtype=torch.float64) for _ in range(2))
        self.outs = torch.nn.ModuleList(torch.nn.Linear(2 * WIDTH, WIDTH, dtype=torch.float64) for _ in range(2))
        self.head = torch.nn.Linear(WIDTH, VOCAB, dtype=torch.float64)

    def forward(self, tokens):
        x = self.embedding(tokens)
        for rnn, out in zip(self.rnns, self.outs, strict=True):
            x = x + out(rnn(x))
        return self.head(x)


def new_model():
    torch.manual_seed(0)
    return TinyModel()


def global_batch(step):
    generator = torch.Generator().manual_seed(100 + step)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ_LEN), generator=generator)
    return tokens, torch.roll(tokens, 1, dims=1)  # learn to repeat the previous token


def train(model, parameters_of, shard):
    """``STEPS`` steps of SGD on rows ``shard`` of each global batch: the gradients of each step, the parameters."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    grads = []
    for step in range(STEPS):
        tokens, targets = global_batch(step)
        logits = model(tokens[shard])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets[shard].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        grads.append({name: p.grad.clone() for name, p in parameters_of(model)})
        optimizer.step()
    return grads, {name: p.detach().clone() for name, p in parameters_of(model)}


def worker(rank, port, out_dir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE,
                            timeout=datetime.timedelta(seconds=60))
    try:
        model = DistributedDataParallel(new_model())
        rows = BATCH // WORLD_SIZE
        grads, params = train(model, lambda m: m.module.named_parameters(), slice(rank * rows, (rank + 1) * rows))
        torch.save({"grads": grads, "params": params}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_gradients_equal_one_process_on_the_global_batch(tmp_path):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    ranks = [subprocess.Popen([sys.executable, __file__, str(rank), str(port), str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(WORLD_SIZE)]
    outputs = []
    try:
        for process in ranks:
            outputs.append(process.communicate(timeout=120)[0])
    finally:
        for process in ranks:
            if process.poll() is None:
                process.kill()
    for rank, (process, output) in enumerate(zip(ranks, outputs, strict=True)):
        assert process.returncode == 0, f"rank {rank}:\n{output}"

    expected_grads, expected_params = train(new_model(), lambda m: m.named_parameters(), slice(None))
    for rank in range(WORLD_SIZE):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        for step in range(STEPS):
            for name, grad in expected_grads[step].items():
                torch.testing.assert_close(result["grads"][step][name], grad, rtol=1e-6, atol=1e-9,
                                           msg=lambda m, name=name, step=step: f"step {step}, {name}: {m}")
        for name, param in expected_params.items():
            torch.testing.assert_close(result["params"][name], param, rtol=1e-6, atol=1e-9)
    # every rank saw only its half of each batch: the agreement is DDP's averaging, not identical inputs
    assert not torch.equal(global_batch(0)[0][:BATCH // 2], global_batch(0)[0][BATCH // 2:])


if __name__ == "__main__":
    worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
