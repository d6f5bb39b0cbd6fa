"""Shared test set-up: deterministic (seeded) and offline."""

from __future__ import annotations

import os
import random
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state."""
    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _no_internet(request, monkeypatch):
    """Tests run offline: any connection to a non-loopback address fails loudly."""
    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (
            host.startswith("127.") or host in ("localhost", "::1") or sock.family == socket.AF_UNIX
        ):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield


@pytest.fixture(scope="session")
def dinov2():
    """The real-weight DINOv2 ViT-S/14 (fp32, eval mode), loaded once per test session."""
    from anyres_tutorial.encoder.vit import load_dinov2

    return load_dinov2()


def to_installed_transformers_names(sd, ref_keys):
    """4.x names (attention.attention.query, ...) -> 5.x (attention.q_proj, ...) if ref_keys has them."""
    if "encoder.layer.0.attention.q_proj.weight" not in ref_keys:
        return dict(sd)
    swaps = {
        "attention.attention.query": "attention.q_proj",
        "attention.attention.key": "attention.k_proj",
        "attention.attention.value": "attention.v_proj",
        "attention.output.dense": "attention.o_proj",
    }
    out = {}
    for k, v in sd.items():
        for a, b in swaps.items():
            k = k.replace(a, b)
        out[k] = v
    return out


def refused(error, match, fn, *args, within: float = 30.0, **kwargs):
    """``fn(*args, **kwargs)`` raises ``error`` matching ``match`` within ``within`` seconds (before any long
    work starts)."""
    import time

    start = time.perf_counter()
    with pytest.raises(error, match=match):
        fn(*args, **kwargs)
    assert time.perf_counter() - start < within, "the error came only after long work"
