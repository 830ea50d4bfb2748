"""The environment record carries every field the rows promise."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch

from lab.measure.env import REPO_ROOT, env_fingerprint, environment

REQUIRED = {"device_name", "torch", "triton", "TRITON_INTERPRET", "git_sha", "timestamp", "threads", "precision",
            "fused", "batch"}


def test_environment_has_the_required_fields(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    env = environment(device="cpu", threads=1, precision="fp32", fused=True, batch=16)
    assert REQUIRED <= set(env)
    assert env["TRITON_INTERPRET"] == "1" and env["torch"] == torch.__version__
    assert (env["threads"], env["precision"], env["fused"], env["batch"]) == (1, "fp32", True, 16)
    monkeypatch.delenv("TRITON_INTERPRET")
    assert environment()["TRITON_INTERPRET"] is None
    assert environment()["threads"] == torch.get_num_threads()


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_sha_is_head():
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode:
        pytest.skip("not a git checkout")
    assert environment()["git_sha"] == head.stdout.strip()


def test_fingerprint_is_stable_and_has_no_timestamp():
    a, b = env_fingerprint("cpu"), env_fingerprint("cpu")
    assert a == b and "timestamp" not in a and a["device"] == "cpu"
