"""The end-aligned tail window of a stream may start less than a hop after the last full window
(a multiple of the tower's stride): the incremental tower scores it as re-encoding does."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("strides", [1, 2])
def test_tail_window_sooner_than_a_hop(tiny_model_dir, backend, strides):
    from clap_rt.stream import ClapStream
    from clap_rt.zeroshot import Clap
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    clap = Clap.load(tiny_model_dir, backend=backend)
    inc = ClapStream(clap, ["a", "b"], 44100, hop=0.5)
    ref = ClapStream(clap, ["a", "b"], 44100, hop=inc.hop_seconds, incremental=False)
    W, H, stride = inc.window_frames, inc.hop_frames, inc.tower_state.stride
    assert H > strides * stride
    frames = W + 3 * H + strides * stride            # full windows at 0, H, 2H, 3H; the tail after 3H
    audio = (0.1 * np.random.default_rng(0).standard_normal((frames - 1) * inc.fe.hop_length)).astype(np.float32)
    runs = []
    for s in (inc, ref):
        s.accept_waveform(audio)
        s.input_finished()
        out = []
        while s.windows_ready:
            w = s.pop_window()
            out.append((w.frame, s.score(w).scores))
        runs.append(out)
    assert [f for f, _ in runs[0]] == [f for f, _ in runs[1]] == [0, H, 2 * H, 3 * H, 3 * H + strides * stride]
    diff = max(float(np.abs(a - b).max()) for (_, a), (_, b) in zip(*runs))
    assert diff <= 1e-5, f"max score difference {diff:.2e}"
