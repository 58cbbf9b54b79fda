"""Log-mel frontend: librosa parity, C++ == numpy reference, streaming == offline, bad input."""
import dataclasses
import sys
import warnings

import numpy as np
import pytest

from clap_rt import frontend
from clap_rt.config import PRESETS, FrontendConfig, frames_for
from clap_rt.errors import UserError
from clap_rt.frontend import FrontendInputError, StreamingLogMel, log_mel, log_mel_reference, mel_filterbank

librosa = pytest.importorskip("librosa")

DB_TOL = 1e-3          # dB, offline parity (issue 3)
STREAM_TOL = 1e-4      # dB, streaming vs offline
SIGNALS = ["noise", "sines", "silence", "impulses", "square"]


def preset_fe(name: str) -> FrontendConfig:
    return PRESETS[name]().frontend


def make_signal(kind: str, fe: FrontendConfig, seconds: float = 1.0) -> np.ndarray:
    n = int(seconds * fe.sample_rate)
    t = np.arange(n) / fe.sample_rate
    rng = np.random.default_rng(1234)
    if kind == "noise":
        x = 0.3 * rng.standard_normal(n)
    elif kind == "sines":  # a loud and a quiet tone: bands far from both sit near the amin floor
        x = 0.8 * np.sin(2 * np.pi * 440.0 * t) + 1e-3 * np.sin(2 * np.pi * 5000.0 * t + 0.3)
    elif kind == "silence":
        x = np.zeros(n)
    elif kind == "impulses":
        x = np.zeros(n)
        x[::fe.sample_rate // 7] = 1.0
        x[1] = -1.0  # one next to the start: the left reflection must copy it
    elif kind == "square":  # full scale
        x = np.sign(np.sin(2 * np.pi * 97.0 * t))
    else:
        raise AssertionError(kind)
    return x.astype(np.float32)


def librosa_log_mel(x: np.ndarray, fe: FrontendConfig) -> np.ndarray:
    """librosa melspectrogram + power_to_db with the same recipe (filterbank at fe.filterbank_rate)."""
    stft = librosa.stft(x.astype(np.float64), n_fft=fe.n_fft, hop_length=fe.hop_length, win_length=fe.win_length,
                        window="hann", center=fe.center, pad_mode="reflect")
    mel = librosa.feature.melspectrogram(S=np.abs(stft) ** fe.power, sr=fe.filterbank_rate, n_fft=fe.n_fft,
                                         n_mels=fe.n_mels, fmin=fe.fmin, fmax=fe.fmax,
                                         htk=fe.mel_scale == "htk", norm=fe.mel_norm)
    return librosa.power_to_db(mel, ref=1.0, amin=fe.amin, top_db=fe.top_db).astype(np.float32)


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def extension():
    try:
        from clap_rt import _frontend
    except ImportError as e:
        pytest.fail(f"clap_rt._frontend is not built ({e}); run `pip install -e .` (needs libfftw3-dev)")
    return _frontend


# Variants beyond the presets: HTK scale, no norm, top_db, |X|, short window, odd n_fft, no centring.
VARIANTS = {
    "htk-nonorm": dict(mel_scale="htk", mel_norm=None),
    "top_db-power1": dict(top_db=60.0, power=1.0),
    "short-window-odd-fft": dict(n_fft=1023, win_length=800, hop_length=256, fmax=16000.0),
    "no-center": dict(center=False, hop_length=500),
}


def variant_fe(name: str) -> FrontendConfig:
    return dataclasses.replace(preset_fe("msclap-2023"), **VARIANTS[name])


# --- filterbank --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS) + list(VARIANTS))
def test_filterbank_equals_librosa(name):
    fe = preset_fe(name) if name in PRESETS else variant_fe(name)
    ref = librosa.filters.mel(sr=fe.filterbank_rate, n_fft=fe.n_fft, n_mels=fe.n_mels, fmin=fe.fmin, fmax=fe.fmax,
                              htk=fe.mel_scale == "htk", norm=fe.mel_norm)
    ours = mel_filterbank(fe)
    assert ours.dtype == np.float32 and ours.shape == (fe.n_mels, fe.n_fft // 2 + 1)
    tol = 1e-6 * float(ref.max())  # librosa rounds its float64 weights to float32
    d = max_diff(ours, ref)
    assert d <= tol, f"numpy filterbank vs librosa: max |diff| {d:.3g} > {tol:.3g}"
    cpp = frontend._cpp_log_mel(fe, extension()).mel_filterbank()
    d = max_diff(cpp, ref)
    assert d <= tol, f"C++ filterbank vs librosa: max |diff| {d:.3g} > {tol:.3g}"


# --- offline parity ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", SIGNALS)
@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_match_librosa_and_reference(name, kind):
    fe = preset_fe(name)
    x = make_signal(kind, fe)
    ref = librosa_log_mel(x, fe)
    spec = log_mel_reference(x, fe)
    cpp = log_mel(x, fe)
    assert cpp.dtype == np.float32 and cpp.shape == (fe.n_mels, frames_for(len(x), fe))
    for label, ours in (("numpy reference", spec), ("C++", cpp)):
        d = max_diff(ours, ref)
        assert d <= DB_TOL, f"{name}/{kind}: {label} vs librosa max |dB| {d:.3g} > {DB_TOL}"
    d = max_diff(cpp, spec)
    assert d <= DB_TOL, f"{name}/{kind}: C++ vs numpy reference max |dB| {d:.3g} > {DB_TOL}"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variants_match_librosa(name):
    fe = variant_fe(name)
    x = make_signal("sines", fe, 0.5) + make_signal("impulses", fe, 0.5)
    ref = librosa_log_mel(x, fe)
    for label, ours in (("numpy reference", log_mel_reference(x, fe)), ("C++", log_mel(x, fe))):
        d = max_diff(ours, ref)
        assert d <= DB_TOL, f"{name}: {label} vs librosa max |dB| {d:.3g} > {DB_TOL}"


def test_batch_and_threads_equal_single_clips():
    fe = preset_fe("laion-htsat-tiny")
    batch = np.stack([make_signal(k, fe, 0.4) for k in SIGNALS])  # (5, n)
    singles = np.stack([log_mel(x, fe) for x in batch])           # (5, n_mels, T)
    for threads in (1, 2, 3):
        d = max_diff(log_mel(batch, fe, threads=threads), singles)
        assert d == 0.0, f"batch on {threads} threads differs from single clips by {d:.3g} dB"
    d = max_diff(log_mel_reference(batch, fe), singles)
    assert d <= DB_TOL, f"numpy reference batch vs C++ singles: {d:.3g} dB"


def test_top_db_is_per_clip():
    fe = dataclasses.replace(preset_fe("msclap-2023"), top_db=50.0)
    loud, quiet = make_signal("sines", fe, 0.3), 1e-3 * make_signal("noise", fe, 0.3)
    both = log_mel(np.stack([loud, quiet]), fe, threads=2)
    for i, x in enumerate((loud, quiet)):
        d = max_diff(both[i], librosa_log_mel(x, fe))
        assert d <= DB_TOL, f"clip {i}: batched top_db vs librosa on that clip alone: {d:.3g} dB"


# --- streaming ---------------------------------------------------------------------------

def stream(fe: FrontendConfig, x: np.ndarray, sizes, backend: str) -> np.ndarray:
    s = StreamingLogMel(fe, backend=backend)
    assert s.backend == backend
    out, pos = [], 0
    for k in sizes:
        s.accept_waveform(x[pos:pos + k])
        pos += k
        if s.num_frames_ready:
            out.append(s.pop_frames())
    assert pos == len(x)
    s.input_finished()
    out.append(s.pop_frames())
    assert s.num_frames_ready == 0
    return np.concatenate(out, axis=1)


def chunks(n: int, size: int) -> list:
    return [size] * (n // size) + ([n % size] if n % size else [])


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
@pytest.mark.parametrize("size", [1, 7, 160, 4410, "random"])
@pytest.mark.parametrize("name", list(PRESETS) + ["short-window-odd-fft", "no-center"])
def test_streaming_equals_offline(name, size, backend):
    fe = preset_fe(name) if name in PRESETS else variant_fe(name)
    if backend == "cpp":
        extension()
    seconds = 0.25 if size == 1 and backend == "numpy" else 0.6  # size 1 in numpy: 1 call per sample
    x = make_signal("noise", fe, seconds) + make_signal("impulses", fe, seconds)
    if size == "random":  # includes empty chunks and chunks longer than a frame
        sizes = list(np.random.default_rng(7).integers(0, 3000, size=len(x) // 1000))
        sizes.append(len(x) - sum(sizes))
    else:
        sizes = chunks(len(x), size)
    offline = log_mel(x, fe)
    d = max_diff(stream(fe, x, sizes, backend), offline)
    assert d <= STREAM_TOL, f"{name}, chunks of {size}, {backend}: streaming vs offline max |dB| {d:.3g}"


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_streaming_frames_ready_reset_and_lifecycle(backend):
    fe = preset_fe("msclap-2023")
    x = make_signal("noise", fe, 0.2)
    pad, hop = fe.n_fft // 2, fe.hop_length
    s = StreamingLogMel(fe, backend=backend)
    s.accept_waveform(x[:pad])
    assert s.num_frames_ready == 0, "frame 0 needs x[pad] for its left reflection"
    s.accept_waveform(x[pad:pad + 1])
    assert s.num_frames_ready == 1
    s.accept_waveform(x[pad + 1:pad + 1 + 3 * hop])
    assert s.num_frames_ready == 4
    first = s.pop_frames(2)
    assert first.shape == (fe.n_mels, 2) and s.num_frames_ready == 2
    with pytest.raises(ValueError, match=r"^pop_frames: expected 0 <= n <= 2 \(frames ready\), got 3$"):
        s.pop_frames(3)
    s.accept_waveform(x[pad + 1 + 3 * hop:])
    s.input_finished()
    assert 2 + s.num_frames_ready == frames_for(len(x), fe)
    with pytest.raises(RuntimeError, match="input already finished; call reset"):
        s.accept_waveform(x[:10])
    s.reset()
    assert s.num_frames_ready == 0
    d = max_diff(stream(fe, x, [len(x)], backend), log_mel(x, fe))
    assert d <= STREAM_TOL, f"after reset: streaming vs offline {d:.3g} dB"


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_streaming_refuses_top_db_short_streams_and_bad_samples(backend):
    with pytest.raises(ValueError, match=r"^FrontendConfig.top_db: expected None for streaming"):
        StreamingLogMel(dataclasses.replace(preset_fe("msclap-2023"), top_db=80.0), backend=backend)
    s = StreamingLogMel(preset_fe("msclap-2023"), backend=backend)
    s.accept_waveform(np.zeros(512, np.float32))
    with pytest.raises(FrontendInputError, match=r"^audio stream: expected at least 513 samples for centred reflect "
                                         r"padding \(n_fft=1024\), got 512$"):
        s.input_finished()
    with pytest.raises(ValueError, match=r"^samples: expected finite samples, found NaN/Inf$"):
        s.accept_waveform(np.array([0.0, np.nan], np.float32))


# --- input validation --------------------------------------------------------------------

@pytest.mark.parametrize("fn", [log_mel, log_mel_reference])
def test_bad_audio_is_a_one_line_error(fn):
    fe = preset_fe("msclap-2023")
    cases = [
        (np.zeros(0, np.float32), "audio: expected at least one sample, got an empty array of shape (0,)"),
        (np.array([0.0, np.nan] * 600, np.float32), "audio: expected finite samples, found NaN/Inf"),
        (np.array([0.0, np.inf] * 600, np.float64), "audio: expected finite samples, found NaN/Inf"),
        (np.zeros(2000, np.int32), "audio: expected float32, float64 or int16 samples, got dtype int32"),
        (np.zeros((1, 2, 2000), np.float32), "audio: expected shape (n,) or (B, n), got shape (1, 2, 2000)"),
        (np.zeros(100, np.float32),
         "audio: expected at least 513 samples for centred reflect padding (n_fft=1024), got 100"),
    ]
    for audio, message in cases:
        with pytest.raises(FrontendInputError) as info:
            fn(audio, fe)
        assert str(info.value) == message
    assert issubclass(FrontendInputError, ValueError) and issubclass(FrontendInputError, UserError)


def test_int16_float64_and_strided_input_are_converted():
    fe = preset_fe("laion-htsat-tiny")
    x = make_signal("sines", fe, 0.3)
    expected = log_mel(x, fe)
    as_int16 = np.round(x * 32767).astype(np.int16)
    d = max_diff(log_mel(as_int16, fe), log_mel(as_int16.astype(np.float32) / 32768, fe))
    assert d == 0.0, f"int16 input is not scaled by 1/32768: {d:.3g} dB"
    d = max_diff(log_mel(x.astype(np.float64), fe), expected)
    assert d == 0.0, f"float64 input differs from float32: {d:.3g} dB"
    strided = np.repeat(x, 2)[::2]
    assert not strided.flags.c_contiguous
    d = max_diff(log_mel(strided, fe), expected)
    assert d == 0.0, f"non-contiguous input differs: {d:.3g} dB"
    fortran_batch = np.asfortranarray(np.stack([x, x]))
    d = max_diff(log_mel(fortran_batch, fe, threads=2), np.stack([expected, expected]))
    assert d == 0.0, f"Fortran-ordered batch differs: {d:.3g} dB"


def test_bad_config_and_threads_name_the_field():
    x = np.zeros(4000, np.float32)
    with pytest.raises(FrontendInputError, match=r"^FrontendConfig.mel_scale: expected 'slaney' or 'htk', got 'bark'$"):
        log_mel(x, dataclasses.replace(preset_fe("msclap-2023"), mel_scale="bark"))
    with pytest.raises(FrontendInputError, match=r"^threads: expected an integer >= 1, got 0$"):
        log_mel(x, preset_fe("msclap-2023"), threads=0)
    # The numbers follow the C++ core's rule on every path, the numpy reference's too.
    subnormal = dataclasses.replace(preset_fe("msclap-2023"), amin=1e-40)
    for call in (lambda: log_mel(x, subnormal), lambda: log_mel_reference(x, subnormal),
                 lambda: mel_filterbank(subnormal)):
        with pytest.raises(FrontendInputError,
                           match=r"^FrontendConfig.amin: expected >= 1.2e-38 \(a normal float32\), got 1e-40$"):
            call()
    with pytest.raises(FrontendInputError, match=r"^FrontendConfig.win_length: expected in \[1, n_fft=1024\], "
                                                 r"got 2048$"):
        StreamingLogMel(dataclasses.replace(preset_fe("msclap-2023"), win_length=2048), backend="numpy")


def test_missing_extension_falls_back_with_one_warning(monkeypatch):
    fe = preset_fe("clap-rt-small")
    x = make_signal("square", fe, 0.3)
    monkeypatch.setitem(sys.modules, "clap_rt._frontend", None)  # makes `import` raise ImportError
    monkeypatch.setattr(frontend, "_WARNED", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = log_mel(x, fe)
        b = log_mel(x, fe)
        s = StreamingLogMel(fe)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "numpy reference" in messages[0], messages
    assert s.backend == "numpy"
    d = max_diff(a, log_mel_reference(x, fe))
    assert d == 0.0 and max_diff(a, b) == 0.0, f"fallback differs from the reference by {d:.3g} dB"
