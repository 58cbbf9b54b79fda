"""The streaming tests' fake embedder (tests/fakes.py) responds to its own band only."""
from __future__ import annotations

import numpy as np

from fakes import FE, FakeClap, soundscape


def test_fake_embedder_sees_only_its_band():
    from clap_rt.frontend import log_mel
    clap = FakeClap({"beep": 1000.0, "whistle": 3000.0})
    mel = log_mel(soundscape([(1000.0, 0.2, 0.6)], 1.0), FE)[None]
    p = clap.presence(mel.astype(np.float64))[0]
    assert p[0] == 1.0 and p[1] == 0.0, f"presence {p}"
