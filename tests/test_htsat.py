"""HTSAT tower: full msclap preset forward, batch independence, folding, dynamic batch, errors."""
import dataclasses
import time

import pytest
import torch
import torch.nn.functional as F

from clap_rt.config import FrontendConfig, HTSATConfig, msclap_2023
from clap_rt.htsat import HTSAT, window_partition, window_reverse

torch.set_num_threads(2)

TINY = HTSATConfig(spec_size=64, patch_size=4, patch_stride=4, embed_dim=8, depths=(2, 2, 2),
                   num_heads=(2, 2, 4), window_size=4)
TINY_FE = FrontendConfig(sample_rate=8000, clip_seconds=2.0, n_fft=256, win_length=256, hop_length=80,
                         n_mels=16, fmin=0.0, fmax=4000.0)        # 201 frames -> stretched to 256


def tiny_tower(seed=0):
    torch.manual_seed(seed)
    m = HTSAT(TINY, TINY_FE).eval()
    with torch.no_grad():                  # make the norms and the bias tables matter
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
        m.bn0.running_mean.normal_()
        m.bn0.running_var.uniform_(0.5, 2.0)
    return m


def test_msclap_preset_forward_batch1_7s():
    cfg = msclap_2023()
    tower = HTSAT(cfg.audio.htsat, cfg.frontend).eval()
    assert cfg.frontend.n_frames == 965
    n_params = sum(p.numel() for p in tower.parameters())
    x = torch.randn(1, 64, 965) * 10 - 40
    t0 = time.perf_counter()
    with torch.no_grad():
        y = tower(x)
    dt = time.perf_counter() - t0
    print(f"msclap-2023 HTSAT: {n_params:,} params, batch-1 forward {dt:.2f} s")
    assert y.shape == (1, 768) and torch.isfinite(y).all()
    assert dt < 10.0, f"batch-1 forward took {dt:.2f} s"


def test_batch_rows_are_independent():
    m = tiny_tower()
    x = torch.randn(3, 16, 201)
    with torch.no_grad():
        together = m(x)
        alone = torch.cat([m(x[i:i + 1]) for i in range(3)])
    diff = (together - alone).abs().max().item()
    assert diff < 1e-5, f"batched vs one-by-one max abs diff {diff:.3g}"


def reference_fold(x, spec_size, freq_ratio):
    """msclap's reshape_wav2img, step by step: (B, 1, T, F) -> (B, 1, S, S)."""
    b, c, t, f = x.shape
    x = F.interpolate(x, (spec_size * freq_ratio, f), mode="bicubic", align_corners=True)
    x = x.permute(0, 1, 3, 2)                                       # B C F T
    x = x.reshape(b, c, f, freq_ratio, x.shape[3] // freq_ratio)    # B C F r T/r
    x = x.permute(0, 1, 3, 2, 4)                                    # B C r F T/r
    return x.reshape(b, c, freq_ratio * f, x.shape[4])


def test_fold_matches_reference_layout():
    m = tiny_tower()
    x = torch.randn(2, 16, 201)
    ours = m.to_image(x)
    ref = reference_fold(x.transpose(1, 2).unsqueeze(1), 64, 4)
    assert ours.shape == (2, 1, 64, 64)
    diff = (ours - ref).abs().max().item()
    assert diff == 0.0, f"fold differs from the reference layout by {diff:.3g}"


def test_window_partition_round_trip():
    x = torch.randn(2, 8, 8, 3)
    w = window_partition(x, 4, 8, 8, 3)
    assert w.shape == (8, 16, 3)
    assert torch.equal(w[1].reshape(4, 4, 3), x[0, :4, 4:])          # second window: top right
    assert torch.equal(window_reverse(w, 4, 8, 8, 3), x)


def test_export_with_dynamic_batch():
    """No Python int is taken from the batch axis: torch.export accepts a symbolic batch."""
    m = tiny_tower()
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(m, (torch.randn(2, 16, 201),), dynamic_shapes={"mel_db": {0: batch}})
    x = torch.randn(5, 16, 201)
    with torch.no_grad():
        diff = (ep.module()(x) - m(x)).abs().max().item()
    assert diff < 1e-5, f"exported vs eager max abs diff {diff:.3g}"


def test_bad_inputs_are_value_errors():
    m = tiny_tower()
    with pytest.raises(ValueError, match=r"htsat input: expected \(B, 16, T\) dB frames, got \(1, 8, 201\)"):
        m(torch.randn(1, 8, 201))
    with pytest.raises(ValueError, match="htsat input: 300 frames; expected at most 256"):
        m(torch.randn(1, 16, 300))
    with pytest.raises(ValueError, match=r"htsat.spec_size \(64\) must be a multiple of frontend.n_mels \(24\)"):
        HTSAT(TINY, dataclasses.replace(TINY_FE, n_mels=24))
    with pytest.raises(ValueError, match="frontend gives 401 frames per clip; htsat takes at most 256"):
        HTSAT(TINY, dataclasses.replace(TINY_FE, clip_seconds=4.0))
    exact_cfg = dataclasses.replace(TINY, stretch_frames=False)
    with pytest.raises(ValueError, match=r"201 frames per clip; htsat takes exactly \(htsat.stretch_frames is off\) 256"):
        HTSAT(exact_cfg, TINY_FE)
    exact = HTSAT(exact_cfg, dataclasses.replace(TINY_FE, clip_seconds=2.55))   # 1 + 20400 // 80 = 256 frames
    with pytest.raises(ValueError, match="htsat input: 201 frames; expected exactly 256"):
        exact(torch.randn(1, 16, 201))
