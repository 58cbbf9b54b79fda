"""The shipped model's recipe (train/recipes/clap-rt-small.json) through `python -m train`, end to
end on a tiny synthetic corpus with the real pretrained parts; its copies of clips."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from clap_rt.checkpoints import load_model
from fakes import tone
from train.config import CopiesConfig
from train.copies import LEVEL_RANGE_DB, NOISE_SNR_DB, clip_copies, place_in_window
from train.corpus.noise import coloured_noise

RECIPE = "train/recipes/clap-rt-small.json"
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
                # Two training sources, so that one can be left out by --val-sources.
                source = f"synth-{split}" + ("-b" if split == "train" and i % 2 else "")
                rows.append({"path": path, "caption": caps[i % 3], "captions": caps, "label": label,
                             "source": source, "item": f"{label}-{split}-{i}", "split": split})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def recipe_args(corpus, out, *more):
    """The recipe at test size: 20 steps of batch 3 (one clip of each label), one MiniLM layer
    trained (its cached-state path is checked against the full tower before training)."""
    return ["--config", RECIPE, "--manifest", str(corpus / "manifest.jsonl"), "--out-dir", str(out),
            "--cache-dir", str(corpus / "cache"), "--steps", "20", "--batch-size", "3", "--warmup-steps", "2",
            "--text-layers", "1", "--val-sources", "synth-train-b", "--eval-every", "10",
            "--checkpoint-every", "10", "--torch-threads", "2", "--no-progress", *more]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root, np.random.default_rng(0))
    return root


@pytest.fixture(scope="module")
def run(corpus):
    """One uninterrupted run of the recipe."""
    from train.train import main
    out = corpus / "run"
    assert main(recipe_args(corpus, out)) == 0
    return out


def test_recipe_trains_the_last_block_and_layer_above_cached_prefixes(corpus, run):
    model, _ = load_model(run / "model")
    assert model.config.short_clips == "centre" and model.config.projection.dropout == 0.5
    meta = json.loads((run / "model" / "config.json").read_text())["meta"]
    assert meta["train_config"]["copies"] == {"copies": 2, "copy_noise": 0.5, "copy_place": 0.5}
    # The 1.5 s clips were cached centred, 3 windows at most, as the maps after the third block;
    # the copies of the 6 training clips in a folder of their own.
    folders = sorted(d.name.split("-", 1)[1] for d in (corpus / "cache").glob("*-shortcentre-*"))
    assert folders == ["shortcentre-block3-w3", "shortcentre-block3-w3-copies2-noise0.5-place0.5"], folders
    assert len(list((corpus / "cache").glob("*-copies2-noise0.5-place0.5/*.npy"))) == 6
    # Validation: the 6 training clips of the held-out source synth-train-b, all 3 labels.
    assert meta["eval"]["clips"] == 6 and meta["eval"]["classes"] == 3
    assert meta["eval"]["top1"] >= 5 / 6, f"validation top-1 {meta['eval']['top1']:.3f}"
    assert meta["best_step"] in (10, 20) and meta["attribution"][0].startswith("Audio tower initialised from aisfx")
    stored = load_file(run / "model" / "model.safetensors")
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # Only the trained MiniLM layer is stored; the frozen ones come from the package.
    text_keys = [k for k in stored if k.startswith("text.body.")]
    assert text_keys and all(k.startswith("text.body.encoder.layer.5.") for k in text_keys), text_keys[:3]
    # Frozen CNN blocks and the last block's BatchNorm statistics stay as aisfx's; the last block trained.
    from train.pretrained import load_aisfx_state
    aisfx = load_aisfx_state()
    for name, q in model.audio.state_dict().items():
        if name in aisfx and aisfx[name].is_floating_point() and (not name.startswith("blocks.3.") or "running" in name):
            assert torch.equal(aisfx[name].half().float(), q), f"{name} moved"
    assert not torch.equal(aisfx["blocks.3.conv1.weight"].half().float(), model.audio.blocks[3].conv1.weight)
    # The run's own train_config.json is a config file that gives the same configuration back.
    from train.train import parse_args
    assert parse_args(["--config", str(run / "train_config.json")]) == parse_args(recipe_args(corpus, run))


def test_label_batches_hold_one_clip_per_label_and_split_across_ranks():
    from train.data import Clip
    from train.prefix import LabelBatches
    clips = [Clip(path=f"/x/{i}.wav", captions=[f"cap {i}"], label=f"l{i % 5}") for i in range(20)]
    feats = [np.full((3, 2), i, np.float16) for i in range(20)]       # window values name the clip
    cache = {t: np.full((1 + len(t) % 3, 4), 1.0, np.float32) for c in clips for t in (*c.captions, f"the {c.label}")}
    one = LabelBatches(clips, feats, "the {}", cache, 4, 1, seed=3)
    two = [LabelBatches(clips, feats, "the {}", cache, 2, 2, seed=3).micro_batch(7, r) for r in (0, 1)]
    got = one.micro_batch(7, 0)
    assert torch.equal(got["feats"], torch.cat([b["feats"] for b in two])), "ranks do not split the global batch"
    owners = got["feats"][:, 0].int().tolist()
    assert len({o % 5 for o in owners}) == 4, f"two clips of one label in a batch: {owners}"
    lengths = got["state_mask"].sum(1)
    assert got["states"].shape == (4, int(lengths.max()), 4) and set(lengths.tolist()) <= {1.0, 2.0, 3.0}
    assert torch.equal(got["states"].abs().sum(2) > 0, got["state_mask"] > 0), "padding is not where the mask says"
    assert not torch.equal(got["feats"], one.micro_batch(8, 0)["feats"]), "every step draws the same batch"
    with pytest.raises(Exception, match="exceeds the 5 training labels"):
        LabelBatches(clips, feats, "the {}", cache, 3, 2, seed=3)


def test_resumed_recipe_ends_with_the_weights_of_the_uninterrupted_run(corpus, run, monkeypatch):
    """A run stopped after step 12 (checkpoint and best state of step 10 on disk), resumed with
    --resume auto, saves the same bytes as the run that was never stopped."""
    import train.train as tt
    out = corpus / "stopped"
    update = tt.Trainer.apply_update

    def stop_after_12(self):
        if self.step == 12:
            raise KeyboardInterrupt
        return update(self)
    monkeypatch.setattr(tt.Trainer, "apply_update", stop_after_12)
    assert tt.main(recipe_args(corpus, out)) == 130
    assert (out / "checkpoints" / "latest").read_text() == "step-00000010" and not (out / "model").exists()
    monkeypatch.setattr(tt.Trainer, "apply_update", update)
    assert tt.main(recipe_args(corpus, out, "--resume", "auto")) == 0
    ref, got = load_file(run / "model" / "model.safetensors"), load_file(out / "model" / "model.safetensors")
    assert ref.keys() == got.keys()
    worst = max(float((ref[k].float() - got[k].float()).abs().max()) for k in ref)
    assert all(torch.equal(ref[k], got[k]) for k in ref), f"resumed weights differ (max abs diff {worst:g})"
    assert json.loads((out / "model" / "config.json").read_text())["meta"]["best_step"] == \
        json.loads((run / "model" / "config.json").read_text())["meta"]["best_step"]


def test_recipe_flags_name_what_is_wrong(corpus, tmp_path, capsys):
    from train.train import main
    assert main(recipe_args(corpus, tmp_path / "x", "--val-sources", "synth-nope")) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "python -m train.train: error: --val-sources: no training clips from 'synth-nope'; "
        "expected some of synth-train, synth-train-b")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"optim": {"stepz": 3}}))
    assert main(["--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"--config {bad}: unknown field optim.stepz; expected one of "
                                                    "steps, batch_size, accum_steps, lr, min_lr_ratio, warmup_steps, "
                                                    "weight_decay, betas, eps, tower_lr_scale, grad_clip, max_logit_scale")
    bad.write_text(json.dumps({"optim": {"steps": "many"}}))
    assert main(["--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"--config {bad}: optim.steps: expected int, got 'many'")
    assert main(["--preset", "clap-rt-small", "--manifest", "m.jsonl", "--audio-blocks", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "--audio-blocks and --text-layers: give both (the frozen-prefix path) or neither")


def test_clip_copies_are_reproducible_and_in_range():
    clip = 0.01 * tone(440, 1.0)
    plan = CopiesConfig(3)
    a, b = clip_copies(clip, "clips/x.wav", plan), clip_copies(clip, "clips/x.wav", plan)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)), "same key, different copies"
    peaks = [20 * np.log10(np.abs(x).max()) for x in a]
    lo, hi = LEVEL_RANGE_DB
    assert all(lo - 1e-3 <= p <= hi + 1e-3 for p in peaks), f"peaks {peaks} outside {lo}..{hi} dBFS"
    assert max(peaks) - min(peaks) > 1.0, f"copies at nearly one level: {peaks}"
    other = clip_copies(clip, "clips/y.wav", plan)
    assert not np.array_equal(a[0], other[0]), "another clip got the same levels"


def test_noisy_copies_hold_their_snr():
    clip = tone(440, 1.0)
    lo, hi = NOISE_SNR_DB
    for copy in clip_copies(clip, "clips/x.wav", CopiesConfig(6, copy_noise=1.0)):
        gain = float(copy @ clip / (clip @ clip))       # the level change, noise being uncorrelated
        residual = copy - gain * clip
        snr = 10 * np.log10(np.mean((gain * clip) ** 2) / np.mean(residual ** 2))
        assert lo - 0.5 <= snr <= hi + 0.5, f"SNR {snr:.2f} dB outside {lo}..{hi}"
    pink = coloured_noise(2 ** 16, 1.0, np.random.default_rng(0))
    spec = np.abs(np.fft.rfft(pink)) ** 2
    low, high = spec[100:200].mean(), spec[10000:20000].mean()     # ~100x apart in frequency
    assert 30 < low / high < 300, f"pink noise power ratio {low / high:.1f} over a 100x frequency span"


def test_placed_copies_hold_the_clip_once_in_silence():
    rng = np.random.default_rng(0)
    hit = np.linspace(1.0, 2.0, 22_050, dtype=np.float32)   # 0.5 s, no zero sample
    starts = set()
    for _ in range(50):
        out = place_in_window(hit, 88_200, rng)
        assert out.shape == (88_200,)
        start = int(np.flatnonzero(out)[0])
        kept = min(len(hit), 88_200 - start)
        assert np.array_equal(out[start:start + kept], hit[:kept]), "not the clip, once"
        assert not out[start + kept:].any() and kept >= len(hit) // 2
        starts.add(start)
    assert len(starts) > 40 and max(starts) > 70_000, "offsets not spread over the window"
    long = np.linspace(1.0, 2.0, 132_300, dtype=np.float32)  # 3 s, longer than the window: cut, not repeated
    out = place_in_window(long, 88_200, np.random.default_rng(1))
    start = int(np.flatnonzero(out)[0])
    assert start <= 44_100 and np.array_equal(out[start:], long[:88_200 - start])
    copies = clip_copies(hit, "clips/x.wav", CopiesConfig(4, copy_place=1.0), window=88_200)
    assert all(c.shape == (88_200,) for c in copies)
