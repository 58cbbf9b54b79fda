"""The default-model recipe end to end on a tiny synthetic corpus (real pretrained parts)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

import train.default_model as recipe
from clap_rt.checkpoints import load_model
from fakes import tone
from train.corpus.noise import coloured_noise

CLASSES = {
    "low tone": ["a low tone", "a deep hum", "low pitched tone"],
    "noise": ["white noise", "hissing noise", "static noise"],
    "beep": ["a high beep", "a high pitched beep", "short high tone"],
}


def make_corpus(root, rng):
    """4 train, 2 val and 2 test clips per class; each split has its own source items."""
    rows = []
    for label, caps in CLASSES.items():
        for split, n in (("train", 4), ("val", 2), ("test", 2)):
            for i in range(n):
                if label == "low tone":
                    x = tone(rng.uniform(90, 160), 1.5)
                elif label == "noise":
                    x = (0.2 * rng.standard_normal(int(1.5 * 44100))).astype(np.float32)
                else:
                    x = tone(rng.uniform(3000, 5000), 1.5)
                path = f"clips/{label.replace(' ', '_')}_{split}_{i}.wav"
                (root / "clips").mkdir(exist_ok=True)
                sf.write(root / path, x, 44100)
                # Two training sources, so that one can be left out for --val-source.
                source = f"synth-{split}" + ("-b" if split == "train" and i % 2 else "")
                rows.append({"path": path, "caption": caps[i % 3], "captions": caps, "label": label,
                             "source": source, "item": f"{label}-{split}-{i}", "split": split})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_recipe_trains_projections_and_last_text_layer(tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "CACHE", tmp_path / "cache")
    make_corpus(tmp_path, np.random.default_rng(0))
    out = tmp_path / "model"
    # --text-layers 1 runs the cached-state text path, which main() checks against the full
    # text tower (cosine >= 0.9999) before training.
    args = ["fit", str(tmp_path), "--steps", "60", "--batch", "3", "--text-layers", "1",
            "--threads", "2", "--copies", "2", "--copy-semitones", "2", "--copy-eq", "6",
            "--copy-mix", "0.5", "--freq-bands", "3"]
    torch.manual_seed(123)                  # the recipe's --seed alone must fix the run
    assert recipe.main(args + ["-o", str(out)]) == 0
    torch.manual_seed(456)
    assert recipe.main(args + ["-o", str(tmp_path / "again")]) == 0
    from safetensors.torch import load_file
    first, again = load_file(out / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first), "same --seed, different weights"
    model, _ = load_model(out)
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["text_layers_trained"] == 1 and meta["pooling"] == "meanmax" and meta["copies"] == 2
    # Three frequency bands of the last CNN map, each pooled by max and mean over time.
    assert model.audio_projection.linear1.in_features == 512 * 3 * 2 and meta["freq_bands"] == 3
    # Stored in float16, loaded into float32.
    assert {v.dtype for v in first.values() if v.is_floating_point()} == {torch.float16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert len(list((tmp_path / "cache" / "audio-meanmax-bands3-copies2-pitch2-eq6-mix0.5").glob("*.npz"))) == 3, \
        "copies are cached per source (synth-train, synth-train-b, synth-val), apart from the plain features"
    test = meta["scores"]["test"]
    assert test["labels"] == 3 and test["clips"] == 6
    assert test["top1"] >= 5 / 6, f"held-out synthetic top-1 {test['top1']:.3f}"
    # Only the trained MiniLM layer is stored; the frozen ones come from the package.
    from safetensors import safe_open
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        text_keys = [k for k in f.keys() if k.startswith("text.body.")]
    assert text_keys and all(k.startswith("text.body.encoder.layer.5.") for k in text_keys), text_keys[:3]


def test_val_source_is_left_out_of_training_and_scored(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(recipe, "CACHE", tmp_path / "cache")
    make_corpus(tmp_path, np.random.default_rng(0))
    out = tmp_path / "model"
    assert recipe.main(["fit", str(tmp_path), "-o", str(out), "--steps", "40", "--batch", "3",
                        "--threads", "2", "--val-source", "synth-train-b", "--event-thresholds", "0.7,0.49",
                        "--short-clips", "centre"]) == 0
    config = load_model(out)[0].config
    assert config.event_thresholds == (0.7, 0.49) and config.short_clips == "centre"
    # The 1.5 s clips were cached centred in their 2 s windows, apart from repeated ones.
    assert [d.name for d in (tmp_path / "cache").glob("audio-*")] == ["audio-meanmax-bands6-shortcentre"]
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["val_source"] == "synth-train-b"
    assert meta["clips"]["train"] == 6 and meta["clips"]["val"] == 6, meta["clips"]
    assert meta["scores"]["val"]["clips"] == 6 and meta["scores"]["val"]["labels"] == 3
    with pytest.raises(SystemExit) as exit_:
        recipe.main(["fit", str(tmp_path), "--val-source", "synth-nope"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "--val-source: no training clips from 'synth-nope'; expected some of synth-train, synth-train-b")
    with pytest.raises(SystemExit) as exit_:
        recipe.main(["fit", str(tmp_path), "--event-thresholds", "0.4,0.6"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "--event-thresholds 0.4,0.6: expected 0 < OFF <= ON < 1")
    with pytest.raises(SystemExit) as exit_:
        recipe.main(["fit", str(tmp_path), "--freq-bands", "13"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "audio.sfx_cnn.freq_bands: 13; expected 1 to 12 (the last block keeps 12 frequency bins of 96 mels)")


def test_clip_copies_are_reproducible_and_in_range():
    clip = 0.01 * tone(440, 1.0)
    a, b = recipe.clip_copies(clip, "clips/x.wav", recipe.Copies(3)), recipe.clip_copies(clip, "clips/x.wav", recipe.Copies(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b)), "same key, different copies"
    peaks = [20 * np.log10(np.abs(x).max()) for x in a]
    lo, hi = recipe.LEVEL_RANGE_DB
    assert all(lo - 1e-3 <= p <= hi + 1e-3 for p in peaks), f"peaks {peaks} outside {lo}..{hi} dBFS"
    assert max(peaks) - min(peaks) > 1.0, f"copies at nearly one level: {peaks}"
    other = recipe.clip_copies(clip, "clips/y.wav", recipe.Copies(3))
    assert not np.array_equal(a[0], other[0]), "another clip got the same levels"


def test_clip_copies_change_speed_within_the_semitone_range():
    clip = tone(440, 1.0)
    for copy in recipe.clip_copies(clip, "clips/x.wav", recipe.Copies(4, semitones=2.0)):
        ratio = len(clip) / len(copy)             # played faster -> shorter and higher
        assert 2 ** (-2 / 12) - 1e-3 <= ratio <= 2 ** (2 / 12) + 1e-3, f"speed ratio {ratio:.4f}"
        spectrum = np.abs(np.fft.rfft(copy))
        freq = np.argmax(spectrum) * 44100 / len(copy)
        assert abs(freq / 440 - ratio) < 0.01, f"pitch moved by {freq / 440:.4f}, length by {ratio:.4f}"


def test_noisy_copies_hold_their_snr():
    clip = tone(440, 1.0)
    copies = recipe.clip_copies(clip, "clips/x.wav", recipe.Copies(6, noise=1.0))
    lo, hi = recipe.NOISE_SNR_DB
    for copy in copies:
        gain = float(copy @ clip / (clip @ clip))       # the level change, noise being uncorrelated
        residual = copy - gain * clip
        snr = 10 * np.log10(np.mean((gain * clip) ** 2) / np.mean(residual ** 2))
        assert lo - 0.5 <= snr <= hi + 0.5, f"SNR {snr:.2f} dB outside {lo}..{hi}"
    pink = coloured_noise(2 ** 16, 1.0, np.random.default_rng(0))
    spec = np.abs(np.fft.rfft(pink)) ** 2
    low, high = spec[100:200].mean(), spec[10000:20000].mean()     # ~100x apart in frequency
    assert 30 < low / high < 300, f"pink noise power ratio {low / high:.1f} over a 100x frequency span"


def test_random_eq_applies_the_drawn_gain_at_each_anchor():
    sr, seconds = 44100, 1.0
    anchors = recipe.EQ_ANCHORS_HZ
    clip = sum(tone(f, seconds) for f in anchors)         # one partial on each anchor
    out = recipe.random_eq(clip, 9.0, np.random.default_rng(7), sr)
    gains = np.random.default_rng(7).uniform(-9.0, 9.0, len(anchors))
    spec_in, spec_out = np.abs(np.fft.rfft(clip)), np.abs(np.fft.rfft(out))
    for f, g in zip(anchors, gains):
        k = int(round(f * seconds))                       # 1 Hz bins: each partial on a bin
        measured = 20 * np.log10(spec_out[k] / spec_in[k])
        assert abs(measured - g) < 0.05, f"{f:g} Hz: gain {measured:.2f} dB, drawn {g:.2f} dB"
    assert np.allclose(recipe.random_eq(clip, 0.0, np.random.default_rng(7), sr), clip, atol=1e-6)


def test_mixed_copies_add_a_partner_clip_at_most_6_db_under():
    clip, other = tone(440, 1.0), tone(660, 1.5)
    copies = recipe.clip_copies(clip, "clips/x.wav", recipe.Copies(4, mix=1.0), partner=lambda rng: other)
    basis = np.stack([np.pad(clip, (0, len(other) - len(clip))), other], axis=1)     # (T, 2)
    for copy in copies:
        assert len(copy) == len(other), "a mix lasts as long as the longer clip"
        (a, b), *_ = np.linalg.lstsq(basis, copy, rcond=None)
        assert np.allclose(basis @ [a, b], copy, atol=1e-5), "not a sum of the two clips"
        assert -6.01 <= 20 * np.log10(b / a) <= 0.01, f"partner at {20 * np.log10(b / a):.2f} dB"
    assert recipe.clip_copies(clip, "clips/x.wav", recipe.Copies(2, mix=1.0), partner=None)[0].shape == clip.shape


def test_placed_copies_hold_the_clip_once_in_silence():
    rng = np.random.default_rng(0)
    hit = np.linspace(1.0, 2.0, 22_050, dtype=np.float32)   # 0.5 s, no zero sample
    starts = set()
    for _ in range(50):
        out = recipe.place_in_window(hit, 88_200, rng)
        assert out.shape == (88_200,)
        start = int(np.flatnonzero(out)[0])
        kept = min(len(hit), 88_200 - start)
        assert np.array_equal(out[start:start + kept], hit[:kept]), "not the clip, once"
        assert not out[start + kept:].any() and kept >= len(hit) // 2
        starts.add(start)
    assert len(starts) > 40 and max(starts) > 70_000, "offsets not spread over the window"
    long = np.linspace(1.0, 2.0, 132_300, dtype=np.float32)  # 3 s, longer than the window: cut, not repeated
    out = recipe.place_in_window(long, 88_200, np.random.default_rng(1))
    start = int(np.flatnonzero(out)[0])
    assert start <= 44_100 and np.array_equal(out[start:], long[:88_200 - start])
    copies = recipe.clip_copies(hit, "clips/x.wav", recipe.Copies(4, place=1.0), window=88_200)
    assert all(c.shape == (88_200,) for c in copies)


def test_room_impulse_decays_60_db_over_its_rt60_at_the_drawn_ratio():
    rng, sr = np.random.default_rng(3), 44100
    (t_lo, t_hi), (d_lo, d_hi) = recipe.REVERB_RT60_S, recipe.REVERB_DRR_DB
    for _ in range(20):
        h = recipe.room_impulse(rng, sr)
        assert h[0] == 1.0 and t_lo * sr - 1 <= len(h) <= t_hi * sr, f"{len(h)} samples"
        drr = -10 * np.log10(np.sum(h[1:].astype(np.float64) ** 2))
        assert d_lo - 0.01 <= drr <= d_hi + 0.01, f"direct-to-reverberant {drr:.2f} dB"
        tenth = len(h) // 10                   # energy of the first and last tenth of the tail
        drop = 10 * np.log10(np.sum(h[1:tenth] ** 2) / np.sum(h[-tenth:] ** 2))
        assert 45 < drop < 60, f"tail fell {drop:.1f} dB over 0.8 RT60 (54 dB expected)"


def test_reverberant_copies_ring_on_and_leave_other_draws_alone():
    clip = tone(440, 0.5)
    for copy in recipe.clip_copies(clip, "clips/x.wav", recipe.Copies(4, reverb=1.0)):
        tail = len(copy) - len(clip) + 1       # a full convolution grows by the impulse
        assert recipe.REVERB_RT60_S[0] * 44100 - 1 <= tail <= recipe.REVERB_RT60_S[1] * 44100
        assert np.abs(copy[len(clip):]).max() > 0.01 * np.abs(copy).max(), "no tail after the clip"
    # Without reverb the random stream is unchanged, so copies cached before the flag stay valid.
    plain = recipe.clip_copies(clip, "clips/x.wav", recipe.Copies(4, noise=0.5, place=0.5))
    same = recipe.clip_copies(clip, "clips/x.wav", recipe.Copies(4, noise=0.5, place=0.5, reverb=0.0))
    assert all(np.array_equal(a, b) for a, b in zip(plain, same))


def test_recipe_tunes_only_the_last_cnn_block(tmp_path, monkeypatch):
    monkeypatch.setattr(recipe, "CACHE", tmp_path / "cache")
    make_corpus(tmp_path, np.random.default_rng(0))
    out = tmp_path / "model"
    assert recipe.main(["fit", str(tmp_path), "-o", str(out), "--steps", "20", "--batch", "3",
                        "--threads", "2", "--audio-blocks", "1", "--with-val"]) == 0
    # The maps after the third block are cached (float16) and fed to the trained fourth.
    assert list((tmp_path / "cache" / "audio-block3").glob("*.npz"))
    tuned, _ = load_model(out)
    start = recipe.base_model()                     # aisfx weights, as the recipe starts
    stored = lambda t: t.half().float()             # noqa: E731  the recipe stores float16
    for i, (a, b) in enumerate(zip(start.audio.blocks, tuned.audio.blocks)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            if p.is_floating_point() and (i < 3 or "running" in name):
                # Frozen blocks, and the last block's BatchNorm statistics, stay as aisfx's.
                assert torch.equal(stored(p), q), f"block {i} {name} moved"
        if i == 3:
            assert not torch.equal(stored(a.conv1.weight), b.conv1.weight), "the last block did not train"
    assert json.loads((out / "config.json").read_text())["meta"]["audio_blocks_trained"] == 1
