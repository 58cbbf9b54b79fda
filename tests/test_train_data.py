"""Config -> CLI flags, manifests, the feature cache, augmentation and the metric functions."""
import json

import numpy as np
import pytest

from clap_rt.errors import UserError


def test_flags_are_generated_from_the_dataclass():
    import argparse
    from train.config import TrainConfig, add_config_args, config_from_args
    p = argparse.ArgumentParser()
    add_config_args(p, TrainConfig)
    cfg = config_from_args(p.parse_args(["--preset", "clap-rt-small", "--freeze-text", "--no-amp",
                                         "--batch-size", "7", "--noise-snr-db", "5", "15", "--lr", "1e-3"]),
                           TrainConfig)
    assert (cfg.model.preset, cfg.model.freeze_text, cfg.amp) == ("clap-rt-small", True, False)
    assert (cfg.optim.batch_size, cfg.optim.lr, cfg.augment.noise_snr_db) == (7, 1e-3, (5.0, 15.0))
    assert config_from_args(p.parse_args([]), TrainConfig) == TrainConfig()


def test_model_source_must_be_exactly_one(capsys):
    from train.train import main
    assert main(["--manifest", "m.csv", "--preset", "clap-rt-small", "--init", "x"]) == 2
    assert capsys.readouterr().err.strip() == ("python -m train.train: error: model: expected exactly one of "
                                               "--preset, --model-config, --init; got --preset, --init")


def test_csv_and_jsonl_manifests_agree(tmp_path):
    from train.data import read_manifest
    (tmp_path / "m.csv").write_text("path,caption,captions,start,end,split,label\n"
                                    "a.wav,a dog,a dog | a dog barking,1.5,3,test,dog\n"
                                    "/abs/b.wav,rain,,,,,\n")
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"path": "a.wav", "caption": "a dog", "captions": ["a dog", "a dog barking"], "start": 1.5,
                    "end": 3, "split": "test", "label": "dog"}) + "\n\n"
        + json.dumps({"path": "/abs/b.wav", "caption": "rain"}) + "\n")
    a, b = read_manifest(tmp_path / "m.csv"), read_manifest(tmp_path / "m.jsonl")
    assert a == b
    assert a[0].path == str(tmp_path / "a.wav") and a[0].captions == ["a dog", "a dog barking"]
    assert (a[0].start, a[0].end, a[0].split, a[0].label) == (1.5, 3.0, "test", "dog")
    assert (a[1].path, a[1].captions, a[1].end, a[1].split) == ("/abs/b.wav", ["rain"], None, "train")


@pytest.mark.parametrize("line,message", [
    ('{"caption": "x"}', "m.jsonl:1: missing field 'path'"),
    ('{"path": "a.wav"}', "m.jsonl:1: missing field 'caption' (or a non-empty 'captions')"),
    ('{"path": "a.wav", "caption": "x", "start": 2, "end": 1}', "m.jsonl:1: expected 0 <= start < end, got start=2.0, end=1.0"),
    ('{"path": "a.wav", "caption": "x", "lbl": 1}', "m.jsonl:1: unknown fields ['lbl']; expected some of "
     "['caption', 'captions', 'category', 'corpus_label', 'end', 'family', 'item', 'label', 'member', 'package', "
     "'package_path', 'path', 'seconds', 'source', 'split', 'start', 'version']"),
])
def test_manifest_errors_name_the_line_and_field(tmp_path, line, message):
    from train.data import read_manifest
    (tmp_path / "m.jsonl").write_text(line + "\n")
    with pytest.raises(UserError) as e:
        read_manifest(tmp_path / "m.jsonl")
    assert str(e.value) == f"{tmp_path}/{message}"


def test_corpus_and_benchmark_rows_read_as_training_manifests(tmp_path):
    from train.corpus.manifest import write_manifest
    from train.data import read_manifest
    row = {"path": "clips/x/door_0.wav", "caption": "a door slamming", "captions": ["a door slamming", "a door"],
           "label": "door", "corpus_label": "door slam", "source": "x", "item": "x:door", "split": "test",
           "seconds": 1.0, "package": "x", "version": "1", "package_path": "/usr/share/x/door.ogg", "member": "",
           "family": "domestic", "category": "door"}
    write_manifest(str(tmp_path / "benchmark.jsonl"), [row])
    clip, = read_manifest(tmp_path / "benchmark.jsonl")
    assert (clip.label, clip.captions, clip.split) == ("door", ["a door slamming", "a door"], "test")


def test_feature_cache_matches_frontend_and_rebuilds(tmp_path):
    import soundfile as sf
    from clap_rt.audio import fit_windows
    from clap_rt.config import FrontendConfig
    from clap_rt.frontend import log_mel
    from train.data import Clip, FeatureCache
    fe = FrontendConfig(sample_rate=8000, clip_seconds=0.5, n_fft=256, win_length=256, hop_length=128,
                        n_mels=16, fmin=0.0, fmax=4000.0)
    audio = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    sf.write(tmp_path / "x.wav", audio, 8000, subtype="FLOAT")
    clip = Clip(path=str(tmp_path / "x.wav"), captions=["x"], start=0.25, end=1.0)
    cache = FeatureCache(fe, tmp_path / "cache")
    got = np.asarray(cache.get(clip))
    ref = log_mel(fit_windows(audio[2000:8000], fe.clip_samples), fe)
    assert got.shape == ref.shape == (2, 16, fe.n_frames), got.shape   # 0.75 s -> windows at 0 and 0.25 s
    assert np.abs(got - ref).max() < 1e-4, f"cached features differ by {np.abs(got - ref).max():.2e} dB"
    path = cache.file_for(clip)
    assert path.parent.parent == tmp_path / "cache" and list(path.parent.iterdir()) == [path]
    path.unlink()                                        # missing -> rebuilt
    assert np.array_equal(np.asarray(cache.get(clip)), got)
    other = FeatureCache(FrontendConfig(**{**fe.__dict__, "n_mels": 8}), tmp_path / "cache")
    assert other.file_for(clip).parent != path.parent    # another recipe, another folder
    short = Clip(path=str(tmp_path / "x.wav"), captions=["x"], start=0.0, end=0.2)     # under one window
    centred = FeatureCache(fe, tmp_path / "cache", short="centre")
    assert centred.file_for(short).parent == path.parent.with_name(path.parent.name + "-shortcentre")
    ref = log_mel(fit_windows(audio[:1600], fe.clip_samples, short="centre"), fe)
    assert np.abs(np.asarray(centred.get(short)) - ref).max() < 1e-4
    assert np.abs(np.asarray(cache.get(short)) - ref).max() > 1.0, "the test needs fills that differ"


def test_power_domain_mixing_and_gain():
    from train.augment import add_noise, mean_power_db, power_sum_db
    a, b = np.full((2, 3), -10.0, np.float32), np.full((2, 3), -10.0, np.float32)
    s = power_sum_db(a, b)                               # two equal powers: +3.0103 dB
    assert np.abs(s - (-10 + 10 * np.log10(2))).max() < 1e-5, s
    assert abs(mean_power_db(np.array([[0.0, 10.0]])) - 10 * np.log10(5.5)) < 1e-9
    rng = np.random.default_rng(0)
    noisy = add_noise(np.zeros((32, 400), np.float32), 20.0, rng)      # 0 dB clip, SNR 20 dB
    excess = mean_power_db(noisy) - 0.0                  # expected 10 log10(1 + 10^-2) = 0.0432 dB
    assert abs(excess - 0.0432) < 0.01, f"noise raised the mean power by {excess:.4f} dB, expected 0.0432"


def test_augmenter_mixes_with_joined_caption_and_is_seeded():
    from train.augment import Augmenter
    from train.config import AugmentConfig
    aug = Augmenter(AugmentConfig(mix_prob=1.0, noise_prob=0.0, shift_prob=0.0, freq_masks=0, time_masks=0,
                                  gain_db=0.0))
    mel = np.full((4, 5), -20.0, np.float32)
    partner = lambda rng: (np.full((4, 5), -20.0, np.float32), "rain")   # noqa: E731
    out, cap = aug(mel, "a dog barking", np.random.default_rng(1), partner)
    assert cap == "a dog barking and rain"
    # partner at -20 + u dB, u in [-6, 6]: the sum is 0.97 .. 6.97 dB louder
    assert np.all(out > -20.0 + 0.97) and np.all(out < -20.0 + 6.98), out
    full = Augmenter(AugmentConfig(mix_prob=0.0, noise_prob=1.0, shift_prob=1.0))
    x = np.random.default_rng(2).normal(-30, 10, (16, 40)).astype(np.float32)
    o1, _ = full(x, "c", np.random.default_rng(5))
    o2, _ = full(x, "c", np.random.default_rng(5))
    assert np.array_equal(o1, o2) and not np.array_equal(o1, x)


def test_batches_do_not_depend_on_world_size():
    from train.data import Clip, TrainBatches
    tok = lambda caps: (np.array([[len(c)] for c in caps]), np.ones((len(caps), 1)))   # noqa: E731
    clips = [Clip(path=str(i), captions=[f"c{i}", f"d{i}"]) for i in range(10)]
    feats = [np.full((3, 2, 4), float(i), np.float32) for i in range(10)]
    one = TrainBatches(clips, feats, tok, 6, 1, seed=3).micro_batch(4, 0)
    two = [TrainBatches(clips, feats, tok, 3, 2, seed=3).micro_batch(4, r) for r in (0, 1)]
    assert one["index"].tolist() == two[0]["index"].tolist() + two[1]["index"].tolist()
    assert np.array_equal(one["mel"].numpy(), np.concatenate([t["mel"].numpy() for t in two]))
    # One epoch = 10 clips: micro-batches 0 and 1 (12 samples) cover every clip.
    b = TrainBatches(clips, feats, tok, 6, 1, seed=3)
    seen = b.micro_batch(0, 0)["index"].tolist() + b.micro_batch(1, 0)["index"].tolist()[:4]
    assert sorted(seen) == list(range(10))


def test_metric_functions_on_known_embeddings():
    from train.evaluate import confusion_matrix, retrieval_recalls, zero_shot_scores
    e = np.eye(4, dtype=np.float32)
    audio = np.stack([e[0], e[1], e[2], (e[0] + e[3]) / np.sqrt(2)]).astype(np.float32)
    # Audio 3 is half class 0: exact tie with class 3 counts as correct, so top1 = 1.
    assert zero_shot_scores(audio, e, np.array([0, 1, 2, 3])) == {"top1": 1.0, "top5": 1.0, "per_class": 1.0}
    wrong_first = zero_shot_scores(audio, e, np.array([1, 1, 2, 3]), ks=(1, 2))
    assert wrong_first["top1"] == 0.75
    assert abs(wrong_first["per_class"] - (0.5 + 1 + 1) / 3) < 1e-12     # class 1: one of its two right
    text = np.stack([e[0], e[1], e[2], e[3], e[1]])        # caption 4 (of audio 0) looks like audio 1
    r = retrieval_recalls(audio, text, np.array([0, 1, 2, 3, 0]), ks=(1, 2))
    assert r == {"t2a_R@1": 0.8, "t2a_R@2": 1.0, "a2t_R@1": 1.0, "a2t_R@2": 1.0}, r
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), 2)
    assert cm.tolist() == [[1, 1], [0, 1]]
