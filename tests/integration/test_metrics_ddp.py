"""Every metric in two real processes (gloo on CPU) against one process, on an uneven split."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.metric_cases import (
    BATCHES,
    CASES,
    SHARDS,
    as_dict,
    example_data,
    example_model,
    feed,
    single_process_values,
)

pytestmark = pytest.mark.integration

WORLD_SIZE = 2


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(  # a peer that dies fails the other within a minute instead of hanging it
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=60),
    )
    try:
        data, model = example_data(), example_model()
        values = {}
        for name, case in CASES.items():
            metric = feed(name, case.make(), SHARDS[rank], data, model)
            case.finish(metric)
            values[name] = as_dict(metric.compute())  # torchmetrics gathers the states of both ranks
        torch.save(values, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_every_metric_gives_the_single_process_value_on_two_processes(tmp_path: Path) -> None:
    sizes = [sum(BATCHES[i][1] - BATCHES[i][0] for i in SHARDS[rank]) for rank in range(WORLD_SIZE)]
    assert sizes == [37, 24]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # spawn, not fork: forking a test session that runs other threads can deadlock the children
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    expected = single_process_values()
    for rank in range(WORLD_SIZE):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got.keys() == expected.keys()
        for name in expected:
            assert got[name].keys() == expected[name].keys(), name
            for key in expected[name]:
                torch.testing.assert_close(
                    got[name][key],
                    expected[name][key],
                    rtol=1e-10,
                    atol=1e-10,
                    msg=f"{name}/{key} on rank {rank}",
                )
