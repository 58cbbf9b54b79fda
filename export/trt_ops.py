"""Which ONNX operators TensorRT's ONNX parser accepts, for the oldest TensorRT we support (10.3).

Source: onnx/onnx-tensorrt docs/operators.md at the 10.1-GA release (commit 96e7811, June 2024),
the operators marked "Y". That is the newest copy we could consult; 10.3 only adds operators,
so checking against 10.1's list is stricter than needed, never looser. Restrictions that bite
audio models are checked too: Resize has no cubic mode, STFT / DFT are not supported.
"""
from __future__ import annotations

TRT_ONNX_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand
EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool
GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU
HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN
LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization
LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg
NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1
ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan
Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice
Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu
Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

RESIZE_MODES = ("nearest", "linear")


def trt_unsupported(proto) -> list[str]:
    """Problems TensorRT 10.3 would reject in an ONNX ModelProto, as 'node (op): why'; [] when none."""
    problems = []
    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.name} ({node.domain}.{node.op_type}): custom-domain operator")
        elif node.op_type not in TRT_ONNX_OPS:
            problems.append(f"{node.name} ({node.op_type}): not in TensorRT's ONNX operator list")
        elif node.op_type == "Resize":
            mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "nearest")
            if mode not in RESIZE_MODES:
                problems.append(f"{node.name} (Resize): mode {mode!r}, TensorRT supports {RESIZE_MODES}")
    return problems
