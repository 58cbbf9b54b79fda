"""The incremental audio tower against re-encoding each window with the whole tower."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import tiny_config
from fakes import tone
from clap_rt.errors import UserError
from clap_rt.frontend import log_mel
from clap_rt.incremental import IncrementalTower, aligned_hop_frames, incremental_support
from clap_rt.model import CLAP

DEMO = Path(__file__).resolve().parents[1] / "demo" / "soundscape.flac"


def reencoded(model, mel: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.encode_audio(torch.from_numpy(np.ascontiguousarray(mel)[None]))[0].numpy()


def random_bn_model(seed: int = 0) -> CLAP:
    """The tiny CLAP with BatchNorm statistics far from identity (eval mode)."""
    torch.manual_seed(seed)
    model = CLAP(tiny_config()).eval()
    g = torch.Generator().manual_seed(seed)
    for m in model.audio.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.3)
    return model


def stream_mel(seconds: float, fe, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * fe.sample_rate)
    x = 0.05 * rng.standard_normal(n).astype(np.float32)
    x[n // 3: n // 3 + fe.sample_rate // 2] += tone(1000, 0.5, fe.sample_rate)[: fe.sample_rate // 2]
    return log_mel(x, fe)                                          # (n_mels, T)


def worst_cosine(model, tower: IncrementalTower, mel: np.ndarray, starts) -> float:
    W = tower.window_frames
    return min(float(reencoded(model, mel[:, f0:f0 + W]) @ tower.embed(mel[:, f0:f0 + W], f0)) for f0 in starts)


@pytest.mark.parametrize("window_frames,hop", [(87, 24), (87, 8), (86, 16), (40, 8), (20, 16)])
def test_windows_equal_reencoding(window_frames, hop):
    # 87: the model's odd window (block 1's pool drops its last frame); 20: every stage's
    # columns reach the padding, so each window is recomputed whole.
    model = random_bn_model()
    mel = stream_mel(8.0, model.config.frontend)
    tower = IncrementalTower(model, window_frames)
    starts = range(0, mel.shape[1] - window_frames + 1, hop)
    cos = worst_cosine(model, tower, mel, starts)
    assert cos >= 1 - 1e-6, f"W={window_frames} hop={hop}: min cosine {cos:.9f} to re-encoding"
    if window_frames == 87 and hop == 24:
        assert tower.macs < 0.6 * tower.window_macs, f"{tower.macs} MACs per hop, re-encoding {tower.window_macs}"


@pytest.mark.parametrize("window_frames", [87, 20])
def test_onnx_runner_equals_reencoding(window_frames):
    pytest.importorskip("onnxruntime")
    model = random_bn_model(3)
    mel = stream_mel(8.0, model.config.frontend, seed=3)
    tower = IncrementalTower(model, window_frames, runner="onnx", threads=1, hop_frames=16)
    graph = tower.graph
    if window_frames == 87:     # the held columns keep their shapes from the first window on: all on graphs
        tower.step = lambda *args: pytest.fail("a window ran in PyTorch")
    # a first window, steady ones, a gap, steady ones, one window skipped, a tail window 8 frames on
    starts = [0, 16, 32, 48, 96, 112, 128, 160, 168]
    for f0, first in zip(starts, [1, 0, 0, 0, 1, 0, 0, 1, 1]):
        cos = worst_cosine(model, tower, mel, [f0])
        assert cos >= 1 - 1e-6, f"W={window_frames}, window at {f0}: cosine {cos:.9f} to re-encoding"
        if window_frames == 87:
            assert tower.macs == (graph.first_macs if first else graph.macs), f0


def test_gaps_restarts_and_reset_stay_exact():
    model = random_bn_model(1)
    mel = stream_mel(8.0, model.config.frontend, seed=1)
    tower = IncrementalTower(model, 87)
    # consecutive, then two skipped windows, then a start off the stride grid, then back
    starts = [0, 24, 48, 120, 144, 147, 171, 195, 96]
    assert worst_cosine(model, tower, mel, starts) >= 1 - 1e-6
    tower.reset()
    assert worst_cosine(model, tower, mel, [200, 224]) >= 1 - 1e-6
    # a state holds only what the coming windows read: bounded columns per stage
    assert max(tower.columns_held) <= 87, tower.columns_held


def test_bundled_model_on_the_demo_recording():
    from clap_rt.checkpoints import load_model
    model = load_model()[0].eval()
    fe = model.config.frontend
    audio, rate = sf.read(DEMO, dtype="float32")
    assert rate == fe.sample_rate
    mel = log_mel(audio[: 12 * rate] if audio.ndim == 1 else audio[: 12 * rate].mean(axis=1), fe)
    tower = IncrementalTower(model, fe.n_frames)
    assert tower.stride == 8
    cos = worst_cosine(model, tower, mel, range(0, mel.shape[1] - fe.n_frames + 1, 24))
    assert cos >= 1 - 1e-6, f"min cosine {cos:.9f}"
    ratio = tower.window_macs / tower.macs
    assert 1.6 < ratio < 1.7, f"re-encoding / incremental MACs per hop: {ratio:.3f}"


def test_hop_alignment():
    assert [aligned_hop_frames(h, 8, 87) for h in (1, 4, 11, 12, 22, 87)] == [8, 8, 8, 16, 24, 80]


def test_unsupported_towers_say_why():
    cfg = tiny_config()
    cfg.audio.sfx_cnn.level_ref_db = -10.0
    assert "normalises each window by its own peak" in incremental_support(CLAP(cfg))
    assert incremental_support(None) == "the model has no PyTorch audio tower"


# --- in the stream ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_stream_scores_equal_reencoding(tiny_model_dir, backend):
    from clap_rt.stream import ClapStream
    from clap_rt.zeroshot import Clap
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    clap = Clap.load(tiny_model_dir, backend=backend)
    rng = np.random.default_rng(2)
    audio = (0.05 * rng.standard_normal(6 * 44100)).astype(np.float32) + np.tile(tone(800, 0.5), 12)
    runs = {}
    for inc in (True, False):
        s = ClapStream(clap, ["a", "b"], 44100, hop=0.5, incremental=inc)
        out = []
        for i in range(0, len(audio), 3000):
            s.accept_waveform(audio[i:i + 3000])
            while s.windows_ready:
                w = s.pop_window()
                if w.index in (5, 6):           # skipped windows: the next one starts afresh
                    continue
                out.append((w.index, w.start, s.score(w).scores))
        s.input_finished()
        while s.windows_ready:                  # the end-aligned tail window
            w = s.pop_window()
            out.append((w.index, w.start, s.score(w).scores))
        runs[inc] = out, s
    (inc_out, s_inc), (_, s_ref) = runs[True], runs[False]
    assert s_inc.incremental and not s_ref.incremental and s_inc.tower_state.runner == backend
    assert s_inc.notice == ("hop 0.5 s rounded to 0.557 s (24 frames): incremental encoding needs a multiple "
                            "of the audio tower's time stride (8 frames, 0.186 s)")
    assert s_ref.notice is None and s_ref.hop_frames == 22
    # the same windows when both streams use the aligned hop
    s_ref = ClapStream(clap, ["a", "b"], 44100, hop=s_inc.hop_seconds, incremental=False)
    assert s_ref.hop_frames == 24
    ref = {}
    for i in range(0, len(audio), 3000):
        s_ref.accept_waveform(audio[i:i + 3000])
    s_ref.input_finished()
    while s_ref.windows_ready:
        w = s_ref.pop_window()
        ref[w.index] = (w.start, s_ref.score(w).scores)
    assert [i for i, _, _ in inc_out] == [i for i in ref if i not in (5, 6)]
    diff = max(float(np.abs(sc - ref[i][1]).max()) for i, _, sc in inc_out)
    assert diff <= 1e-5, f"max score difference {diff:.2e}"
    assert all(t == ref[i][0] for i, t, _ in inc_out)


def test_streams_of_one_model_share_the_step_graphs_and_keep_their_own_columns(tiny_model_dir):
    from clap_rt.stream import ClapStream
    from clap_rt.zeroshot import Clap
    pytest.importorskip("onnxruntime")
    clap = Clap.load(tiny_model_dir, backend="onnx")
    rng = np.random.default_rng(5)
    audios = [(0.05 * rng.standard_normal(4 * 44100)).astype(np.float32) + np.tile(tone(f, 0.5), 8)
              for f in (500, 2000)]
    streams = [ClapStream(clap, ["a", "b"], 44100, hop=0.5) for _ in audios]
    assert streams[0].tower_state.graph is streams[1].tower_state.graph is not None
    assert list(clap.stream_graphs) == [(streams[0].window_frames, streams[0].hop_frames, None)]
    refs = [ClapStream(clap, ["a", "b"], 44100, hop=streams[0].hop_seconds, incremental=False) for _ in audios]
    worst = 1.0
    for i in range(0, len(audios[0]), 3000):     # the two streams' windows interleaved on one graph
        for s, r, a in zip(streams, refs, audios):
            s.accept_waveform(a[i:i + 3000])
            r.accept_waveform(a[i:i + 3000])
            while s.windows_ready:
                e, e_ref = s.embed_window(s.pop_window()), r.embed_window(r.pop_window())
                worst = min(worst, float(e @ e_ref))
    assert worst >= 1 - 1e-6, f"min cosine {worst:.9f} to re-encoding"


def test_towers_sharing_graphs_stay_exact_under_random_skips():
    # three streams on one pair of graphs, each skipping windows at random (restarts, catch-ups,
    # steady runs interleaved across the towers): every scored window equals re-encoding
    pytest.importorskip("onnxruntime")
    model = random_bn_model(6)
    rng = np.random.default_rng(6)
    mels = [stream_mel(6.0, model.config.frontend, seed=k) for k in range(3)]
    first = IncrementalTower(model, 87, runner="onnx", threads=1, hop_frames=16)
    towers = [first] + [IncrementalTower(model, 87, runner="onnx", threads=1, hop_frames=16, graph=first.graph)
                        for _ in range(2)]
    assert all(t.graph is first.graph and t._stages is first._stages for t in towers)
    starts = [list(range(0, mels[0].shape[1] - 87 + 1, 16)) for _ in towers]
    worst = 1.0
    while any(starts):
        k = int(rng.integers(3))
        if not starts[k]:
            continue
        f0 = starts[k].pop(0)
        if rng.random() < 0.3:          # this window is skipped
            continue
        mel = mels[k][:, f0:f0 + 87]
        worst = min(worst, float(reencoded(model, mel) @ towers[k].embed(mel, f0)))
    assert worst >= 1 - 1e-6, f"min cosine {worst:.9f} to re-encoding"


def test_stream_refuses_incremental_where_unsupported(tiny_model_dir):
    from fakes import FakeClap
    from clap_rt.stream import ClapStream
    fake = FakeClap({"x": 1000.0})
    assert not ClapStream(fake, ["x"], 16000).incremental
    with pytest.raises(UserError, match="^incremental encoding: the model has no PyTorch audio tower$"):
        ClapStream(fake, ["x"], 16000, incremental=True)


# --- a shipped int8 steady step --------------------------------------------------------------

def test_a_shipped_int8_step_agrees_and_is_timed_against_fp32_under_auto(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import shutil
    import clap_rt.engine.auto
    from clap_rt.engine.incremental_graph import int8_graph_name
    from clap_rt.engine.onnx_engine import ort_session
    from clap_rt.zeroshot import Clap
    from export.quantize import quantize_static
    from export.stream_int8 import FeedReader, steady_windows
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    rng = np.random.default_rng(3)
    audio = (0.05 * rng.standard_normal(8 * 44100)).astype(np.float32) + np.tile(tone(600, 0.5), 16)
    clap = Clap.load(folder, backend="onnx")
    feeds: list = []
    e32, s32, _, stream, graph = steady_windows(clap, ["a", "b"], audio, 0.5, record=feeds)   # the step's real inputs
    assert stream.tower_state.precision == "fp32" and len(feeds) == len(e32) - 1        # all but the first window
    name = int8_graph_name(clap.model, stream.window_frames, stream.hop_frames)
    quantize_static(graph.path, folder / name, FeedReader(feeds), fp32_conv_layers=1)
    e8, s8, _, _, _ = steady_windows(clap, ["a", "b"], audio, 0.5, session=ort_session(folder / name, 1))
    assert float((e8 * e32).sum(axis=1).min()) > 0.95 and np.abs(e8 - e32).max() > 0   # int8 ran, and agrees

    # explicit --backend onnx: fp32, the shipped step is not even timed
    assert set(steady_windows(clap, ["a"], audio[:3 * 44100], 0.5)[4].step_ms) == {"fp32"}
    monkeypatch.setattr(clap_rt.engine.auto, "choose_backend", lambda model, threads=None: {"backend": "onnx"})
    auto = Clap.load(folder, backend="auto")
    _, _, _, s_auto, g_auto = steady_windows(auto, ["a"], audio[:3 * 44100], 0.5)
    assert set(g_auto.step_ms) == {"fp32", "int8"}
    assert s_auto.tower_state.precision == ("int8" if g_auto.step_ms["int8"] < g_auto.step_ms["fp32"] else "fp32")
    # a step made for other weights, window or hop is never picked up: its name differs
    (folder / name).rename(folder / name.replace("-h24.onnx", "-h16.onnx"))
    assert set(steady_windows(Clap.load(folder, backend="auto"), ["a"], audio[:3 * 44100], 0.5)[4].step_ms) == {"fp32"}


def test_step_graphs_hold_each_weight_once():
    onnx = pytest.importorskip("onnx")
    model = random_bn_model(4)
    tower = IncrementalTower(model, 87, runner="onnx", threads=1, hop_frames=24)
    conv_bytes = sum(st.weight.numel() * 4 for st in tower._stages if st.conv)
    for path in (tower.graph.path, tower.graph.first_path):
        proto = onnx.load(str(path))
        assert not [n for n in proto.graph.node if n.op_type == "Constant" and n.attribute[0].t.ByteSize() > 1024]
        weights = [bytes(i.raw_data) for i in proto.graph.initializer if len(i.raw_data) > 1024]
        assert len(weights) == len(set(weights)), path.name
        # each conv's folded weight once (three slices of columns read it), the projection's matrices once
        assert conv_bytes <= sum(map(len, weights)) < conv_bytes + 4 * sum(p.numel() for p in model.audio_projection.parameters()) + 1024
