"""Log-mel frontend benchmark: clap_rt (C++, 1 and all threads) vs librosa, torch.stft, the numpy
reference and kaldi-native-fbank, on 7 s @ 44.1 kHz (msclap-2023) and 10 s @ 48 kHz (laion-htsat-tiny),
plus streaming in hops of 1 s and 100 ms, and what a float32 FFT would cost in parity (against the
float64 one) and gain in speed. Everything runs in this process; figures are medians.

    python -m bench.frontend [--repeats 20] [--json [PATH]]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from bench.report import write_json
from clap_rt.config import PRESETS, FrontendConfig
from clap_rt.errors import run_program
from clap_rt.frontend import StreamingLogMel, log_mel, log_mel_reference, mel_filterbank

PROG = "python -m bench.frontend"

CASES = [("7s@44.1k", "msclap-2023", 7.0), ("10s@48k", "laion-htsat-tiny", 10.0)]
STREAM_HOPS = [("1s", 1.0), ("100ms", 0.1)]


def median_ms(fns: dict, repeats: int) -> dict:
    """Median ms per call of each fn; the fns take turns in every round so that load from other
    processes on a shared machine hits all of them alike."""
    for fn in fns.values():
        fn()  # warm-up: plans, caches, lazy imports
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t) * 1e3) for name, t in times.items()}


def librosa_log_mel(x: np.ndarray, fe: FrontendConfig) -> np.ndarray:
    import librosa

    stft = librosa.stft(x, n_fft=fe.n_fft, hop_length=fe.hop_length, win_length=fe.win_length, window="hann",
                        center=fe.center, pad_mode="reflect")
    mel = librosa.feature.melspectrogram(S=np.abs(stft) ** fe.power, sr=fe.filterbank_rate, n_fft=fe.n_fft,
                                         n_mels=fe.n_mels, fmin=fe.fmin, fmax=fe.fmax,
                                         htk=fe.mel_scale == "htk", norm=fe.mel_norm)
    return librosa.power_to_db(mel, ref=1.0, amin=fe.amin, top_db=fe.top_db)


def torch_log_mel(fe: FrontendConfig):
    """The usual torch recipe (torch.stft + matmul), float32, as a closure over prepared tensors."""
    import torch

    window = torch.hann_window(fe.win_length, periodic=True)
    filterbank = torch.from_numpy(mel_filterbank(fe))  # (n_mels, n_bins)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            spec = torch.stft(torch.from_numpy(x), fe.n_fft, fe.hop_length, fe.win_length, window, center=fe.center,
                              pad_mode="reflect", return_complex=True)  # (n_bins, T)
            power = spec.abs() ** fe.power
            return (10.0 * torch.log10(torch.clamp(filterbank @ power, min=fe.amin))).numpy()

    return run


def knf_log_mel(fe: FrontendConfig):
    """kaldi-native-fbank with its librosa-style mel option (a C++ peer; its recipe differs in details)."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = fe.sample_rate
    opts.frame_opts.frame_length_ms = 1000.0 * fe.n_fft / fe.sample_rate
    opts.frame_opts.frame_shift_ms = 1000.0 * fe.hop_length / fe.sample_rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.preemph_coeff = 0.0
    opts.frame_opts.remove_dc_offset = False
    opts.frame_opts.window_type = "hann"
    opts.frame_opts.snip_edges = False
    opts.mel_opts.num_bins = fe.n_mels
    opts.mel_opts.low_freq = fe.fmin
    opts.mel_opts.high_freq = fe.fmax
    opts.mel_opts.is_librosa = True

    def run(x: np.ndarray) -> np.ndarray:
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(fe.sample_rate, x.tolist())
        fbank.input_finished()
        return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)], axis=1)

    return run


def stream_ms(x: np.ndarray, fe: FrontendConfig, hop_s: float, repeats: int) -> float:
    """Compute time of StreamingLogMel over the whole clip fed in hops, per second of audio."""
    stream = StreamingLogMel(fe)
    hop = int(round(hop_s * fe.sample_rate))
    chunks = [x[i:i + hop] for i in range(0, len(x), hop)]

    def run():
        stream.reset()
        for chunk in chunks:
            stream.accept_waveform(chunk)
            stream.pop_frames()
        stream.input_finished()
        stream.pop_frames()

    return median_ms({"stream": run}, repeats)["stream"] / (len(x) / fe.sample_rate)


TOP_DB = 80.0           # the usual top_db: how far below a clip's loudest bin parity matters


def fft_precision(fe: FrontendConfig, seconds: float, repeats: int) -> dict:
    """The case for a float32 FFT: log-mel from a float32 and a float64 rfft (scipy, one thread)
    of the same windowed frames, max |dB| difference above the amin floor and above a top_db
    floor (loudest bin - TOP_DB), on signals with a wide dynamic range; and both rfft times."""
    import scipy.fft
    n = int(seconds * fe.sample_rate)
    t = np.arange(n) / fe.sample_rate
    rng = np.random.default_rng(1)
    signals = {"noise": 0.1 * rng.standard_normal(n),
               "loud tone + quiet noise": 0.9 * np.sin(2 * np.pi * 1000 * t) + 1e-4 * rng.standard_normal(n),
               "chirp": 0.5 * np.sin(2 * np.pi * (100 + 2000 * t) * t)}
    window = np.hanning(fe.win_length + 1)[:-1]              # periodic Hann, as the frontend's
    fb = mel_filterbank(fe).astype(np.float64)
    floor = 10 * np.log10(fe.amin)
    out = {}
    for name, x in signals.items():
        x = np.pad(x.astype(np.float32).astype(np.float64), fe.n_fft // 2, mode="reflect")
        starts = fe.hop_length * np.arange(1 + (len(x) - fe.n_fft) // fe.hop_length)
        frames = x[starts[:, None] + np.arange(fe.n_fft)] * window
        db = {}
        for dtype in (np.float64, np.float32):
            spec = scipy.fft.rfft(frames.astype(dtype), axis=1, workers=1)
            power = spec.real.astype(np.float64) ** 2 + spec.imag.astype(np.float64) ** 2
            db[dtype] = 10 * np.log10(np.maximum(fe.amin, power @ fb.T))
        diff = np.abs(db[np.float32] - db[np.float64])
        ref = db[np.float64]
        out[name] = {"max_db_above_amin_floor": float(diff[ref > floor].max()),
                     "max_db_above_top_db_floor": float(diff[ref > max(floor, ref.max() - TOP_DB)].max())}
    frames64 = frames.astype(np.float64)
    frames32 = frames.astype(np.float32)
    ms = median_ms({"rfft_float64": lambda: scipy.fft.rfft(frames64, axis=1, workers=1),
                    "rfft_float32": lambda: scipy.fft.rfft(frames32, axis=1, workers=1)}, repeats)
    return {"signals": out, "rfft_ms": ms}


def bench_case(fe: FrontendConfig, seconds: float, threads: int, repeats: int) -> dict:
    import torch

    rng = np.random.default_rng(0)
    n = int(seconds * fe.sample_rate)
    x = (0.1 * rng.standard_normal(n) + 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(n) / fe.sample_rate))
    x = x.astype(np.float32)
    torch_run, knf_run = torch_log_mel(fe), knf_log_mel(fe)

    from threadpoolctl import threadpool_limits  # comes with librosa (via scikit-learn)

    saved = torch.get_num_threads()
    # Two rounds, each at one thread count (BLAS included), so that spinning worker threads of
    # one library never compete with a single-threaded run of another.
    torch.set_num_threads(1)
    with threadpool_limits(1):
        ms = median_ms({
            "ours_1t": lambda: log_mel(x, fe, threads=1),
            "torch_stft_1t": lambda: torch_run(x),
            "librosa_1t": lambda: librosa_log_mel(x, fe),
            "numpy_reference_1t": lambda: log_mel_reference(x, fe),
            "kaldi_native_fbank": lambda: knf_run(x),
        }, repeats)
    torch.set_num_threads(threads)
    ms.update(median_ms({
        f"ours_{threads}t": lambda: log_mel(x, fe, threads=threads),
        f"torch_stft_{threads}t": lambda: torch_run(x),
        f"librosa_{threads}t": lambda: librosa_log_mel(x, fe),  # BLAS threads as librosa runs by default
    }, repeats))
    torch.set_num_threads(saved)
    ours = log_mel(x, fe)
    return {
        "ms": ms,
        "stream_ms_per_audio_s": {name: stream_ms(x, fe, hop_s, repeats) for name, hop_s in STREAM_HOPS},
        "max_abs_db_diff_vs_librosa": float(np.abs(ours - librosa_log_mel(x, fe)).max()),
        "max_abs_db_diff_vs_torch_stft": float(np.abs(ours - torch_run(x)).max()),
        "float32_fft": fft_precision(fe, seconds, repeats),
    }


def run(args: argparse.Namespace) -> int:
    """Time every method on both clips, print the table (and the JSON)."""
    cases = {label: bench_case(PRESETS[name]().frontend, seconds, args.threads, args.repeats)
             for label, name, seconds in CASES}
    t = args.threads
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.system()}",
        "load_average_1min": os.getloadavg()[0],
        "threads": t,
        "cases": cases,
        # headline figures: the worst case over both clips. librosa as it runs by default (BLAS
        # on all threads) against ours on ONE thread; torch.stft at equal thread counts.
        "speedup_vs_librosa": min(c["ms"][f"librosa_{t}t"] / c["ms"]["ours_1t"] for c in cases.values()),
        "speedup_vs_librosa_1t": min(c["ms"]["librosa_1t"] / c["ms"]["ours_1t"] for c in cases.values()),
        "speedup_vs_torch_stft": min(c["ms"]["torch_stft_1t"] / c["ms"]["ours_1t"] for c in cases.values()),
        "speedup_vs_torch_stft_all_threads": min(c["ms"][f"torch_stft_{t}t"] / c["ms"][f"ours_{t}t"]
                                                 for c in cases.values()),
        "stream_ms_per_audio_s": max(v for c in cases.values() for v in c["stream_ms_per_audio_s"].values()),
        "max_abs_db_diff_vs_librosa": max(c["max_abs_db_diff_vs_librosa"] for c in cases.values()),
    }

    methods = list(next(iter(cases.values()))["ms"])
    print(f"log-mel frontend, median ms per clip ({result['machine']}, "
          f"load average {result['load_average_1min']:.1f})")
    print(f"{'method':<22}" + "".join(f"{label:>12}" for label in cases))
    for m in methods:
        print(f"{m:<22}" + "".join(f"{c['ms'][m]:>12.3f}" for c in cases.values()))
    for name, _ in STREAM_HOPS:
        print(f"{'stream ' + name + ' ms/s':<22}" + "".join(f"{c['stream_ms_per_audio_s'][name]:>12.3f}"
                                                            for c in cases.values()))
    print(f"{'max |dB| vs librosa':<22}" + "".join(f"{c['max_abs_db_diff_vs_librosa']:>12.2e}"
                                                  for c in cases.values()))
    for label, c in cases.items():
        f32 = c["float32_fft"]
        worst = {k: max(v[k] for v in f32["signals"].values()) for k in next(iter(f32["signals"].values()))}
        print(f"float32 FFT ({label}): max |dB| vs float64 above the amin floor {worst['max_db_above_amin_floor']:.2e}, "
              f"above a top_db {TOP_DB:.0f} floor {worst['max_db_above_top_db_floor']:.2e}; rfft "
              f"{f32['rfft_ms']['rfft_float64'] / f32['rfft_ms']['rfft_float32']:.1f}x faster")
    print(f"ours on 1 thread vs librosa: {result['speedup_vs_librosa']:.1f}x (librosa default threads), "
          f"{result['speedup_vs_librosa_1t']:.1f}x (librosa 1 thread); vs torch.stft: "
          f"{result['speedup_vs_torch_stft']:.2f}x (1 thread), {result['speedup_vs_torch_stft_all_threads']:.2f}x "
          f"({t} threads); streaming <= {result['stream_ms_per_audio_s']:.3f} ms per audio second")
    write_json(result, args.json)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="the 'all threads' count")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH",
                        help="write the results as JSON to PATH (or stdout without PATH)")
    args = parser.parse_args(argv)
    return run_program(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
