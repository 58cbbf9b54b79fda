"""The audio backends: one interface, parity with eager PyTorch, auto choice, CLI round trip."""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from clap_rt.engine import BACKENDS, ENGINES, create_engine, engine_class
from clap_rt.engine.graph import example_input
from clap_rt.errors import UserError

HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CLAP_RT_CACHE", str(tmp_path_factory.getbasetemp() / "clap_rt_cache"))


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    from clap_rt.checkpoints import load_model
    return load_model(tiny_model_dir)[0]


def public_methods(cls) -> dict[str, inspect.Signature]:
    return {n: inspect.signature(f) for n, f in inspect.getmembers(cls, inspect.isfunction)
            if not n.startswith("_")}


def test_every_backend_has_the_same_interface():
    assert set(BACKENDS) == {"auto", *ENGINES}
    ref = public_methods(engine_class("torch"))
    assert set(ref) == {"embed", "close"}
    for name in ENGINES:
        cls = engine_class(name)             # importable without onnxruntime / CUDA / TensorRT
        assert cls.name == name
        assert public_methods(cls) == ref, f"{name}: {public_methods(cls)} != torch's {ref}"
        params = list(inspect.signature(cls.__init__).parameters.values())
        assert [(p.name, p.default) for p in params[:3]] == [("self", inspect.Parameter.empty),
                                                             ("model", inspect.Parameter.empty),
                                                             ("threads", None)], f"{name}: {params}"
        extra = [p for p in params[3:] if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        assert extra == [], f"{name}: backend options must be keyword-only, got {extra}"


def test_onnx_engine_matches_torch(tiny_model):
    x = example_input(tiny_model, 5).numpy()
    ref = create_engine(tiny_model, "torch").embed(x)
    onnx_engine = create_engine(tiny_model, "onnx", threads=1)
    out = np.concatenate([onnx_engine.embed(x[:1]), onnx_engine.embed(x[1:])])
    onnx_engine.close()
    cos = float((out * ref).sum(axis=1).min())
    assert out.dtype == np.float32 and cos >= 0.99999, f"min cosine {cos:.7f}, max abs {np.abs(out - ref).max():.2e}"


def test_unknown_backend_is_a_user_error(tiny_model):
    with pytest.raises(UserError) as e:
        create_engine(tiny_model, "tpu")
    assert str(e.value) == "--backend: unknown backend 'tpu'; expected one of auto, torch, onnx, trt, cuda"


def test_compile_without_the_cuda_backend_is_a_user_error(tiny_model):
    with pytest.raises(UserError) as e:
        create_engine(tiny_model, "torch", compile=True)
    assert str(e.value) == "--compile: expected --backend cuda (torch.compile is used on the GPU only), got --backend torch"


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA GPU is present")
@pytest.mark.parametrize("backend, missing", [("cuda", "the cuda backend requires a CUDA build of PyTorch"),
                                              ("trt", "the trt backend requires TensorRT's Python bindings")])
def test_gpu_backends_without_gpu_say_what_is_missing(tiny_model, backend, missing):
    if backend == "trt" and __import__("importlib").util.find_spec("tensorrt") is not None:
        missing = "the cuda backend requires"
    with pytest.raises(UserError) as e:
        create_engine(tiny_model, backend)
    assert str(e.value).startswith(f"--backend {backend}: {missing}") and "\n" not in str(e.value), str(e.value)


def test_auto_is_never_slower_than_torch_and_is_cached(tiny_model, monkeypatch):
    from clap_rt.engine import auto
    decision = auto.choose_backend(tiny_model, threads=1)
    assert decision["backend"] in auto.available_backends()
    torch_ms = decision["ms"]["torch"]
    chosen_ms = decision["ms"][decision["backend"]]
    assert all(c <= t for c, t in zip(chosen_ms, torch_ms)), decision

    def no_measure(*a, **k):
        raise AssertionError("measured again instead of reading the cached decision")
    monkeypatch.setattr(auto, "measure", no_measure)
    assert auto.choose_backend(tiny_model, threads=1) == decision
    assert create_engine(tiny_model, "auto", threads=1).name == decision["backend"]


@pytest.mark.skipif(not HAS_CUDA, reason="needs an NVIDIA GPU")
@pytest.mark.parametrize("dtype, compile", [("fp16", False), ("bf16", False), ("fp16", True)])
def test_cuda_engine_parity(tiny_model, dtype, compile):
    from clap_rt.engine.cuda_engine import CudaEngine
    x = example_input(tiny_model, 5).numpy()
    ref = create_engine(tiny_model, "torch").embed(x)
    eng = CudaEngine(tiny_model, dtype=dtype, compile=compile)
    assert (eng.fn is not eng.graph) == compile, "torch.compile applied (or not) as asked"
    for _ in range(2):                                # captured graph, then its replay
        out = eng.embed(x)
        cos = float((out * ref).sum(axis=1).min())
        assert cos >= 0.999, f"cuda {dtype}{' compiled' if compile else ''}: min cosine {cos:.5f}"


def test_cli_classify_onnx_gives_the_torch_labels(tiny_model_dir, audio_dir):
    clap_rt = str(Path(sys.executable).parent / "clap-rt")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    rows = {}
    for backend in ("torch", "onnx"):
        p = subprocess.run([clap_rt, "classify", str(audio_dir), "--labels", "dog,siren,piano,rain",
                            "--model", str(tiny_model_dir), "--backend", backend, "--json"],
                           capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        rows[backend] = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(rows["torch"]) == 4
    assert [r["label"] for r in rows["onnx"]] == [r["label"] for r in rows["torch"]]
    diff = max(abs(a["scores"][k] - b["scores"][k]) for a, b in zip(rows["onnx"], rows["torch"]) for k in a["scores"])
    assert diff < 1e-4, f"max score difference {diff:.2e}"
