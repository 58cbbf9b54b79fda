"""The core API: deterministic embeddings, mono mixing, windows, checkpoints, labels, text and audio pooling."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from clap_rt.audio import fit_windows
from clap_rt.checkpoints import load_model, load_state_strict, save_model
from clap_rt.errors import UserError
from clap_rt.pooling import pool_windows, window_power
from clap_rt.zeroshot import Clap, parse_labels
from fakes import tone


@pytest.fixture(scope="module")
def clap(tiny_model_dir):
    return Clap.load(tiny_model_dir, backend="torch")


def test_same_file_same_embedding(clap, audio_dir):
    a = clap.embed_audio([audio_dir / "long.wav"])
    b = clap.embed_audio([audio_dir / "long.wav"])
    assert np.array_equal(a, b)
    assert abs(float(np.linalg.norm(a[0])) - 1.0) < 1e-5


def test_stereo_gives_embedding_of_mono_mix(clap, tmp_path):
    left, right = tone(300, 1.2), 0.3 * tone(1700, 1.2)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    sf.write(tmp_path / "mono.wav", (left + right) / 2, 44100, subtype="FLOAT")
    s, m = clap.embed_audio([tmp_path / "stereo.wav", tmp_path / "mono.wav"])
    cos = float(s @ m)
    assert cos >= 0.99999, f"stereo vs mono-mix cosine {cos:.8f}"


def test_array_input_matches_file_and_resamples(clap, audio_dir):
    x, sr = sf.read(audio_dir / "high.wav", dtype="float32")
    from_file = clap.embed_audio([audio_dir / "high.wav"])[0]
    from_array = clap.embed_audio([x], sample_rate=sr)[0]
    assert float(from_file @ from_array) >= 0.99999


def test_fit_windows_repeat_pads_and_covers_long_clips():
    short = np.arange(1, 4, dtype=np.float32)
    assert fit_windows(short, 8).tolist() == [[1, 2, 3, 1, 2, 3, 0, 0]]
    long = np.arange(10, dtype=np.float32)
    w = fit_windows(long, 4)                     # hop 2: starts 0, 2, 4, 6
    assert [int(r[0]) for r in w] == [0, 2, 4, 6]
    w = fit_windows(np.arange(11, dtype=np.float32), 4)   # end-aligned last window
    assert [int(r[0]) for r in w] == [0, 2, 4, 6, 7]
    assert fit_windows(short, 8, short="centre").tolist() == [[0, 0, 1, 2, 3, 0, 0, 0]]
    assert fit_windows(long, 4, short="centre").tolist() == w[:4].tolist()    # long clips: unchanged
    with pytest.raises(ValueError, match="short: expected one of \\('repeat', 'centre'\\), got 'tile'"):
        fit_windows(short, 8, short="tile")


def test_embed_audio_fills_short_clips_as_the_model_was_trained(clap):
    x = tone(1000, 0.5, amp=0.3)                                    # a quarter of the 2 s window
    W = clap.frontend.clip_samples
    repeated = clap.embed_audio([x], sample_rate=44100)[0]
    assert float(repeated @ clap.embed_windows(fit_windows(x, W))[0]) > 0.99999
    clap.config.short_clips = "centre"
    try:
        centred = clap.embed_audio([x], sample_rate=44100)[0]
    finally:
        clap.config.short_clips = "repeat"
    silence = np.zeros(W, np.float32)
    silence[(W - len(x)) // 2:][:len(x)] = x
    assert float(centred @ clap.embed_windows(silence[None])[0]) > 0.99999
    assert float(centred @ repeated) < 0.9999, "the test needs fills that embed differently"


def test_prompt_ensemble_averages_unit_template_embeddings(clap):
    labels = ["dog", "siren"]
    assert clap.config.prompt_ensemble == ()
    single = clap.label_embeddings(labels)
    assert np.abs(single - clap.embed_text([clap.config.prompt_template.format(x) for x in labels])).max() < 1e-6
    clap.config.prompt_ensemble = ("{}", "a recording of {}")
    try:
        ens = clap.label_embeddings(labels)
    finally:
        clap.config.prompt_ensemble = ()
    parts = [clap.embed_text([t.format(x) for x in labels]) for t in (clap.config.prompt_template, "{}", "a recording of {}")]
    mean = np.mean(parts, axis=0)
    assert np.abs(ens - mean / np.linalg.norm(mean, axis=1, keepdims=True)).max() < 1e-6
    assert np.allclose(np.linalg.norm(ens, axis=1), 1.0, atol=1e-6)
    assert np.abs(ens - single).max() > 1e-3, "the test needs templates that embed differently"
    from train.evaluate import class_embeddings     # the evaluator embeds labels as Clap does
    clap.config.prompt_ensemble = ("{}", "a recording of {}")
    try:
        assert np.abs(class_embeddings(clap.model, clap.tokenizer, labels) - ens).max() < 1e-5
    finally:
        clap.config.prompt_ensemble = ()
    # An explicit template overrides the ensemble.
    assert np.abs(clap.label_embeddings(labels, "{}") - parts[1]).max() < 1e-6


def test_checkpoint_round_trip_and_strict_errors(tiny_model_dir, tmp_path):
    model, tok = load_model(tiny_model_dir)
    model.config.event_thresholds, model.config.short_clips = (0.7, 0.49), "centre"
    out = save_model(model, tmp_path / "copy", tok)
    again, _ = load_model(out)
    assert again.config == model.config and again.config.event_thresholds == (0.7, 0.49)
    assert again.config.short_clips == "centre"
    mel = torch.randn(2, model.config.frontend.n_mels, 40)
    with torch.no_grad():
        assert torch.equal(model.encode_audio(mel), again.encode_audio(mel))
    # A config written before a field existed loads with the field's default.
    cfg = json.loads((out / "config.json").read_text())
    del cfg["model"]["event_thresholds"], cfg["model"]["short_clips"]
    (out / "config.json").write_text(json.dumps(cfg))
    assert load_model(out)[0].config.event_thresholds == (0.5, 0.35)
    assert load_model(out)[0].config.short_clips == "repeat"
    cfg["model"]["short_clips"] = "tile"
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError) as e:
        load_model(out)
    assert str(e.value) == f"{out / 'config.json'}: short_clips: expected one of repeat, centre, found 'tile'"
    cfg["model"]["short_clips"], cfg["model"]["prompt_ensemble"] = "repeat", ["{} sound", "a dog"]
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError) as e:
        load_model(out)
    assert str(e.value) == (f"{out / 'config.json'}: prompt templates: expected a '{{}}' placeholder "
                            "for the label and no other field, got 'a dog'")
    # Saved files get the permissions of any new file, not mkstemp's private 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert {f.name: f.stat().st_mode & 0o777 for f in out.iterdir()} == \
        {n: 0o666 & ~umask for n in ("config.json", "model.safetensors", "tokenizer.json")}
    state = model.state_dict()
    state.pop("logit_scale")
    with pytest.raises(ValueError, match=r"missing keys \['logit_scale'\]"):
        load_state_strict(again, state, "x.safetensors")
    state = dict(model.state_dict(), extra_weight=torch.zeros(1))
    with pytest.raises(ValueError, match=r"unexpected keys \['extra_weight'\]"):
        load_state_strict(again, state, "x.safetensors")
    cfg = json.loads((out / "config.json").read_text())
    cfg["format"] = "other"
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="expected format 'clap_rt', found 'other'"):
        load_model(out)


def test_pool_windows_takes_the_loudest_window_by_mean_power_or_the_mean():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
    steady = np.full((4, 3), -10.0)                 # mean power 0.1
    hit = np.full((4, 3), -40.0)
    hit[0, 0] = 10.0                                # one loud bin: mean power (10 + 11e-4) / 12
    faint = np.full((4, 3), -30.0)
    mel = np.stack([steady, hit, faint])
    assert np.allclose(window_power(mel), [0.1, (10 + 11e-4) / 12, 1e-3])
    assert pool_windows(emb, mel).tolist() == [0.0, 1.0]        # the hit, though its mean dB is lowest
    mean = emb.mean(axis=0) / np.linalg.norm(emb.mean(axis=0))
    assert np.allclose(pool_windows(emb, mel, "mean"), mean, atol=1e-7)
    with pytest.raises(ValueError, match="pooling: expected one of loudest, mean, got 'max'"):
        pool_windows(emb, mel, "max")


def test_embed_audio_pools_the_loud_window_or_all_windows(clap):
    # 4 s: a loud 3 kHz tone, then a faint 220 Hz one -> windows at 0, 1 and 2 s (hop 1 s).
    x = np.concatenate([tone(3000, 2.0, amp=0.5), tone(220, 2.0, amp=0.005)])
    windows = fit_windows(x, clap.frontend.clip_samples)
    each = clap.embed_windows(windows)                              # (3, dim)
    loudest = clap.embed_audio([x], sample_rate=44100)[0]
    assert float(loudest @ each[0]) > 0.99999
    mean = each.mean(axis=0) / np.linalg.norm(each.mean(axis=0))
    assert float(clap.embed_audio([x], sample_rate=44100, pooling="mean")[0] @ mean) > 0.99999
    assert float(each[0] @ each[2]) < 0.999, "the test needs windows that embed differently"


def test_text_pooling_ignores_padding_and_exclamation_marks(clap):
    texts = ["dog", "a dog barking loudly in the yard", "glass breaking!"]
    together = clap.embed_text(texts)
    alone = np.concatenate([clap.embed_text([t]) for t in texts])
    assert np.abs(together - alone).max() < 1e-5


def test_classify_probabilities_are_a_distribution(clap, audio_dir):
    (r,) = clap.classify([audio_dir / "low.wav"], ["dog", "siren", "piano"])
    assert set(r.scores) == {"dog", "siren", "piano"}
    assert abs(sum(r.scores.values()) - 1.0) < 1e-5
    assert r.label == max(r.scores, key=r.scores.get) and r.score == r.scores[r.label]


def test_parse_labels_errors():
    assert parse_labels(" siren, glass breaking ,") == ["siren", "glass breaking"]
    with pytest.raises(UserError, match="--labels: expected at least one label"):
        parse_labels(" , ")
    with pytest.raises(UserError, match=r"--labels: duplicate labels \['dog'\]"):
        parse_labels("dog,cat,dog")


def test_sfx_cnn_pools_each_frequency_band_over_time():
    from clap_rt.config import FrontendConfig, SfxCNNConfig
    from clap_rt.model import SfxCNN
    fe = FrontendConfig(n_mels=56)                  # 7 bins after three 2x pools
    # A map whose value is its frequency bin plus 100 x its frame: 7 bins split 3 + 2 + 2.
    x = (torch.arange(7.0)[None, :] + 100 * torch.arange(4.0)[:, None]).expand(1, 2, 4, 7)
    bands = SfxCNN(SfxCNNConfig(channels=(2, 2, 2, 2), pooling="meanmax", freq_bands=3), fe)
    assert bands.pool(x).tolist() == [[301, 301, 303.5, 303.5, 305.5, 305.5,       # max over frames
                                       151, 151, 153.5, 153.5, 155.5, 155.5]]     # mean over frames
    whole = SfxCNN(SfxCNNConfig(channels=(2, 2, 2, 2), pooling="max"), fe)
    assert whole.pool(x).tolist() == [[303, 303]]
    with pytest.raises(ValueError, match=r"audio.sfx_cnn.freq_bands: 8; expected 1 to 7 "
                                         r"\(the last block keeps 7 frequency bins of 56 mels\)"):
        SfxCNN(SfxCNNConfig(channels=(2, 2, 2, 2), freq_bands=8), fe)
