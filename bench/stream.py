"""Streaming detection benchmark: soundscapes from held-out clips, event F1, delay, false alarms, RTF.

    python bench/stream.py [--model DIR] [--manifest ~/.cache/clap_rt/corpus/manifest.jsonl] [--json out.json]

Soundscapes: held-out ("test" split) clips of the most frequent test labels, placed at random,
non-overlapping onsets over synthetic background noise (pink noise + mains hum, our own mixer)
at a fixed SNR. Each scene runs through the `clap-rt listen --fast` pipeline
(ClapStream -> EventDetector via `run_stream`). Reported:
  event F1   sed_eval event-based, micro over labels, 200 ms onset collar, offsets not scored
  delay      decision time of the matching start event minus the true onset (p50 / p95)
  FA/hour    start events on background-only audio, per hour
  RTF        frontend + model seconds per audio second; the baseline recomputes each window's
             log-mel from its raw audio (no incremental frontend), measured on the same audio
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_MANIFEST = Path.home() / ".cache" / "clap_rt" / "corpus" / "manifest.jsonl"


def read_test_clips(manifest: Path, n_labels: int, per_label: int) -> dict[str, list[Path]]:
    """{label: [clip paths]} for the n most frequent labels of the "test" split."""
    if not manifest.exists():
        sys.exit(f"bench/stream.py: error: manifest {manifest} not found; build the corpus first "
                 f"(train/corpus) or pass --manifest PATH")
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    clips: dict[str, list[Path]] = {}
    for r in rows:
        if r.get("split") == "test" and r.get("label"):
            clips.setdefault(r["label"], []).append(manifest.parent / r["path"])
    top = sorted(clips, key=lambda k: (-len(clips[k]), k))[:n_labels]
    if not top:
        sys.exit(f"bench/stream.py: error: {manifest} has no labelled clips in split 'test'")
    return {k: clips[k][:per_label] for k in top}


def background_noise(n: int, rate: int, rng: np.random.Generator, level: float = 0.02) -> np.ndarray:
    """Pink noise (1/f power) plus a 50 Hz hum with harmonics, RMS `level`."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    t = np.arange(n) / rate
    x = x / (np.sqrt(np.mean(x ** 2)) + 1e-12) + 0.3 * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3))
    return (level * x / np.sqrt(np.mean(x ** 2))).astype(np.float32)


def make_scene(clips: dict, seconds: float, n_events: int, snr_db: float, rate: int,
               rng: np.random.Generator, load) -> tuple[np.ndarray, list]:
    """Background + n_events clips at random non-overlapping onsets -> (audio, [(label, on, off)])."""
    n = int(seconds * rate)
    x = background_noise(n, rate, rng)
    bg_rms = float(np.sqrt(np.mean(x ** 2)))
    truth, busy = [], []
    labels = sorted(clips)
    for _ in range(n_events * 20):
        if len(truth) == n_events:
            break
        label = labels[rng.integers(len(labels))]
        clip = load(clips[label][rng.integers(len(clips[label]))])
        clip = clip[: int(min(len(clip), 0.4 * n))]
        on = int(rng.integers(int(1.5 * rate), n - len(clip)))
        off = on + len(clip)
        if any(on < b + rate and a < off + rate for a, b in busy):      # keep 1 s between events
            continue
        gain = bg_rms * 10 ** (snr_db / 20) / (float(np.sqrt(np.mean(clip ** 2))) + 1e-12)
        x[on:off] += gain * clip
        busy.append((on, off))
        truth.append((label, on / rate, off / rate))
    return np.clip(x, -1, 1), sorted(truth, key=lambda t: t[1])


def run_pipeline(clap, audio: np.ndarray, labels: list, args):
    """The listen --fast pipeline on one signal -> (events, StreamStats)."""
    from clap_rt.detect import DetectorConfig, EventDetector, Thresholds
    from clap_rt.sources import ArraySource
    from clap_rt.stream import ClapStream, run_stream
    stream = ClapStream(clap, labels, clap.sample_rate, hop=args.hop)
    det = EventDetector(labels, Thresholds(default_on=args.on, default_off=args.off), DetectorConfig())
    events: list = []
    stats = run_stream(ArraySource(audio, clap.sample_rate, block=1024), stream,
                       lambda w: events.extend(det.update(w)), live=False)
    return events + det.finish(), stats


def baseline_rtf(clap, audio: np.ndarray, hop: float) -> float:
    """Per window: log-mel of its raw audio recomputed from scratch, then embedded (batch 1)."""
    from clap_rt.frontend import log_mel
    fe = clap.frontend
    step, win = int(round(hop * fe.sample_rate)), fe.clip_samples
    t0 = time.perf_counter()
    for s in range(0, len(audio) - win + 1, step):
        clap.embed_mel(log_mel(audio[s:s + win], fe)[None])
    return (time.perf_counter() - t0) / (len(audio) / fe.sample_rate)


def event_f1(truth: dict, found: dict, labels: list) -> dict:
    """sed_eval event-based F1, 200 ms onset collar, offsets ignored. truth/found: {scene: [(l, on, off)]}."""
    try:
        import sed_eval
        import dcase_util
    except ImportError as e:
        raise RuntimeError("bench/stream.py requires the sed_eval package (pip install sed_eval)") from e
    metric = sed_eval.sound_event.EventBasedMetrics(event_label_list=labels, t_collar=0.2,
                                                    evaluate_onset=True, evaluate_offset=False)
    for scene in truth:
        def container(events):
            return dcase_util.containers.MetaDataContainer(
                [{"file": scene, "event_label": lab, "onset": on, "offset": off} for lab, on, off in events])
        metric.evaluate(reference_event_list=container(truth[scene]), estimated_event_list=container(found[scene]))
    r = metric.results_overall_metrics()
    return {"f1": float(r["f_measure"]["f_measure"]), "precision": float(r["f_measure"]["precision"]),
            "recall": float(r["f_measure"]["recall"])}


def delays(truth: list, events: list) -> list:
    """Decision delay (s) of each true event's first matching start (same label, onset within the event)."""
    out = []
    for label, on, off in truth:
        starts = [e for e in events if e.kind == "start" and e.label == label and on - 0.2 <= e.time <= off]
        if starts:
            out.append(starts[0].decided_at - on)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the bundled default model)")
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--labels", type=int, default=8, help="most frequent test labels used")
    p.add_argument("--per-label", type=int, default=20, help="clips per label at most")
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--scene-seconds", type=float, default=30.0)
    p.add_argument("--events", type=int, default=4, help="events per scene")
    p.add_argument("--snr-db", type=float, default=6.0)
    p.add_argument("--background-seconds", type=float, default=600.0, help="background-only audio for FA/hour")
    p.add_argument("--hop", type=float, default=0.5)
    p.add_argument("--on", type=float, default=0.5)
    p.add_argument("--off", type=float, default=0.35)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results as JSON to this file ('-' prints them)")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from clap_rt.audio import load_audio
    from clap_rt.checkpoints import load_model
    from clap_rt.zeroshot import Clap
    torch.set_num_threads(args.threads)
    clips = read_test_clips(args.manifest, args.labels, args.per_label)
    clap = Clap(*load_model(args.model), threads=args.threads)
    labels = sorted(clips)
    rng = np.random.default_rng(args.seed)
    cache: dict = {}

    def load(path):
        if path not in cache:
            cache[path] = load_audio(path, clap.sample_rate)
        return cache[path]

    truth, found, all_delays, compute, audio_s, ours_s = {}, {}, [], [], 0.0, 0.0
    for i in range(args.scenes):
        audio, t = make_scene(clips, args.scene_seconds, args.events, args.snr_db, clap.sample_rate, rng, load)
        events, stats = run_pipeline(clap, audio, labels, args)
        name = f"scene{i}"
        truth[name] = t
        found[name] = [(e.label, e.onset, e.offset) for e in events if e.kind == "end"]
        all_delays += delays(t, events)
        compute += stats.compute
        audio_s += stats.audio_seconds
        ours_s += sum(stats.compute) + stats.frontend_seconds
    bg = background_noise(int(args.background_seconds * clap.sample_rate), clap.sample_rate, rng)
    bg_events, bg_stats = run_pipeline(clap, bg, labels, args)
    n_fa = sum(e.kind == "start" for e in bg_events)
    base = baseline_rtf(clap, bg, args.hop)          # the same background audio as ours_bg
    ours_bg = (sum(bg_stats.compute) + bg_stats.frontend_seconds) / bg_stats.audio_seconds
    f1 = event_f1(truth, found, labels)
    d = np.asarray(all_delays) if all_delays else np.full(1, np.nan)
    res = {
        "model": clap.config.name, "labels": labels, "scenes": args.scenes, "events": sum(map(len, truth.values())),
        "hop_s": args.hop, "snr_db": args.snr_db, "thresholds": [args.on, args.off], **f1,
        "delay_p50_s": float(np.percentile(d, 50)), "delay_p95_s": float(np.percentile(d, 95)),
        "false_alarms_per_hour": n_fa * 3600.0 / args.background_seconds,
        "rtf_stream": ours_s / audio_s, "rtf_stream_background": ours_bg, "rtf_baseline_recompute": base,
        "compute_per_hop_p50_ms": 1e3 * float(np.percentile(compute, 50)),
        "compute_per_hop_p95_ms": 1e3 * float(np.percentile(compute, 95)),
        "threads": args.threads,
    }
    rows = [("event F1 (200 ms onset collar)", f"{res['f1']:.3f}  (P {res['precision']:.3f}, R {res['recall']:.3f})"),
            ("detection delay p50 / p95", f"{res['delay_p50_s']:.2f} s / {res['delay_p95_s']:.2f} s"),
            ("false alarms per hour (background)", f"{res['false_alarms_per_hour']:.1f}"),
            ("real-time factor, streaming (scenes)", f"{res['rtf_stream']:.4f}"),
            ("real-time factor, streaming (background)", f"{res['rtf_stream_background']:.4f}"),
            ("real-time factor, baseline (background)", f"{res['rtf_baseline_recompute']:.4f}"),
            ("compute per hop p50 / p95", f"{res['compute_per_hop_p50_ms']:.1f} / {res['compute_per_hop_p95_ms']:.1f} ms")]
    print(f"model {res['model']}, {len(labels)} labels, {res['events']} events in {args.scenes} x "
          f"{args.scene_seconds:.0f} s scenes, SNR {args.snr_db} dB, hop {args.hop} s, {args.threads} thread(s)")
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    res = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in res.items()}   # valid JSON
    if args.json == "-":
        print(json.dumps(res, indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
