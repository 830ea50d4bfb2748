"""Measurement cache: keys, round trips, and two processes writing at once."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from lab.measure.cache import MeasureCache, cache_key


def test_round_trip_and_key_sensitivity(tmp_path):
    cache = MeasureCache(tmp_path)
    ident = dict(config_id="abc", res=192, what="throughput", options={"batch": 16, "iters": 10},
                 env={"device_name": "cpu x", "torch": "2.14"})
    assert cache.get(**ident) is None
    cache.put({"throughput": 12.5, "nested": {"a": [1, 2]}}, **ident)
    assert cache.get(**ident) == {"throughput": 12.5, "nested": {"a": [1, 2]}}
    reordered = dict(ident, options={"iters": 10, "batch": 16}, env={"torch": "2.14", "device_name": "cpu x"})
    assert cache.get(**reordered) is not None
    for change in ({"res": 224}, {"config_id": "abd"}, {"what": "memory"}, {"options": {"batch": 8, "iters": 10}},
                   {"env": {"device_name": "cpu y", "torch": "2.14"}}):
        assert cache.get(**dict(ident, **change)) is None, change
    assert len(cache) == 1
    assert MeasureCache(tmp_path).get(**ident)["throughput"] == 12.5  # persisted


def test_get_or_compute_computes_once(tmp_path):
    cache = MeasureCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"flops": 7}

    assert cache.get_or_compute(compute, config_id="x", res=64, what="flops") == ({"flops": 7}, False)
    assert cache.get_or_compute(compute, config_id="x", res=64, what="flops") == ({"flops": 7}, True)
    assert calls == [1]


def test_bad_input_errors(tmp_path):
    cache = MeasureCache(tmp_path)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        cache.put({"x": object()}, config_id="a", res=1, what="params")
    with pytest.raises(ValueError, match="config_id"):
        cache_key(config_id=None, res=1, what="params")
    with pytest.raises(ValueError, match="res"):
        cache_key(config_id="a", res=0, what="params")


def _writer(directory: str, worker: int, n: int, start: mp.Event) -> None:
    cache = MeasureCache(directory)
    start.wait()
    for i in range(n):
        cache.put({"worker": worker, "i": i}, config_id=f"w{worker}", res=i + 1, what="params")
        cache.put({"worker": worker, "i": i}, config_id="shared", res=i + 1, what="params")  # same keys in both
        assert cache.get(config_id=f"w{worker}", res=i + 1, what="params") == {"worker": worker, "i": i}


def test_two_processes_writing_at_once(tmp_path):
    ctx = mp.get_context("fork")
    start = ctx.Event()
    n = 60
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, n, start)) for w in range(2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    cache = MeasureCache(tmp_path)
    assert len(cache) == 3 * n
    for w in range(2):
        assert all(cache.get(config_id=f"w{w}", res=i + 1, what="params")["i"] == i for i in range(n))
    assert all(cache.get(config_id="shared", res=i + 1, what="params")["worker"] in (0, 1) for i in range(n))
