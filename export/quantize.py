"""python -m export.quantize DIR --mode dynamic|static|fp16 [--calib FOLDER]: smaller graphs.

Reads DIR/audio.onnx (written by to_onnx.py) and writes next to it:
  dynamic  audio.int8-dynamic.onnx  ORT dynamic quantisation: int8 per-channel weights,
                                    activations quantised on the fly (no calibration).
  static   audio.int8-static.onnx   QDQ int8, per-channel symmetric weights, symmetric
                                    activations calibrated (min/max) on log-mel windows of
                                    a folder of audio (--calib: e.g. a sample of the training
                                    corpus); the Q/DQ form is what TensorRT consumes for int8.
  fp16     audio.fp16.onnx          fp16 weights and compute, fp32 input/output.
Only Conv / MatMul / Gemm are quantised; the numerically fragile parts stay fp32 in every
variant: the input scaling before the first Conv (dB -> tower scale, HTSAT's stretch),
LayerNorm, softmax, softplus and the final L2 normalisation.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from clap_rt.engine.graph import dedupe_weights
from clap_rt.errors import UserError, run_program
from export.common import AUDIO_ONNX, FAILURES, batches, calibration_windows, model_config, read_meta

PROG = "python -m export.quantize"

MODES = ("dynamic", "static", "fp16")
QUANTISED_OPS = ["Conv", "MatMul", "Gemm"]
FP32_OPS = ["LayerNormalization", "Softmax", "Softplus", "ReduceL2", "BatchNormalization"]


def output_path(export_dir: str | Path, mode: str) -> Path:
    name = {"dynamic": "audio.int8-dynamic.onnx", "static": "audio.int8-static.onnx", "fp16": "audio.fp16.onnx"}
    return Path(export_dir) / name[mode]


def input_scaling_nodes(proto, include_first_conv: bool = False) -> list[str]:
    """Names of the nodes before the first Conv (graph order is topological): the input scaling,
    and that Conv itself when asked (one input channel: cheap, and the most sensitive to int8)."""
    names = []
    for node in proto.graph.node:
        if node.op_type == "Conv":
            if include_first_conv:
                names.append(node.name)
            break
        names.append(node.name)
    return names


def _require_quantization():
    try:
        from onnxruntime import quantization
    except ImportError as e:
        raise RuntimeError("quantisation requires the onnxruntime package (pip install onnxruntime)") from e
    return quantization


def quantize_dynamic(src: Path, dst: Path) -> None:
    q = _require_quantization()
    import onnx
    keep = input_scaling_nodes(onnx.load(str(src)), include_first_conv=True)
    q.quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=q.QuantType.QInt8,
                       op_types_to_quantize=QUANTISED_OPS, nodes_to_exclude=keep)


class MelReader:
    """onnxruntime CalibrationDataReader over (N, n_mels, T) log-mel windows, `batch` at a time."""

    def __init__(self, mels, batch: int = 1):   # equal batches: histogram calibration concatenates them
        from clap_rt.engine.graph import INPUT_NAME
        self._it = ({INPUT_NAME: b} for b in batches(mels, batch))

    def get_next(self):
        return next(self._it, None)


def leading_conv_nodes(proto, n_layers: int) -> list[str]:
    """Names of the Conv nodes that apply the first `n_layers` distinct convolution weights, in
    graph order: the first `n_layers` conv layers of a tower, however many nodes each became
    (the incremental step graph runs a layer as up to three convolutions, each with its own
    copy of the weight, so layers are told apart by the weights' values)."""
    from onnx import numpy_helper
    values = {i.name: i for i in proto.graph.initializer}
    values.update({n.output[0]: n.attribute[0].t for n in proto.graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    layers, names = [], []
    for node in proto.graph.node:
        if node.op_type != "Conv" or node.input[1] not in values:
            continue
        w = numpy_helper.to_array(values[node.input[1]]).tobytes()
        if w not in layers:
            if len(layers) == n_layers:
                continue
            layers.append(w)
        names.append(node.name)
    return names


def quantize_static(src: Path, dst: Path, reader, fp32_conv_layers: int = 1, ops: tuple = ("Conv",)) -> None:
    """QDQ int8 of the `ops` nodes of `src`, calibrated on the feeds of `reader` (an onnxruntime
    CalibrationDataReader); the input scaling and the first `fp32_conv_layers` conv layers
    (one input channel: cheap, and the most sensitive to int8) stay fp32."""
    q = _require_quantization()
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        proto = onnx.load(str(pre))
        keep = input_scaling_nodes(proto) + leading_conv_nodes(proto, fp32_conv_layers)
        # By default only the convolutions (the compute) are quantised and the projections stay
        # fp32; a graph shipped for its size also quantises their MatMuls. Activations are
        # unsigned after ReLU, so uint8 with a zero point keeps their full range (symmetric
        # int8 would waste a bit), and u8 x s8 is what VNNI / AMX multiply.
        q.quantize_static(str(pre), str(dst), reader, quant_format=q.QuantFormat.QDQ,
                          per_channel=True, activation_type=q.QuantType.QUInt8,
                          weight_type=q.QuantType.QInt8, op_types_to_quantize=list(ops),
                          nodes_to_exclude=keep, calibrate_method=q.CalibrationMethod.Percentile,
                          extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                         "CalibPercentile": 99.999})
    proto = onnx.load(str(dst))
    if dedupe_weights(proto):
        onnx.save(proto, str(dst))


def convert_fp16(src: Path, dst: Path) -> None:
    import onnx
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as e:
        raise RuntimeError("fp16 conversion requires the onnxruntime package (pip install onnxruntime)") from e
    proto = onnx.load(str(src))
    keep = input_scaling_nodes(proto)
    half = convert_float_to_float16(proto, keep_io_types=True, op_block_list=FP32_OPS, node_block_list=keep)
    onnx.save(half, str(dst))


def quantize(export_dir: str | Path, mode: str, calib: str | None = None, calib_windows: int = 64) -> Path:
    """Write the `mode` variant of export_dir/audio.onnx; returns its path."""
    src = Path(export_dir) / AUDIO_ONNX
    if not src.exists():
        raise UserError(f"{export_dir}: no {AUDIO_ONNX}; run python -m export.to_onnx first")
    dst = output_path(export_dir, mode)
    if mode == "dynamic":
        quantize_dynamic(src, dst)
    elif mode == "fp16":
        convert_fp16(src, dst)
    else:
        if not calib:
            raise UserError("--calib: static quantisation needs a folder of audio, "
                            "e.g. the training corpus folder")
        mels = calibration_windows(calib, model_config(read_meta(export_dir)), calib_windows)
        quantize_static(src, dst, MelReader(mels))
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("dir", help="folder written by export/to_onnx.py")
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--calib", default=None, help="folder of audio for static calibration")
    p.add_argument("--calib-windows", type=int, default=64, help="clip windows used for calibration")
    args = p.parse_args(argv)

    def run() -> int:
        print(f"wrote {quantize(args.dir, args.mode, args.calib, args.calib_windows)}")
        return 0

    return run_program(PROG, run, also=FAILURES)


if __name__ == "__main__":
    sys.exit(main())
