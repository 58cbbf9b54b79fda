"""The TensorRT backend: the exported audio graph built into a TensorRT engine (plan).

Works with TensorRT 10.x (JetPack 6 ships 10.3: FP16 / INT8 builder flags, INT8 only
through the Q/DQ nodes of a statically quantised graph) and 11.x (every network strongly
typed, no precision flags: the precision is the one the ONNX graph carries, so an fp16
engine needs the fp16 graph written by export/quantize.py). Device memory is handled with
PyTorch CUDA tensors, so no pycuda / cuda-python is needed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..cache import cache_dir
from .cuda_engine import require_cuda
from .graph import INPUT_NAME, OUTPUT_NAME, audio_fingerprint, cached_audio_onnx

DEFAULT_BATCH = (1, 8, 64)     # optimisation profile: min, opt, max batch


def require_tensorrt():
    """Return the tensorrt module, or raise RuntimeError naming what is missing."""
    try:
        import tensorrt as trt
    except ImportError as e:
        raise RuntimeError("the trt backend requires TensorRT's Python bindings "
                           "(pip install tensorrt, or JetPack's python3-libnvinfer)") from e
    require_cuda()
    return trt


def trt_major(trt) -> int:
    return int(trt.__version__.split(".")[0])


def build_plan(onnx_path: str | os.PathLike, n_frames: int, *, fp16: bool = True, int8: bool = False,
               batch: tuple[int, int, int] = DEFAULT_BATCH, workspace_gib: float = 2.0) -> bytes:
    """ONNX audio graph -> serialised TensorRT engine with one optimisation profile over `batch`.

    n_frames: the T the engine is built for (CNN graphs have a dynamic time axis).
    TensorRT 10: `fp16` / `int8` set the builder flags (int8 needs Q/DQ nodes in the graph).
    TensorRT >= 11: networks are strongly typed and the flags are ignored (see module doc).
    """
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = trt_major(trt) >= 11
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if not strongly_typed:
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        if int8:
            config.set_flag(trt.BuilderFlag.INT8)
    inp = network.get_input(0)
    n_mels = inp.shape[1]
    profile = builder.create_optimization_profile()
    profile.set_shape(inp.name, *[(b, n_mels, n_frames) for b in batch])
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    return bytes(plan)


class TrtEngine:
    """Runs a TensorRT plan; without `plan`, builds one from the model's ONNX graph (cached)."""

    name = "trt"

    def __init__(self, model, threads: int | None = None, *, plan: str | os.PathLike | None = None,
                 fp16: bool = True, batch: tuple[int, int, int] = DEFAULT_BATCH):
        trt = require_tensorrt()
        import torch
        self.torch = torch
        fe = model.config.frontend
        if plan is None:
            plan = self._cached_plan(model, trt, fp16, batch)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(Path(plan).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{plan}: not a TensorRT {trt.__version__} engine for this GPU")
        self.context = self.engine.create_execution_context()
        self.max_batch = self.engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0]
        self.dim = model.config.projection.dim
        self.n_frames = fe.n_frames

    @staticmethod
    def _cached_plan(model, trt, fp16: bool, batch) -> Path:
        from ..checkpoints import atomic_write_bytes
        tag = f"{audio_fingerprint(model)}-trt{trt.__version__}-{'fp16' if fp16 else 'fp32'}-{'_'.join(map(str, batch))}"
        path = cache_dir() / "trt" / f"audio-{tag}.plan"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            onnx_path = cached_audio_onnx(model)
            atomic_write_bytes(path, build_plan(onnx_path, model.config.frontend.n_frames, fp16=fp16, batch=batch))
        return path

    def _run(self, x):
        torch = self.torch
        out = torch.empty((x.shape[0], self.dim), dtype=torch.float32, device=x.device)
        self.context.set_input_shape(INPUT_NAME, tuple(x.shape))
        self.context.set_tensor_address(INPUT_NAME, x.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, out.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        return out

    def embed(self, mel_db: np.ndarray) -> np.ndarray:
        """(B, n_mels, T) float32 dB -> (B, dim) float32 unit-norm embeddings."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(mel_db, dtype=np.float32)).cuda()
        outs = [self._run(x[i:i + self.max_batch].contiguous()) for i in range(0, x.shape[0], self.max_batch)]
        torch.cuda.current_stream().synchronize()
        return torch.cat(outs).cpu().numpy()

    def close(self) -> None:
        self.context = None
        self.engine = None
