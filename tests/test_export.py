"""ONNX export, int8 / fp16 variants and the TensorRT-friendliness of the exported graphs."""
from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from clap_rt.config import AudioEncoderConfig, FrontendConfig, HTSATConfig, msclap_2023, small_default
from clap_rt.engine.graph import example_input, export_audio_onnx, stretch_matrix
from clap_rt.model import CLAP
from export import quantize, to_onnx, to_trt
from export.common import LABELS_NPZ, calibration_windows
from export.trt_ops import trt_unsupported


def tiny_text(cfg):
    """Shrink the text tower: these tests are about the audio graph."""
    cfg.text.pretrained = ""
    cfg.text.hf_config = dict(cfg.text.hf_config, n_layer=1, n_embd=32, n_head=2, num_hidden_layers=1,
                              hidden_size=32, num_attention_heads=2, intermediate_size=64)
    return cfg


def small_cnn_config():
    """The default preset (clap-rt-small) with its full-size 6.2M-parameter CNN tower."""
    return tiny_text(small_default())


def htsat_msclap_geometry():
    """msclap-2023's frontend and HTSAT geometry (965 frames stretched to 1024, 4 stages on a
    64x64 patch grid, shifted 8x8 windows) at width 16 and one block per stage: full width
    exports in ~20 s here, too slow for this file."""
    cfg = tiny_text(msclap_2023())
    cfg.audio.htsat = HTSATConfig(embed_dim=16, depths=(1, 2, 1, 1), num_heads=(1, 2, 2, 4))
    cfg.projection.dim = 32
    return cfg


def htsat_tiny():
    """A tiny HTSAT: 16 kHz, 101 frames stretched to 128, 2 stages of shifted 4x4 windows."""
    cfg = tiny_text(msclap_2023())
    cfg.frontend = FrontendConfig(sample_rate=16000, clip_seconds=1.0, n_fft=512, win_length=512,
                                  hop_length=160, n_mels=32, fmin=50.0, fmax=8000.0)
    cfg.audio = AudioEncoderConfig(kind="htsat", htsat=HTSATConfig(
        spec_size=64, embed_dim=16, depths=(2, 2), num_heads=(2, 4), window_size=4))
    cfg.projection.dim = 32
    return cfg


CONFIGS = {"clap-rt-small": small_cnn_config, "htsat-msclap-geometry": htsat_msclap_geometry,
           "htsat-tiny": htsat_tiny}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def exported(request):
    torch.manual_seed(0)
    model = CLAP(CONFIGS[request.param]()).eval()
    with torch.no_grad():        # non-trivial BatchNorm statistics, as a trained model has
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return request.param, model, export_audio_onnx(model)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_onnx_matches_pytorch_batch_1_and_5(exported):
    name, model, blob = exported
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    x = example_input(model, 6)
    worst, max_abs = 1.0, 0.0
    for xb in (x[:1], x[1:]):                               # batch 1, then batch 5: one graph
        with torch.no_grad():
            ref = model.encode_audio(xb).numpy()
        out = sess.run(None, {"mel_db": xb.numpy()})[0]
        assert out.shape == ref.shape
        worst = min(worst, float(cosines(out, ref).min()))
        max_abs = max(max_abs, float(np.abs(out - ref).max()))
    assert worst >= 0.99999, f"{name}: ONNX vs PyTorch min cosine {worst:.7f}, max abs diff {max_abs:.2e}"


def test_graph_is_valid_opset17_with_dynamic_batch(exported):
    name, model, blob = exported
    proto = onnx.load_from_string(blob)
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == model.config.frontend.n_mels, dims


def test_graph_uses_only_tensorrt_10_3_operators(exported):
    name, _, blob = exported
    problems = trt_unsupported(onnx.load_from_string(blob))
    assert problems == [], f"{name}: {problems}"


def test_allow_list_rejects_what_tensorrt_cannot_import():
    """The checker itself: bicubic Resize (HTSAT's stretch done naively) and STFT are caught."""
    x = torch.randn(1, 1, 965, 64)
    buf = io.BytesIO()
    torch.onnx.export(lambda_module(lambda t: F.interpolate(t, size=(1024, 64), mode="bicubic",
                                                             align_corners=True)),
                      (x,), buf, opset_version=17, dynamo=False)
    assert trt_unsupported(onnx.load_from_string(buf.getvalue())) == [
        next(f"{n.name} (Resize): mode 'cubic', TensorRT supports ('nearest', 'linear')"
             for n in onnx.load_from_string(buf.getvalue()).graph.node if n.op_type == "Resize")]
    stft = onnx.helper.make_node("STFT", ["s", "f"], ["y"], name="spec")
    graph = onnx.helper.make_graph([stft], "g", [], [])
    assert trt_unsupported(onnx.helper.make_model(graph)) == ["spec (STFT): not in TensorRT's ONNX operator list"]


class lambda_module(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_stretch_matrix_is_the_bicubic_resize():
    # Against the float64 resize: torch's own float32 bicubic is off by ~2e-4 on these inputs.
    x = torch.randn(3, 64, 965, dtype=torch.float32)
    ref = F.interpolate(x.double().transpose(1, 2)[:, None], size=(1024, 64), mode="bicubic",
                        align_corners=True)[:, 0].transpose(1, 2)
    out = x @ stretch_matrix(965, 1024)
    err = float((out.double() - ref).abs().max())
    assert out.shape == (3, 64, 1024) and err < 2e-6, f"max abs diff {err:.2e}"


# --- the scripts ---------------------------------------------------------------------------

def test_to_onnx_writes_checked_graph_and_label_table(tiny_model_dir, tmp_path, capsys):
    from clap_rt.zeroshot import Clap
    out = tmp_path / "onnx"
    assert to_onnx.main([str(tiny_model_dir), "-o", str(out), "--labels", "dog,siren,piano"]) == 0
    assert "ONNX vs PyTorch min cosine" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(str(out / "audio.onnx")), full_check=True)
    assert (out / "audio.ort.onnx").stat().st_size > 0
    clap = Clap.load(tiny_model_dir, backend="torch")
    with np.load(out / LABELS_NPZ) as z:
        assert list(z["labels"]) == ["dog", "siren", "piano"]
        diff = float(np.abs(z["embeddings"] - clap.label_embeddings(["dog", "siren", "piano"])).max())
        assert diff < 1e-6, f"label table differs from Clap.label_embeddings by {diff:.2e}"
        assert abs(float(z["logit_scale"]) - clap.logit_scale) < 1e-5


def test_to_onnx_bad_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    assert to_onnx.main([str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"python -m export.to_onnx: error: {tmp_path / 'nope'}: model folder not found\n"


def test_static_quantisation_needs_calibration_audio(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert to_onnx.main([str(tiny_model_dir), "-o", str(out)]) == 0
    assert quantize.main([str(out), "--mode", "static"]) == 2
    assert capsys.readouterr().err == ("python -m export.quantize: error: --calib: static quantisation needs a folder "
                                       "of audio, e.g. the training corpus folder\n")


@pytest.mark.skipif(__import__("importlib").util.find_spec("tensorrt") is not None,
                    reason="TensorRT is installed here")
def test_to_trt_without_tensorrt_is_one_line_exit_2(tiny_model_dir, tmp_path, capsys):
    assert to_trt.main([str(tiny_model_dir), "-o", str(tmp_path / "e.plan"), "--fp16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m export.to_trt: error: the trt backend requires TensorRT"), err
    assert not (tmp_path / "e.plan").exists()


# --- int8 / fp16 on realistic inputs -------------------------------------------------------

def write_sounds(folder, seed: int, n: int = 6, sr: int = 44100):
    """Chirps, harmonic tones, noise bursts and clicks: log-mel inputs with real structure."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(2.5 * sr)) / sr
    for i in range(n):
        f0 = rng.uniform(100, 2000)
        x = sum(rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * f0 * k * t * (1 + rng.uniform(-0.2, 0.2) * t))
                for k in range(1, 4))
        x = x + rng.uniform(0.005, 0.1) * rng.standard_normal(t.size) * (rng.random(t.size) < rng.uniform(0.2, 1))
        x[rng.integers(0, t.size, 20)] += 0.8
        sf.write(folder / f"s{i}.wav", x.astype(np.float32), sr)


@pytest.fixture(scope="module")
def cnn_export(tmp_path_factory):
    """The default preset's full-size CNN (random init), exported, with calibration / eval audio."""
    from clap_rt.checkpoints import pretrained_tokenizer_dir, save_model
    from clap_rt.tokenizer import TextTokenizer
    torch.manual_seed(1)
    cfg = small_cnn_config()
    model = CLAP(cfg).eval()
    root = tmp_path_factory.mktemp("int8")
    save_model(model, root / "model", TextTokenizer.from_dir(pretrained_tokenizer_dir(small_default()), cfg.text))
    assert to_onnx.main([str(root / "model"), "-o", str(root / "onnx")]) == 0
    write_sounds(root / "calib", seed=1)
    write_sounds(root / "eval", seed=2)
    x = calibration_windows(root / "eval", cfg)
    with torch.no_grad():
        ref = model.encode_audio(torch.from_numpy(x)).numpy()
    return root, x, ref


@pytest.mark.parametrize("mode, min_cos", [("dynamic", 0.99), ("static", 0.99), ("fp16", 0.999)])
def test_quantised_graph_close_to_fp32(cnn_export, mode, min_cos):
    from clap_rt.engine.onnx_engine import ort_session
    root, x, ref = cnn_export
    rc = quantize.main([str(root / "onnx"), "--mode", mode, "--calib", str(root / "calib")])
    assert rc == 0
    path = quantize.output_path(root / "onnx", mode)
    out = ort_session(path, threads=2).run(None, {"mel_db": x})[0]
    worst = float(cosines(out, ref).min())
    assert worst >= min_cos, f"{mode}: min cosine vs PyTorch fp32 {worst:.5f} over {len(x)} windows"
    if mode == "static":                       # the Q/DQ graph is the one TensorRT builds for int8
        assert trt_unsupported(onnx.load(str(path))) == []
