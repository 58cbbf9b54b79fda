"""Labels by example: sound windows, a pack saved and loaded, leave-one-out thresholds, mixed label sets."""
from __future__ import annotations

import types

import numpy as np
import pytest
import soundfile as sf
import torch

from clap_rt.checkpoints import model_fingerprint, save_model
from clap_rt.detect import fit_thresholds, open_set_scores
from clap_rt.enrol import add_examples, fit_pack, leave_one_out_peaks
from clap_rt.errors import UserError
from clap_rt.labelpack import LabelPack
from clap_rt.labelset import LabelSet
from clap_rt.pooling import sound_windows, window_power
from clap_rt.prototypes import label_scores, unit
from clap_rt.zeroshot import Clap
from fakes import tone

SR = 44100


@pytest.fixture(scope="module")
def clap(tiny_model_dir):
    return Clap.load(tiny_model_dir, backend="torch")


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """Three 1 s examples of a hum (220-240 Hz) and two of a whistle (3-3.2 kHz)."""
    d = tmp_path_factory.mktemp("examples")
    out = {"hum": [], "whistle": []}
    for i, f in enumerate((220, 230, 240)):
        sf.write(d / f"hum{i}.wav", tone(f, 1.0), SR)
        out["hum"].append(d / f"hum{i}.wav")
    for i, f in enumerate((3000, 3200)):
        sf.write(d / f"whistle{i}.wav", tone(f, 1.0, amp=0.3), SR)
        out["whistle"].append(d / f"whistle{i}.wav")
    return out


def test_sound_windows_keep_the_sound_not_the_silence_around_it(clap):
    from clap_rt.audio import fit_windows
    from clap_rt.frontend import log_mel
    x = np.zeros(6 * SR, np.float32)
    x[3 * SR:4 * SR] = tone(440, 1.0)                 # 2 s windows every 1 s: starts 0, 1, 2, 3, 4
    mel = log_mel(fit_windows(x, clap.frontend.clip_samples), clap.frontend)
    assert sound_windows(mel).tolist() == [2, 3]      # the two windows that hold the tone
    power_db = 10 * np.log10(window_power(mel))
    assert power_db[[0, 1, 4]].max() < power_db.max() - 10
    assert sound_windows(mel, within_db=1000).tolist() == [0, 1, 2, 3, 4]


def test_enrol_keeps_the_sound_windows_of_each_example(clap, examples, tmp_path):
    long = tmp_path / "long.wav"
    x = np.zeros(6 * SR, np.float32)
    x[3 * SR:4 * SR] = tone(230, 1.0)
    sf.write(long, x, SR)
    pack = clap.enrol("hum", [*examples["hum"], long])
    (label,) = pack.labels
    assert [e["windows"] for e in label.examples] == [1, 1, 1, 2]
    assert [e["seconds"] for e in label.examples] == [1.0, 1.0, 1.0, 6.0]
    assert label.example_ids.tolist() == [0, 1, 2, 3, 3]
    assert np.allclose(np.linalg.norm(label.prototypes, axis=1), 1, atol=1e-5)
    # The 1 s examples are the file's one (centred) window, embedded as classify embeds them.
    assert float(label.prototypes[0] @ clap.embed_audio([examples["hum"][0]])[0]) > 0.99999


def test_pack_saves_and_loads_unchanged(clap, examples, tmp_path):
    pack = clap.enrol("hum", examples["hum"], text="a low hum", text_weight=0.4)
    clap.enrol("whistle", examples["whistle"], pack=pack)
    path = tmp_path / "labels.clap"
    pack.save(path)
    got = LabelPack.load(path)
    assert got.names == ["hum", "whistle"] and got.path == str(path)
    assert (got.model_name, got.fingerprint, got.scoring) == ("tiny-test", clap.model_id, "logistic")
    assert np.array_equal(got.background, pack.background) and got.background_prompts == pack.background_prompts
    for a, b in zip(pack, got):
        assert np.array_equal(a.prototypes, b.prototypes) and np.array_equal(a.example_ids, b.example_ids)
        assert np.array_equal(a.vectors, b.vectors)
        assert (a.text, a.text_weight, a.on, a.off, a.note, a.examples) == (b.text, b.text_weight, b.on, b.off,
                                                                          b.note, b.examples)
    assert np.array_equal(got.labels[0].text_embedding, clap.label_embeddings(["a low hum"])[0])
    assert got.labels[1].text_embedding is None and got.labels[1].weight == 0.0
    got.save(tmp_path / "again.clap")
    assert (tmp_path / "again.clap").read_bytes() == path.read_bytes()


def test_fingerprint_names_the_weights(tiny_model_dir, tmp_path, clap):
    from clap_rt.checkpoints import load_model
    model, tok = load_model(tiny_model_dir)
    assert model_fingerprint(model) == clap.model_id and len(clap.model_id) == 16
    with torch.no_grad():
        model.audio_projection.linear1.weight[0, 0] += 1e-3
    other = model_fingerprint(model)
    assert other != clap.model_id
    save_model(model, tmp_path / "other", tok)
    assert Clap.load(tmp_path / "other", backend="torch").model_id == other


def fake_model(prompts: np.ndarray, logit_scale: float = 3.0):
    """What fit_pack reads of a model: the background prompts' embeddings and the logit scale."""
    return types.SimpleNamespace(label_embeddings=lambda texts, template=None: prompts, logit_scale=logit_scale)


def share(s, audio, prompts, scale):
    """A label's open-set share, computed here from the definition."""
    logits = scale * np.concatenate([s[:, None], audio @ prompts.T], axis=1)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p[:, 0] / p.sum(axis=1)


def test_thresholds_are_fitted_leave_one_out():
    prompts = np.array([[0.0, 0.0, 1.0]], np.float32)
    background = unit(np.array([[0.1, 0.0, 1.0], [0.0, 0.3, 1.0], [0.2, 0.2, 1.0]], np.float32))
    ex = unit(np.array([[1.0, 0.0, 0.1], [0.8, 0.6, 0.0], [0.6, 0.8, 0.2]], np.float32))
    pack = LabelPack("m", "f", "mean", background, "test", ["background noise"])
    add_examples(pack, "a", [ex[:1], ex[1:2], ex[2:]], [{}, {}, {}])
    fit_pack(pack, fake_model(prompts))
    (label,) = pack.labels
    # Example i against the mean of the other two, by hand.
    peaks = []
    for i in range(3):
        v = unit(ex[[j for j in range(3) if j != i]].mean(axis=0))
        peaks.append(float(share(ex[i:i + 1] @ v, ex[i:i + 1], prompts, 3.0)[0]))
    assert leave_one_out_peaks(label, "mean", types.SimpleNamespace(prompts=prompts, logit_scale=3.0)) == \
        pytest.approx(peaks, abs=1e-6)
    negatives = share(background @ label.vectors[0], background, prompts, 3.0)
    on, off, note = fit_thresholds(peaks, negatives)
    assert (label.on, label.off) == (on, off) and "separated" in note and label.note.startswith("leave-one-out over 3")
    # Scored in-sample (by the mean of all three) every example would score higher: that is
    # not what the threshold was judged against.
    in_sample = share(ex @ unit(ex.mean(axis=0)), ex, prompts, 3.0)
    assert np.all(in_sample > np.array(peaks) + 1e-4)
    assert fit_thresholds(in_sample, negatives)[0] > on


def test_one_example_is_scored_by_its_description_or_not_at_all():
    prompts = np.array([[0.0, 0.0, 1.0]], np.float32)
    background = unit(np.array([[0.1, 0.0, 1.0], [0.0, 0.3, 1.0]], np.float32))
    ex = unit(np.array([[1.0, 0.2, 0.1]], np.float32))
    text = unit(np.array([0.9, 0.0, 0.1], np.float32))
    pack = LabelPack("m", "f", "mean", background, "test", ["background noise"])
    add_examples(pack, "a", [ex], [{}], text="a", text_embedding=text, text_weight=0.5)
    add_examples(pack, "b", [unit(np.array([[0.0, 1.0, 0.1]], np.float32))], [{}])
    fit_pack(pack, fake_model(prompts))
    a, b = pack.labels
    # a's share competes with b (the pack's other label) and the prompts.
    both = np.concatenate([prompts, b.vectors])
    peak = float(share(ex @ text, ex, both, 3.0)[0])
    neg_audio = np.concatenate([background, b.prototypes])
    neg = share(label_scores(neg_audio, a.vectors, text, 0.5), neg_audio, both, 3.0)
    assert (a.on, a.off) == fit_thresholds([peak], neg)[:2]
    alone = share(label_scores(neg_audio, a.vectors, text, 0.5), neg_audio, prompts, 3.0)
    assert alone[-1] > neg[-1] + 0.05         # b's example: lower for a once b competes for it
    assert a.note.startswith("its description scoring 1 example")
    assert "background only" in b.note            # no description: no positives to fit


def test_label_set_mixes_text_and_enrolled_labels_in_one_softmax(clap, examples, tmp_path):
    pack = clap.enrol("hum", examples["hum"], text="a low hum", text_weight=0.25)
    clap.enrol("whistle", examples["whistle"], pack=pack)
    pack.save(tmp_path / "labels.clap")
    labels = LabelSet.parse(f"siren, @{tmp_path / 'labels.clap'}, dog")
    assert labels.names == ["siren", "hum", "whistle", "dog"]
    results = clap.classify([examples["hum"][1], examples["whistle"][0]], labels)
    audio = clap.embed_audio([examples["hum"][1], examples["whistle"][0]])
    text = clap.label_embeddings(["siren", "dog"])
    hum, whistle = LabelPack.load(tmp_path / "labels.clap").labels
    sims = np.stack([audio @ text[0],
                     0.75 * (audio @ hum.vectors[0]) + 0.25 * (audio @ hum.text_embedding),
                     audio @ whistle.vectors[0], audio @ text[1]], axis=1)
    want = clap.softmax(sims)
    for r, p in zip(results, want):
        assert list(r.scores) == labels.names
        assert [r.scores[n] for n in labels.names] == pytest.approx(p.tolist(), abs=1e-6)
        assert sum(r.scores.values()) == pytest.approx(1, abs=1e-5)
        assert r.label == labels.names[int(np.argmax(p))]


def test_nearest_scoring_takes_the_nearest_prototype(clap, examples):
    pack = clap.enrol("hum", examples["hum"], scoring="nearest")
    clap.enrol("whistle", examples["whistle"], pack=pack)
    hum, whistle = pack.labels
    assert np.array_equal(hum.vectors, hum.prototypes)
    audio = clap.embed_audio([examples["hum"][0], examples["whistle"][1]])
    got = LabelSet(["dog", pack]).scorer(clap)(audio)
    want = np.stack([audio @ clap.label_embeddings(["dog"])[0], (audio @ hum.prototypes.T).max(axis=1),
                     (audio @ whistle.prototypes.T).max(axis=1)], axis=1)
    assert np.allclose(got, want, atol=1e-6)
    assert got[0, 1] == pytest.approx(1.0, abs=1e-5) and got[1, 2] == pytest.approx(1.0, abs=1e-5)


def test_logistic_scoring_lowers_the_background(clap, examples):
    mean = clap.enrol("hum", examples["hum"], scoring="mean").labels[0]
    logistic_pack = clap.enrol("hum", examples["hum"], scoring="logistic")
    logistic = logistic_pack.labels[0]
    prompts = clap.label_embeddings(logistic_pack.background_prompts)
    bg = logistic_pack.background

    def mean_share(label, audio):
        return float(share(label_scores(audio, label.vectors), audio, prompts, clap.logit_scale).mean())
    assert np.linalg.norm(logistic.vectors[0]) == pytest.approx(1, abs=1e-5)
    assert mean_share(logistic, bg) < mean_share(mean, bg)
    assert mean_share(logistic, logistic.prototypes) - mean_share(logistic, bg) > \
        mean_share(mean, mean.prototypes) - mean_share(mean, bg)


def test_add_grows_a_pack_and_refits_it(clap, examples):
    pack = clap.enrol("hum", examples["hum"][:2], scoring="mean")
    first = pack.labels[0].vectors.copy()
    clap.enrol("whistle", examples["whistle"], pack=pack)
    assert pack.names == ["hum", "whistle"]
    clap.enrol("hum", examples["hum"][2:], pack=pack)            # a name it holds: more examples
    hum = pack.get("hum")
    assert hum.example_ids.tolist() == [0, 1, 2] and len(hum.examples) == 3
    assert hum.note.startswith("leave-one-out over 3 examples")
    three = clap.embed_audio(examples["hum"])
    assert np.allclose(hum.vectors[0], unit(three.mean(axis=0)), atol=1e-5)
    assert not np.allclose(hum.vectors[0], first[0], atol=1e-4)
    # Every label refitted when the pack grows: the same as enrolling all three at once.
    fresh = clap.enrol("hum", examples["hum"], scoring="mean")
    clap.enrol("whistle", examples["whistle"], pack=fresh)
    assert [(lab.on, lab.off) for lab in fresh] == [(lab.on, lab.off) for lab in pack]
    with pytest.raises(UserError, match="a pack has one scoring"):
        clap.enrol("x", examples["hum"], pack=pack, scoring="nearest")


def test_stream_scores_enrolled_labels_against_the_background_prompts(clap, examples):
    from clap_rt.frontend import log_mel
    from clap_rt.stream import ClapStream
    pack = clap.enrol("hum", examples["hum"])
    stream = ClapStream(clap, LabelSet(["siren", pack]), SR, hop=0.5)
    x = np.zeros(clap.frontend.clip_samples, np.float32)
    x[SR // 2:SR // 2 + SR] = tone(230, 1.0)
    mel = log_mel(x, clap.frontend)[None]
    got = stream.score_mel(mel)
    a = clap.embed_mel(mel)
    sims = np.concatenate([a @ clap.label_embeddings(["siren"]).T, a @ pack.labels[0].vectors.T,
                           a @ clap.label_embeddings(stream.background).T], axis=1)
    assert np.allclose(got, open_set_scores(sims, clap.logit_scale, 2), atol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda: np.zeros(SR, np.float32), "silent (every sample 0); expected an example with its sound above -60 dBFS"),
    (lambda: tone(440, 1.0, amp=1e-4), "silent (peak -80.0 dBFS); expected an example with its sound above -60 dBFS"),
    (lambda: tone(440, 0.05), "too short (0.050 s); expected an example of at least 0.1 s"),
])
def test_bad_examples_name_the_example(clap, make, message):
    with pytest.raises(UserError) as e:
        clap.enrol("x", [tone(300, 1.0), make()], sample_rate=SR)
    assert str(e.value) == f"array 1: {message}"


def test_duplicate_names_across_packs_and_text(clap, examples, tmp_path):
    clap.enrol("hum", examples["hum"]).save(tmp_path / "a.clap")
    with pytest.raises(UserError, match=r"--labels: duplicate labels \['hum'\] \(also in .*a.clap\)"):
        LabelSet.parse(f"hum, @{tmp_path / 'a.clap'}")


def test_embedding_table_rows_give_the_scores(clap, examples):
    pack = clap.enrol("hum", examples["hum"], text="a low hum")
    clap.enrol("whistle", examples["whistle"], pack=pack)
    labels = LabelSet(["siren", pack])
    audio = clap.embed_audio([examples["hum"][0], examples["whistle"][1]])
    table = labels.embedding_table(clap)
    assert table.shape == (3, 16)
    assert np.allclose(audio @ table.T, labels.scorer(clap)(audio), atol=1e-6)
    nearest = clap.enrol("hum", examples["hum"], scoring="nearest")
    with pytest.raises(UserError, match=r"labels \['hum'\]: scored by their nearest prototype"):
        LabelSet([nearest]).embedding_table(clap)
