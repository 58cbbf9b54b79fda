"""Copy detection before splitting (train.corpus.dedupe): byte copies, re-encoded / trimmed /
gain- / EQ-changed / resampled copies, and no false matches between different recordings.
All signals are made here (noise bursts, chirps, barks, rain), 1-4 s at 44.1 kHz."""
import zlib

import numpy as np
import pytest
import soxr
from scipy.signal import lfilter

from train.corpus.dedupe import (PRUNE_MIN_PRINTS, SAMPLE_RATE_FP, Fingerprint, find_copies, fingerprint,
                                 lagged_correlation)

SR = 44_100
MIN_CORR = 0.9  # find_copies' default
TRUE_COPY_MIN = 0.93  # every true copy must clear the threshold by this much margin ...
DISTINCT_MAX = 0.88  # ... and every distinct pair below this (two synthetic barks of similar pitch reach ~0.87)


# ---- synthetic recordings -------------------------------------------------------------------

def _envelope(rng, n):
    """(n,) random piecewise-linear amplitude envelope with short fades."""
    k = int(rng.integers(3, 9))
    env = np.interp(np.linspace(0, k - 1, n), np.arange(k), rng.uniform(0.05, 1.0, k) ** 2)
    fade = min(n // 10, 2000)
    env[:fade] *= np.linspace(0, 1, fade)
    env[n - fade:] *= np.linspace(1, 0, fade)
    return env


def _coloured(rng, n, pole=None):
    """(n,) first-order coloured Gaussian noise."""
    pole = rng.uniform(-0.9, 0.9) if pole is None else pole
    return lfilter([1.0], [1.0, -pole], rng.standard_normal(n))


def noise_burst(rng, sec, env=None):
    n = int(sec * SR)
    return _coloured(rng, n) * (_envelope(rng, n) if env is None else env)


def chirp(rng, sec):
    """A sweep (linear or exponential, with vibrato and a few harmonics) over a quiet background."""
    n = int(sec * SR)
    t = np.arange(n) / SR
    f0, f1 = rng.uniform(150, 2500, 2)
    f = f0 + (f1 - f0) * t / sec if rng.random() < 0.5 else f0 * (f1 / f0) ** (t / sec)
    f = f * (1 + rng.uniform(0, 0.08) * np.sin(2 * np.pi * rng.uniform(2, 12) * t))
    ph = 2 * np.pi * np.cumsum(f) / SR
    tone = sum(rng.uniform(0.1, 1) / h * np.sin(h * ph) for h in range(1, int(rng.integers(2, 5))))
    return tone * _envelope(rng, n) + rng.uniform(0.05, 0.2) * noise_burst(rng, sec)


def bark(rng, sec):
    """Harmonic bursts with pitch wobble, separated by short gaps, over faint noise."""
    n = int(sec * SR)
    x = np.zeros(n)
    t0 = 0
    while t0 < n:
        tt = np.arange(min(int(rng.uniform(0.08, 0.3) * SR), n - t0)) / SR
        fm = rng.uniform(250, 700) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(2, 6) * tt))
        ph = 2 * np.pi * np.cumsum(fm) / SR
        burst = sum(rng.uniform(0.2, 1) / h * np.sin(h * ph) for h in range(1, 8))
        x[t0:t0 + len(tt)] += burst * np.hanning(len(tt)) ** 0.5
        t0 += len(tt) + int(rng.uniform(0.1, 0.5) * SR)
    return x + 0.02 * rng.standard_normal(n)


def rain(rng, sec):
    """A noise bed with many short decaying drops."""
    n = int(sec * SR)
    x = 0.3 * _coloured(rng, n, rng.uniform(0.0, 0.7))
    for d in rng.integers(0, n, int(sec * rng.uniform(20, 80))):
        ln = min(int(rng.uniform(0.003, 0.02) * SR), n - d)
        x[d:d + ln] += rng.uniform(0.3, 2) * rng.standard_normal(ln) * np.exp(-np.arange(ln) / (ln / 4 + 1))
    return x


KINDS = (noise_burst, chirp, bark, rain)


def recording(rng, kind=None, sec=None):
    """(samples,) float32 at 44.1 kHz, peak 0.3."""
    kind = KINDS[int(rng.integers(len(KINDS)))] if kind is None else kind
    x = kind(rng, rng.uniform(1, 4) if sec is None else sec)
    return (0.3 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


# ---- transformations a re-release applies ---------------------------------------------------

def low_pass(x, sr=SR, fc=2000.0):
    a = np.exp(-2 * np.pi * fc / sr)
    return lfilter([1 - a], [1, -a], x).astype(np.float32)


def high_pass(x, sr=SR, fc=300.0):
    a = np.exp(-2 * np.pi * fc / sr)
    return lfilter([(1 + a) / 2, -(1 + a) / 2], [1, -a], x).astype(np.float32)


def high_shelf(x, sr=SR, fc=1500.0, db=6.0):
    """x + (g - 1) * high_pass(x): +db above fc, unchanged below."""
    return (x + (10 ** (db / 20) - 1) * high_pass(x, sr, fc)).astype(np.float32)


def add_noise(x, rng, snr_db=30.0):
    return (x + rng.standard_normal(len(x)) * np.sqrt(np.mean(x ** 2)) * 10 ** (-snr_db / 20)).astype(np.float32)


def resample(x, sr):
    return soxr.resample(x, SR, sr).astype(np.float32)


def _all_combined(x, rng):
    y = x[int(0.15 * len(x)) + 91:int(0.9 * len(x))] * 3.0  # trims at both ends (25% in all), gain
    y = high_shelf(low_pass(y), db=-6.0)
    return add_noise(resample(y, 22_050), rng), 22_050


TRANSFORMS = {  # name -> (x, rng) -> (audio, sample_rate)
    "gain x0.1": lambda x, rng: (0.1 * x, SR),
    "trim 20% start": lambda x, rng: (x[int(0.2 * len(x)) + 37:], SR),  # +37: off the frame grid
    "trim 20% end": lambda x, rng: (x[:int(0.8 * len(x))], SR),
    "resample 22.05k": lambda x, rng: (resample(x, 22_050), 22_050),
    "resample 48k": lambda x, rng: (resample(x, 48_000), 48_000),
    "30 dB noise": lambda x, rng: (add_noise(x, rng), SR),
    "low-pass 2 kHz": lambda x, rng: (low_pass(x), SR),
    "high-pass 300 Hz": lambda x, rng: (high_pass(x), SR),
    "+6 dB high shelf": lambda x, rng: (high_shelf(x), SR),
    "all combined": _all_combined,
}


def fp(audio, sr=SR, data=None, _counter=iter(range(10 ** 9))):
    """Fingerprint with unique fake file bytes unless `data` is given."""
    return fingerprint(data if data is not None else f"file-{next(_counter)}".encode(), audio, sr)


# ---- tests ----------------------------------------------------------------------------------

def test_byte_identical_files_are_bytes_copies():
    rng = np.random.default_rng(1)
    x = recording(rng, bark)
    a, b = fp(x, data=b"same bytes"), fp(x, data=b"same bytes")
    other = fp(recording(rng, rain))
    assert find_copies([a, other, b]) == [(2, 0, "bytes")]


@pytest.fixture(scope="module")
def originals():
    rng = np.random.default_rng(2)
    return [(kind.__name__, recording(rng, kind)) for kind in KINDS for _ in range(2)]


@pytest.fixture(scope="module")
def distractors():
    """Distinct recordings, enough of them that find_copies prunes with descriptors."""
    rng = np.random.default_rng(8)
    return [fp(recording(rng)) for _ in range(PRUNE_MIN_PRINTS)]


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_each_transformation_is_a_waveform_copy(originals, distractors, name):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    prints, expected, corrs = list(distractors), [], []
    for kind, x in originals:
        y, sr = TRANSFORMS[name](x, rng)
        a, b = fp(x), fp(y, sr)
        corr = lagged_correlation(a.frames, b.frames)
        corrs.append(f"{kind} {corr:.3f}")
        assert corr >= TRUE_COPY_MIN, f"{name} of a {kind}: correlation {corr:.3f} < {TRUE_COPY_MIN}"
        assert find_copies([a, b]) == [(1, 0, "waveform")], f"{name} of a {kind}: correlation {corr:.3f}"
        expected.append((len(prints) + 1, len(prints), "waveform"))
        prints += [a, b]
    # Among distractors the descriptor pruning is active: it must not drop any of these pairs.
    got = find_copies(prints)
    assert got == expected, f"{name}: found {got}, expected {expected}; correlations {corrs}"


def test_different_recordings_are_not_copies():
    rng = np.random.default_rng(3)
    n = 2 * SR
    env = _envelope(rng, n)
    # Same length, same envelope, same colour: only the noise itself differs.
    a, b = (lfilter([1.0], [1.0, -0.5], rng.standard_normal(n)) * env for _ in range(2))
    # Same magnitude spectrum, independent random phases.
    mag = np.abs(np.fft.rfft(recording(rng, bark, sec=2.0)))
    c, d = (np.fft.irfft(mag * np.exp(2j * np.pi * rng.random(len(mag))), n) for _ in range(2))
    pairs = [("same-envelope noise", a, b), ("same-spectrum random phase", c, d)]
    pairs += [(f"{k.__name__} vs reversed", x, x[::-1].copy()) for k in KINDS for x in [recording(rng, k)]]
    for name, x, y in pairs:
        px, py = fp(x.astype(np.float32)), fp(y.astype(np.float32))
        corr = lagged_correlation(px.frames, py.frames)
        assert corr <= DISTINCT_MAX, f"{name}: correlation {corr:.3f} > {DISTINCT_MAX}"
        assert find_copies([px, py]) == [], f"{name}: correlation {corr:.3f}"


def test_groups_point_at_the_lowest_index():
    rng = np.random.default_rng(4)
    a, b = recording(rng, chirp), recording(rng, rain)
    prints = [fp(a), fp(add_noise(a[:int(0.8 * len(a))], rng)), fp(b), fp(resample(0.5 * a, 22_050), 22_050)]
    assert find_copies(prints) == [(1, 0, "waveform"), (3, 0, "waveform")]
    # A byte copy of a waveform copy still points at the group's original, by waveform.
    prints.append(fp(a[:int(0.8 * len(a))], data=b"x"))
    prints.append(fp(a[:int(0.8 * len(a))], data=b"x"))
    got = find_copies(prints)
    assert got == [(1, 0, "waveform"), (3, 0, "waveform"), (4, 0, "waveform"), (5, 0, "waveform")], got
    copies = [c for c, _, _ in got]
    assert len(copies) == len(set(copies)) and not set(copies) & {o for _, o, _ in got}


def test_silent_and_tiny_clips_do_not_crash_or_match_by_waveform():
    rng = np.random.default_rng(5)
    tiny = recording(rng, noise_burst, sec=1.0)[:int(0.1 * SR)]
    prints = [fp(np.zeros(2 * SR, np.float32)), fp(np.zeros(2 * SR, np.float32)),  # two silent files
              fp(np.zeros(0, np.float32)), fp(np.zeros(10, np.float32), 8000),  # empty, near-empty
              fp(tiny), fp(0.5 * tiny), fp(resample(tiny, 22_050), 22_050),  # a tiny clip and its copies
              fp(np.zeros(2 * SR, np.float32), data=b"silence"), fp(np.zeros(SR, np.float32), data=b"silence")]
    for p in prints:
        assert p.frames.ndim == 2 and np.all(np.isfinite(p.frames.astype(np.float32)))
    assert find_copies(prints) == [(8, 7, "bytes")]


def test_prints_without_descriptor_still_work():
    rng = np.random.default_rng(6)
    x = recording(rng, rain)
    a, b = fp(x), fp(add_noise(x[int(0.1 * len(x)):], rng))
    bare = [Fingerprint(p.sha1, p.seconds, p.frames) for p in (a, b)]
    assert find_copies(bare) == [(1, 0, "waveform")]
    assert SAMPLE_RATE_FP == 8000


def test_no_false_positives_among_300_distinct_recordings():
    rng = np.random.default_rng(7)
    prints = [fp(recording(rng)) for _ in range(300)]
    got = find_copies(prints)
    # The highest correlation among pairs that the duration ratio lets through, for the message.
    best, pair = -1.0, None
    secs = np.array([p.seconds for p in prints])
    for i in range(0, 300, 3):  # every third row: enough for a margin, keeps the test fast
        for j in np.nonzero((secs / secs[i] <= 2.0) & (secs / secs[i] >= 0.5))[0]:
            if j != i:
                c = lagged_correlation(prints[i].frames, prints[j].frames)
                if c > best:
                    best, pair = c, (i, int(j))
    assert got == [], f"false copies {got[:5]} (highest sampled correlation {best:.3f} at {pair})"
    assert best <= DISTINCT_MAX, f"highest sampled distinct correlation {best:.3f} at {pair} > {DISTINCT_MAX}"
