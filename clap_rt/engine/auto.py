"""`--backend auto`: measure the available backends once per model and machine, keep the fastest.

A rule ("ORT beats eager on CPUs") is not safe: it depends on the tower, the CPU and the
thread count. So the first load times every available fp32-equivalent backend on a batch of 1
(streaming) and of 4 (files) clip windows, rejects any that disagrees with eager PyTorch
(cosine < PARITY) or is slower than it at either batch, and caches the winner under
`cache_dir()/auto/`. Eager torch is always a candidate, so auto is never slower than it.
int8 graphs of whole windows are not candidates: they change the embeddings, which must be an
explicit choice. The one exception is a stream's steady step under auto: a model folder ships
it only where it was shown to agree with fp32 on held-out streams (`clap_rt.incremental.tower_for`).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time

from ..cache import cache_dir
from . import engine_class
from .graph import audio_fingerprint, example_input

PARITY = {"onnx": 0.9999, "cuda": 0.999, "trt": 0.999}    # min cosine vs eager per backend
BATCHES = (1, 4)
REPEATS = 3


def available_backends() -> list[str]:
    """Concrete backends whose packages and hardware are present, torch first."""
    import importlib.util
    found = ["torch"]
    if importlib.util.find_spec("onnxruntime") is not None:
        found.append("onnx")
    import torch
    if torch.cuda.is_available():
        found.append("cuda")
        if importlib.util.find_spec("tensorrt") is not None:
            found.append("trt")
    return found


def machine_key(threads: int | None) -> str:
    """CPU / GPU / library identity: a decision measured elsewhere is not reused here."""
    import torch
    parts = [platform.machine(), platform.processor(), _cpu_model(), str(os.cpu_count()), str(threads),
             torch.__version__]
    if torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name())
    try:
        import onnxruntime
        parts.append(onnxruntime.__version__)
    except ImportError:
        pass
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def median_seconds(call, repeats: int = REPEATS, warmup: int = 1) -> float:
    """Median wall time of `call()` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(model, threads: int | None, backends: list[str]) -> dict:
    """Time each backend; returns {"backend": winner, "ms": {name: [ms per batch]}, "rejected": {...}}."""
    inputs = [example_input(model, b).numpy() for b in BATCHES]
    timings, rejected, ref = {}, {}, None
    for name in backends:
        try:
            engine = engine_class(name)(model, threads=threads)
        except Exception as e:       # a backend that cannot start here is skipped, with its reason
            rejected[name] = f"{type(e).__name__}: {e}"
            continue
        try:
            out = engine.embed(inputs[0])
            if ref is None:
                ref = out                                   # torch runs first: the reference
            else:
                cos = float((out * ref).sum(axis=1).min())
                if cos < PARITY[name]:
                    rejected[name] = f"cosine {cos:.6f} vs torch < {PARITY[name]}"
                    continue
            timings[name] = [1e3 * median_seconds(lambda: engine.embed(x)) for x in inputs]
        finally:
            engine.close()
    base = timings["torch"]
    ok = {n: t for n, t in timings.items() if all(a <= b for a, b in zip(t, base))}
    winner = min(ok, key=lambda n: sum(ok[n]))
    return {"backend": winner, "ms": timings, "batches": list(BATCHES), "rejected": rejected}


def choose_backend(model, threads: int | None = None) -> dict:
    """The cached decision for this model and machine, measuring it on first use."""
    from ..checkpoints import atomic_write_bytes
    backends = available_backends()
    if backends == ["torch"]:
        return {"backend": "torch", "ms": {}, "batches": list(BATCHES), "rejected": {}}
    path = cache_dir() / "auto" / f"{audio_fingerprint(model)}-{machine_key(threads)}.json"
    if path.exists():
        try:
            decision = json.loads(path.read_text())
            if decision.get("backend") in backends:
                return decision
        except (OSError, json.JSONDecodeError):
            pass                                            # unreadable: measure again
    decision = measure(model, threads, backends)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(decision, indent=1).encode())
    return decision


def auto_engine(model, threads: int | None = None):
    """The engine `choose_backend` picks for `model` here."""
    return engine_class(choose_backend(model, threads)["backend"])(model, threads=threads)
