"""Streaming detection benchmark: soundscapes from held-out clips, event F1, delay, false alarms, RTF.

    python -m bench.stream [--model DIR] [--manifest ~/.cache/clap_rt/corpus/manifest.jsonl] [--json out.json]
    python -m bench.stream --model VAL_MODEL --split train,val --source gm-timgm6mb \
        --label-names "hi-hat,snare drum,..." --sweep 0.5,0.6,0.7,0.8 --seed 1   # choose thresholds

Soundscapes: held-out ("test" split) clips of the most frequent test labels, placed at random,
non-overlapping onsets over synthetic background noise (pink noise + mains hum, our own mixer)
at a fixed SNR. Each scene runs through the `clap-rt listen --fast` pipeline
(ClapStream -> EventDetector via `run_stream`). Reported:
  event F1   sed_eval event-based, micro over labels, 200 ms onset collar, offsets not scored
  delay      decision time of the matching start event minus the true onset (p50 / p95)
  FA/hour    start events on background-only audio, per hour; and the share of that audio's
             time with some label on (a label stuck on is one false alarm but a long one)
  RTF        frontend + model seconds per audio second; the baseline recomputes each window's
             log-mel from its raw audio (no incremental frontend), measured on the same audio
--encoder compares the incremental audio tower (what `listen` runs) with re-encoding each
window, both at the tower-aligned hop, chunk by chunk on the same audio in one process
(--audio FILE, default the demo recording, then --background-seconds of background noise):
convolution FLOPs per hop, compute per hop, RTF with the frontend, the largest cosine gap and
score difference between the two, and the cost per hop with 1 / 10 / 100 / 1000 labels (their
embeddings made once, before the stream); --backends names the engines (default torch,onnx).
It needs no corpus.
Thresholds: the model's `event_thresholds` (what `clap-rt listen` uses) unless --on/--off.
--enrol K also enrols each label from K clips of recordings the scenes do not use (`Clap.enrol`
with the label's name as text, its default scoring, background and fitted thresholds) and
scores the same scenes with the enrolled labels in place of the text ones, with their thresholds.
--sweep re-decides the same scored windows at other on thresholds (off keeps the on/off ratio)
and prints F1 and false alarms for each: an operating curve. Choose a model's thresholds on
clips it was not tested on (--split/--source/--label-names: e.g. a source left out of a
validation run), never on the test split.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.report import cpu_flags, print_rows, write_json
from clap_rt.errors import UserError, run_program
from clap_rt.labelset import LabelSet
from train.corpus.noise import background_noise
from train.data import DEFAULT_MANIFEST, Clip, read_manifest

PROG = "python -m bench.stream"



def corpus_clips(manifest: Path) -> list[Clip]:
    """The clips of the corpus manifest the benchmarks read (train.data.read_manifest)."""
    if not manifest.exists():
        raise UserError(f"--manifest {manifest}: not found; build the corpus first (python -m train.corpus) "
                        f"or pass --manifest PATH")
    return read_manifest(manifest)


def read_clips(manifest: Path, splits: list[str], source: str | None, names: list[str] | None,
               n_labels: int, per_label: int) -> dict[str, list[Path]]:
    """{label: [clip paths]} of `splits` (and `source`): the labels `names`, else the n most frequent."""
    clips: dict[str, list[Path]] = {}
    for c in corpus_clips(manifest):
        if c.split in splits and c.label and source in (None, c.source):
            clips.setdefault(c.label, []).append(Path(c.path))
    where = f"split {','.join(splits)}" + (f" of source {source!r}" if source else "")
    if names:
        missing = [n for n in names if n not in clips]
        if missing:
            raise UserError(f"--label-names {missing}: no clips in {where} of {manifest}")
        top = names
    else:
        top = sorted(clips, key=lambda k: (-len(clips[k]), k))[:n_labels]
    if not top:
        raise UserError(f"{manifest}: no labelled clips in {where}")
    return {k: clips[k][:per_label] for k in top}


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


def whole_items(members: list, item_of, k: int, rng: np.random.Generator) -> tuple[set, list]:
    """(items taken, their members): whole items (the clips cut from one recording) in random
    order until they hold at least k of `members` (`item_of(member)` names a member's item)."""
    order = sorted({item_of(m) for m in members})
    rng.shuffle(order)
    taken, pool = set(), []
    for item in order:
        if len(pool) >= k:
            break
        taken.add(item)
        pool += [m for m in members if item_of(m) == item]
    return taken, pool


def split_for_enrolment(clips: dict, items: dict, k: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """({label: k example paths}, {label: scene paths}): per label, whole items (the clips cut
    from one recording) in random order until they hold k clips, k of them enrolled; the scenes
    draw only on the other items' clips."""
    examples, scenes = {}, {}
    for label, paths in clips.items():
        taken, pool = whole_items(paths, items.__getitem__, k, rng)
        rest = [p for p in paths if items[p] not in taken]
        if len(pool) < k or not rest:
            raise UserError(f"--enrol {k}: label {label!r} has too few recordings to enrol {k} clips and keep "
                            f"others for the scenes ({len(paths)} clips, {len({items[p] for p in paths})} recordings)")
        examples[label] = sorted(rng.choice(pool, size=k, replace=False).tolist())
        scenes[label] = rest
    return examples, scenes


def clip_items(manifest: Path) -> dict:
    """{clip path: the recording it was cut from} (the row's "item", else the path itself)."""
    from train.data import read_rows
    return {Path(c.path): (r.get("item") or c.path) if isinstance(r, dict) else c.path
            for c, (_, r) in zip(corpus_clips(manifest), read_rows(manifest))}


def score_stream(clap, audio: np.ndarray, labels, hop: float):
    """The listen --fast pipeline's scoring on one signal -> ([ScoredWindow], StreamStats, ClapStream)."""
    from clap_rt.sources import ArraySource
    from clap_rt.stream import ClapStream, run_stream
    stream = ClapStream(clap, labels, clap.sample_rate, hop=hop)
    windows: list = []
    stats = run_stream(ArraySource(audio, clap.sample_rate, block=1024), stream, windows.append, live=False)
    return windows, stats, stream


ENCODER_CHUNK = 4410          # samples per accept_waveform call (0.1 s at 44.1 kHz)
LABEL_COUNTS = (1, 10, 100, 1000)


def encoder_figures(clap, audio: np.ndarray, hop: float) -> dict:
    """Incremental tower vs re-encoding on the same audio, fed to both streams chunk by chunk
    (so a busy machine slows both alike): FLOPs, compute per hop, RTF with the frontend,
    the largest cosine gap and score difference, and the cost per hop by number of labels."""
    from clap_rt.stream import ClapStream
    labels = ["dog", "door", "thunder", "car horn", "gunshot"]
    inc = ClapStream(clap, labels, clap.sample_rate, hop=hop)
    if not inc.incremental:
        raise UserError(f"--encoder: the model's audio tower is re-encoded every window ({clap.config.audio.kind})")
    ref = ClapStream(clap, labels, clap.sample_rate, hop=inc.hop_seconds, incremental=False)
    # frontend seconds and per-window seconds, by wall clock and by this thread's CPU time (one
    # thread computes everything: the CPU time is what a quiet machine's wall clock would read)
    spent = {(n, c): [0.0, []] for n in ("inc", "ref") for c in ("wall", "cpu")}
    gaps, score_diff, macs = [], 0.0, []
    for i in range(0, len(audio), ENCODER_CHUNK):
        done = {}
        for name, s in (("inc", inc), ("ref", ref)):
            t0, c0 = time.perf_counter(), time.thread_time()
            s.accept_waveform(audio[i:i + ENCODER_CHUNK])
            spent[name, "wall"][0] += time.perf_counter() - t0
            spent[name, "cpu"][0] += time.thread_time() - c0
            done[name] = []
            while s.windows_ready:
                w = s.pop_window()
                t0, c0 = time.perf_counter(), time.thread_time()
                e = s.embed_window(w)
                sc = s.score_embeddings(e[None])[0]
                spent[name, "wall"][1].append(time.perf_counter() - t0)
                spent[name, "cpu"][1].append(time.thread_time() - c0)
                done[name].append((e, sc))
                if name == "inc" and w.frame is not None:
                    macs.append(s.tower_state.macs)
        for (e1, s1), (e2, s2) in zip(done["inc"], done["ref"]):
            gaps.append(1.0 - float(e1 @ e2))
            score_diff = max(score_diff, float(np.abs(s1 - s2).max()))
    seconds = len(audio) / clap.sample_rate
    out = {"backend": clap.backend, "engine": clap.engine.name, "runner": inc.tower_state.runner,
           "steady_step": inc.tower_state.precision, "hop_requested_s": hop,
           "hop_s": inc.hop_seconds, "hop_notice": inc.notice, "windows": len(gaps), "audio_seconds": seconds,
           "conv_gflops_per_hop_incremental": 2e-9 * float(np.median(macs[1:])),
           "conv_gflops_per_hop_reencoding": 2e-9 * inc.tower_state.window_macs,
           "max_cosine_gap": max(gaps), "max_score_difference": score_diff,
           "window_ms": {k: 1e3 * v for k, v in inc.tower_state.window_seconds.items()},
           "catch_up_windows": inc.catch_up_windows}
    out["flops_ratio"] = out["conv_gflops_per_hop_reencoding"] / out["conv_gflops_per_hop_incremental"]
    for (name, clock), (fe_s, per) in spent.items():
        out[f"{name}_compute_per_hop_p50_ms_{clock}"] = 1e3 * float(np.percentile(per, 50))
        out[f"{name}_frontend_ms_per_audio_s_{clock}"] = 1e3 * fe_s / seconds
        out[f"{name}_rtf_{clock}"] = (fe_s + sum(per)) / seconds
    for clock in ("wall", "cpu"):
        out[f"rtf_ratio_{clock}"] = out[f"ref_rtf_{clock}"] / out[f"inc_rtf_{clock}"]
    out["labels"] = labels_cost(clap, audio[: 20 * clap.sample_rate], inc.hop_seconds)
    return out


def labels_cost(clap, audio: np.ndarray, hop: float) -> list[dict]:
    """Per number of labels: seconds to embed them once, then per hop (p50, ms of CPU time) the
    compute (embedding + scoring) and the scoring alone."""
    from clap_rt.stream import ClapStream
    rows = []
    for n in LABEL_COUNTS:
        t0 = time.perf_counter()
        s = ClapStream(clap, [f"sound number {i}" for i in range(n)], clap.sample_rate, hop=hop)
        setup = time.perf_counter() - t0
        per, scoring = [], []
        s.accept_waveform(audio)
        while s.windows_ready:
            w = s.pop_window()
            c0 = time.thread_time()
            e = s.embed_window(w)
            c1 = time.thread_time()
            s.score_embeddings(e[None])
            per.append(time.thread_time() - c0)
            scoring.append(time.thread_time() - c1)
        rows.append({"labels": n, "label_setup_s": setup, "compute_per_hop_p50_ms_cpu": 1e3 * float(np.median(per[1:])),
                     "scoring_per_hop_p50_ms_cpu": 1e3 * float(np.median(scoring[1:]))})
    return rows


def run_encoder(args: argparse.Namespace) -> int:
    """--encoder: the incremental tower against re-encoding, per backend; print and write."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from clap_rt.audio import load_audio
    from clap_rt.checkpoints import DEFAULT_MODEL_DIR, read_config
    from clap_rt.zeroshot import Clap
    torch.set_num_threads(args.threads)
    cfg, _ = read_config(args.model or DEFAULT_MODEL_DIR)
    rate = cfg.frontend.sample_rate
    audio = load_audio(args.audio, rate)
    bg = background_noise(int(args.background_seconds * rate), rate, np.random.default_rng(args.seed))
    audio = np.concatenate([audio, bg]).astype(np.float32)
    res = {"model": cfg.name, "threads": args.threads, "cpu_flags": cpu_flags(), "audio": str(args.audio),
           "load_average": os.getloadavg(), "runs": []}
    for backend in args.backends.split(","):
        clap = Clap.load(args.model, backend=backend, threads=args.threads)     # auto: a shipped int8 step may run
        r = encoder_figures(clap, audio, args.hop)
        res["runs"].append(r)
        print(f"{res['model']}, --backend {r['backend']}: engine {r['engine']}, steady step {r['steady_step']}, "
              f"{args.threads} thread(s), CPU {' '.join(res['cpu_flags'])}, "
              f"load average {os.getloadavg()[0]:.1f}; "
              f"{r['hop_notice'] or 'hop ' + format(r['hop_s'], '.3f') + ' s'}; {r['windows']} windows of "
              f"{r['audio_seconds']:.0f} s")
        rows = [("conv GFLOPs per hop, incremental / re-encoding",
                 f"{r['conv_gflops_per_hop_incremental']:.3f} / {r['conv_gflops_per_hop_reencoding']:.3f} "
                 f"({r['flops_ratio']:.2f}x fewer)"),
                *[(f"compute per hop p50 ({clock}), incremental / re-encoding",
                   f"{r[f'inc_compute_per_hop_p50_ms_{clock}']:.1f} / {r[f'ref_compute_per_hop_p50_ms_{clock}']:.1f} ms")
                  for clock in ("cpu", "wall")],
                *[(f"RTF with the frontend ({clock}), incremental / re-encoding",
                   f"{r[f'inc_rtf_{clock}']:.4f} / {r[f'ref_rtf_{clock}']:.4f} ({r[f'rtf_ratio_{clock}']:.2f}x)")
                  for clock in ("cpu", "wall")],
                ("max cosine gap / max score difference", f"{r['max_cosine_gap']:.1e} / {r['max_score_difference']:.1e}"),
                ("first / steady window, running mean (wall)",
                 f"{r['window_ms'].get('first', float('nan')):.1f} / {r['window_ms'].get('steady', float('nan')):.1f} ms: "
                 f"a live stream catches up on {r['catch_up_windows']} window(s)")]
        rows += [(f"{c['labels']} labels: compute / scoring per hop p50 (cpu), setup",
                  f"{c['compute_per_hop_p50_ms_cpu']:.1f} / {c['scoring_per_hop_p50_ms_cpu']:.3f} ms, "
                  f"{c['label_setup_s']:.1f} s") for c in r["labels"]]
        print_rows(rows, indent="  ")
    write_json(res, args.json)
    return 0


def decide(windows: list, labels: list, on: float, off: float, per_label: dict | None = None) -> list:
    """listen's decisions (default smoothing) on scored windows -> start and end events;
    per_label: {label: (on, off)} for the labels with their own (an enrolled label's)."""
    from clap_rt.detect import DetectorConfig, EventDetector, Thresholds
    per_label = per_label or {}
    th = Thresholds({k: v[0] for k, v in per_label.items()}, {k: v[1] for k, v in per_label.items()},
                    default_on=on, default_off=off)
    det = EventDetector(labels, th, DetectorConfig())
    return [e for w in windows for e in det.update(w)] + det.finish()


def detection_scores(truth: dict, scene_windows: dict, bg_windows: list, bg_seconds: float,
                     labels: list, on: float, off: float, per_label: dict | None = None) -> dict:
    """Event F1 / P / R, delays p50 / p95 (s), false alarms per hour and the share of the
    background's time with some label on, at one threshold pair (and `per_label`'s)."""
    found, all_delays = {}, []
    for name, windows in scene_windows.items():
        events = decide(windows, labels, on, off, per_label)
        found[name] = [(e.label, e.onset, e.offset) for e in events if e.kind == "end"]
        all_delays += delays(truth[name], events)
    bg_events = decide(bg_windows, labels, on, off, per_label)
    n_fa = sum(e.kind == "start" for e in bg_events)
    d = np.asarray(all_delays) if all_delays else np.full(1, np.nan)
    return {"thresholds": [on, off], **event_f1(truth, found, labels),
            "delay_p50_s": float(np.percentile(d, 50)), "delay_p95_s": float(np.percentile(d, 95)),
            "false_alarms_per_hour": n_fa * 3600.0 / bg_seconds,
            "false_on_fraction": covered_seconds([(e.onset, e.offset) for e in bg_events if e.kind == "end"])
            / bg_seconds}


def covered_seconds(intervals: list) -> float:
    """Length of the union of [on, off) intervals: how long any label was on."""
    total, end = 0.0, -np.inf
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


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
        raise UserError("event F1 requires the sed_eval package (pip install sed_eval)") from e
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


def json_safe(x):
    """NaN (no delays measured) -> None, in nested dicts and lists: valid JSON."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list):
        return [json_safe(v) for v in x]
    return None if isinstance(x, float) and np.isnan(x) else x


def run(args: argparse.Namespace) -> int:
    """Score the soundscapes and the background audio, print (and write) the results."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from clap_rt.audio import load_audio
    from clap_rt.zeroshot import Clap
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.label_names.split(",") if n.strip()] if args.label_names else None
    clips = read_clips(args.manifest, args.split.split(","), args.source, names, args.labels, args.per_label)
    sweep = [float(v) for v in args.sweep.split(",")] if args.sweep else []
    clap = Clap.load(args.model, backend=args.backend, threads=args.threads)   # as listen loads it
    on, off = clap.config.event_thresholds
    on = on if args.on is None else args.on
    off = off if args.off is None else args.off
    labels = sorted(clips)
    rng = np.random.default_rng(args.seed)
    pack = None
    if args.enrol:
        examples, clips = split_for_enrolment(clips, clip_items(args.manifest), args.enrol, rng)
        for label in labels:
            pack = clap.enrol(label, examples[label], text=label, pack=pack)
    cache: dict = {}

    def load(path):
        if path not in cache:
            cache[path] = load_audio(path, clap.sample_rate)
        return cache[path]

    truth, scene_windows, enrolled_windows, compute, audio_s, ours_s = {}, {}, {}, [], 0.0, 0.0
    for i in range(args.scenes):
        audio, t = make_scene(clips, args.scene_seconds, args.events, args.snr_db, clap.sample_rate, rng, load)
        windows, stats, _ = score_stream(clap, audio, labels, args.hop)
        truth[f"scene{i}"], scene_windows[f"scene{i}"] = t, windows
        if pack is not None:
            enrolled_windows[f"scene{i}"] = score_stream(clap, audio, LabelSet([pack]), args.hop)[0]
        compute += stats.compute
        audio_s += stats.audio_seconds
        ours_s += stats.compute_seconds + stats.frontend_seconds
    bg = background_noise(int(args.background_seconds * clap.sample_rate), clap.sample_rate, rng)
    bg_windows, bg_stats, bg_stream = score_stream(clap, bg, labels, args.hop)
    step = bg_stream.tower_state.precision if bg_stream.incremental else "re-encoded"
    enrolled = None
    if pack is not None:
        bg_enrolled = score_stream(clap, bg, LabelSet([pack]), args.hop)[0]
        per_label = LabelSet([pack]).thresholds()
        enrolled = {"examples_per_label": args.enrol,
                    **detection_scores(truth, enrolled_windows, bg_enrolled, args.background_seconds, labels,
                                       on, off, per_label), "label_thresholds": per_label}
    # the same background audio as ours_bg, at the hop the stream ran (rounded for the incremental tower)
    base = baseline_rtf(clap, bg, bg_windows[1].start - bg_windows[0].start)
    ours_bg = (bg_stats.compute_seconds + bg_stats.frontend_seconds) / bg_stats.audio_seconds

    def scores_at(on_: float, off_: float) -> dict:
        return detection_scores(truth, scene_windows, bg_windows, args.background_seconds, labels, on_, off_)

    res = {
        "model": clap.config.name, "backend": args.backend, "engine": clap.engine.name, "steady_step": step,
        "labels": labels, "split": args.split, "source": args.source,
        "scenes": args.scenes, "events": sum(map(len, truth.values())),
        "hop_s": args.hop, "hop_run_s": bg_windows[1].start - bg_windows[0].start, "snr_db": args.snr_db,
        **scores_at(on, off),
        "rtf_stream": ours_s / audio_s, "rtf_stream_background": ours_bg, "rtf_baseline_recompute": base,
        "compute_per_hop_p50_ms": 1e3 * float(np.percentile(compute, 50)),
        "compute_per_hop_p95_ms": 1e3 * float(np.percentile(compute, 95)),
        "threads": args.threads,
        "sweep": [scores_at(v, round(v * off / on, 4)) for v in sweep],
        "enrolled": enrolled,
    }
    rows = [("event F1 (200 ms onset collar)", f"{res['f1']:.3f}  (P {res['precision']:.3f}, R {res['recall']:.3f})"),
            ("detection delay p50 / p95", f"{res['delay_p50_s']:.2f} s / {res['delay_p95_s']:.2f} s"),
            ("false alarms per hour (background)", f"{res['false_alarms_per_hour']:.1f}"),
            ("background time with a label on", f"{100 * res['false_on_fraction']:.1f}%"),
            ("real-time factor, streaming (scenes)", f"{res['rtf_stream']:.4f}"),
            ("real-time factor, streaming (background)", f"{res['rtf_stream_background']:.4f}"),
            ("real-time factor, baseline (background)", f"{res['rtf_baseline_recompute']:.4f}"),
            ("compute per hop p50 / p95", f"{res['compute_per_hop_p50_ms']:.1f} / {res['compute_per_hop_p95_ms']:.1f} ms")]
    print(f"model {res['model']}, {len(labels)} labels, {res['events']} events in {args.scenes} x "
          f"{args.scene_seconds:.0f} s scenes, SNR {args.snr_db} dB, hop {args.hop} s, {args.threads} thread(s), "
          f"--backend {args.backend} (engine {clap.engine.name}, steady step {step}), on {on} / off {off}")
    if enrolled is not None:
        rows += [(f"enrolled ({args.enrol} clips + name): event F1",
                  f"{enrolled['f1']:.3f}  (P {enrolled['precision']:.3f}, R {enrolled['recall']:.3f})"),
                 ("enrolled: detection delay p50 / p95",
                  f"{enrolled['delay_p50_s']:.2f} s / {enrolled['delay_p95_s']:.2f} s"),
                 ("enrolled: false alarms per hour", f"{enrolled['false_alarms_per_hour']:.1f}"),
                 ("enrolled: background time with a label on", f"{100 * enrolled['false_on_fraction']:.1f}%"),
                 ("enrolled: fitted on thresholds", ", ".join(f"{k} {v[0]:.2f}" for k, v in per_label.items()))]
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    if sweep:
        print("\n  on     off    F1     P      R      FA/h   bg on  delay p50")
        for r in res["sweep"]:
            print(f"  {r['thresholds'][0]:<6} {r['thresholds'][1]:<6} {r['f1']:.3f}  {r['precision']:.3f}  "
                  f"{r['recall']:.3f}  {r['false_alarms_per_hour']:<6.1f} {100 * r['false_on_fraction']:4.1f}%  "
                  f"{r['delay_p50_s']:.2f} s")
    write_json(json_safe(res), args.json)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the bundled default model)")
    p.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    p.add_argument("--labels", type=int, default=8, help="most frequent labels of --split used")
    p.add_argument("--label-names", default=None, help="comma-separated labels instead of the most frequent")
    p.add_argument("--split", default="test", help="comma-separated manifest splits the clips come from "
                                                     "(default: test)")
    p.add_argument("--source", default=None, help="only clips of this manifest source")
    p.add_argument("--per-label", type=int, default=20, help="clips per label at most")
    # 40 scenes, 160 events: one model's F1 read 0.05 on 10 scenes and 0.20 on 20 scenes that
    # included them; 10 are too few to compare models or thresholds.
    p.add_argument("--scenes", type=int, default=40)
    p.add_argument("--scene-seconds", type=float, default=30.0)
    p.add_argument("--events", type=int, default=4, help="events per scene")
    p.add_argument("--snr-db", type=float, default=6.0)
    p.add_argument("--background-seconds", type=float, default=600.0, help="background-only audio for FA/hour")
    p.add_argument("--hop", type=float, default=0.5)
    p.add_argument("--on", type=float, default=None, help="on threshold (default: the model's)")
    p.add_argument("--off", type=float, default=None, help="off threshold (default: the model's)")
    p.add_argument("--sweep", default=None, metavar="ON,ON,...",
                   help="also decide at these on thresholds, off = on x (off / on)")
    p.add_argument("--enrol", type=int, default=0, metavar="K",
                   help="also enrol each label from K clips of recordings kept out of the scenes (with its "
                        "name as text; `clap-rt enrol`'s defaults and thresholds) and score the same scenes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backend", default="auto", help="engine, as listen's --backend (auto: with a shipped int8 "
                   "streaming step; onnx: fp32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results as JSON to this file ('-' prints them)")
    p.add_argument("--encoder", action="store_true",
                   help="only compare the incremental audio tower with re-encoding (no corpus needed)")
    p.add_argument("--audio", type=Path, default=Path(__file__).resolve().parents[1] / "demo" / "soundscape.flac",
                   help="--encoder: the recording streamed before the background noise")
    p.add_argument("--backends", default="torch,onnx,auto",
                   help="--encoder: comma-separated --backend values (auto: the one listen picks, with a shipped int8 step)")
    args = p.parse_args(argv)
    return run_program(PROG, lambda: run_encoder(args) if args.encoder else run(args))


if __name__ == "__main__":
    sys.exit(main())
