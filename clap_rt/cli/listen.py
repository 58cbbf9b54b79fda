"""clap-rt listen --labels "siren,glass breaking": continuous zero-shot event detection."""
from __future__ import annotations

import contextlib
import json
import sys

from ..detect import DEFAULT_BACKGROUND, DetectorConfig, EventDetector, Thresholds, check_pair
from ..errors import UserError
from .common import add_label_options, add_model_options, check_writable, load_clap, read_labels


def add_stream_options(p) -> None:
    """Window, scoring and decision options shared by listen and calibrate."""
    p.add_argument("--hop", type=float, default=0.5, help="seconds between windows (default: 0.5)")
    p.add_argument("--window", type=float, default=None,
                   help="window length in seconds, at most the model's (default: the model's)")
    p.add_argument("--background-prompts", default=None,
                   help='comma-separated prompts the labels compete with (default: "'
                        + ",".join(DEFAULT_BACKGROUND) + '")')


def add_parser(sub) -> None:
    p = sub.add_parser("listen", help="detect labelled sound events in a live stream, a file or stdin")
    add_label_options(p)
    add_model_options(p)
    g = p.add_argument_group("input")
    g.add_argument("--input", default=None, metavar="FILE|-",
                   help="a sound file played as a live stream, or - for raw PCM on stdin (default: microphone)")
    g.add_argument("--device", default=None, help="input device index or name (see `clap-rt devices`)")
    g.add_argument("--fast", action="store_true", help="file/stdin: as fast as possible, every window scored")
    g.add_argument("--rate", type=int, default=None, help="sample rate in Hz (stdin: required; mic: default rate)")
    g.add_argument("--channels", type=int, default=1, help="channels of the input (default: 1)")
    g.add_argument("--format", default="s16le", help="stdin PCM format: s16le, s32le or f32le (default: s16le)")
    g.add_argument("--queue-size", type=int, default=128,
                   help="audio chunks (1024 samples) held between capture and inference (default: 128)")
    add_stream_options(p)
    d = p.add_argument_group("decisions")
    d.add_argument("--thresholds", default=None, help="per-label thresholds file from `clap-rt calibrate`")
    d.add_argument("--on", type=float, default=None, help="on threshold for labels not in --thresholds (default: the model's, see `clap-rt info`)")
    d.add_argument("--off", type=float, default=None, help="off threshold for labels not in --thresholds (default: the model's)")
    d.add_argument("--smoothing", default="median", choices=("median", "ema", "none"))
    d.add_argument("--smooth-windows", type=int, default=3, help="median length in windows, odd (default: 3)")
    d.add_argument("--ema-alpha", type=float, default=0.5)
    d.add_argument("--min-duration", type=float, default=0.0, help="seconds before a start is reported")
    d.add_argument("--debounce", type=float, default=0.0, help="gaps shorter than this (s) do not end an event")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="JSON lines on stdout: one per start / end event")
    o.add_argument("--caption", action="store_true",
                   help="add a caption of the event's strongest window to each end (models with a captioner)")
    o.add_argument("--plot", default=None, metavar="PNG", help="write the score timeline with events to PNG")
    o.add_argument("--no-view", action="store_true", help="no live terminal view even on a terminal")
    p.set_defaults(func=run)


def background_prompts(args, thresholds: Thresholds) -> list[str]:
    if args.background_prompts is not None:
        prompts = [s.strip() for s in args.background_prompts.split(",") if s.strip()]
        if not prompts:
            raise UserError('--background-prompts: expected comma-separated prompts, e.g. "background noise,silence"')
        return prompts
    return list(thresholds.background or DEFAULT_BACKGROUND)


def load_thresholds(args, labels, model_pair: tuple) -> Thresholds:
    """Per label: the --thresholds file's, else an enrolled label's own (its pack's), else the
    model's (on, off) unless --on/--off are given. labels: a LabelSet."""
    th = Thresholds.load(args.thresholds) if args.thresholds else Thresholds()
    for name, (on, off) in labels.thresholds().items():
        if name not in th.on:
            th.on[name], th.off[name] = on, off
    th.default_on, th.default_off = model_pair
    if args.on is not None:
        th.default_on = args.on
    if args.off is not None:
        th.default_off = args.off
    given = args.on is not None or args.off is not None
    check_pair(th.default_on, th.default_off, "--on/--off" if given else "the model's event_thresholds")
    missing = [label for label in labels.names if args.thresholds and label not in th.on]
    if missing:
        print(f"clap-rt listen: {args.thresholds} has no thresholds for {missing}; using on={th.default_on} "
              f"off={th.default_off}", file=sys.stderr)
    return th


def run(args) -> int:
    from ..live_view import LiveView, TimelinePlot, event_line
    from ..sources import open_source
    from ..stream import ClapStream, StreamStats, run_stream

    labels = read_labels(args)
    if args.plot:
        check_writable(args.plot, "--plot")
    clap = load_clap(args)
    labels.check_model(clap)             # a pack from another model: before any audio is opened
    thresholds = load_thresholds(args, labels, clap.config.event_thresholds)
    names = labels.names
    captions = None
    if args.caption:
        from ..caption import EventCaptions
        captions = EventCaptions(clap.captioner, names)
    detector = EventDetector(names, thresholds, DetectorConfig(
        smoothing=args.smoothing, smooth_windows=args.smooth_windows, ema_alpha=args.ema_alpha,
        min_duration=args.min_duration, debounce=args.debounce))
    source = open_source(args.input, fast=args.fast, device=args.device, rate=args.rate,
                         channels=args.channels, fmt=args.format, queue_size=args.queue_size)
    stream = ClapStream(clap, labels, source.rate, hop=args.hop, window=args.window,
                        background=background_prompts(args, thresholds), template=args.template or thresholds.template)
    if stream.notice:
        print(f"clap-rt listen: {stream.notice}", file=sys.stderr)
    pairs = [thresholds.pair(label) for label in names]
    use_view = sys.stdout.isatty() and not args.json and not args.no_view
    view = LiveView(names, pairs) if use_view else None
    plot = TimelinePlot(names, pairs) if args.plot else None

    def emit(window, events) -> None:
        if captions is not None and window is not None:
            captions.update(window.scores, window.embedding)
        for e in events:
            caption = captions.end(e.label) if captions is not None and e.kind == "end" else None
            if args.json:
                print(json.dumps(e.to_json() if caption is None else {**e.to_json(), "caption": caption}), flush=True)
            elif view is None:
                print(event_line(e) + (f"  {caption}" if caption is not None else ""), flush=True)
        for sink in (view, plot):
            if sink is not None:
                sink.update(window, events)

    stats = StreamStats()
    live = args.input is None or not args.fast
    source.start()
    with view if view is not None else contextlib.nullcontext():
        try:
            run_stream(source, stream, lambda w: emit(w, detector.update(w)), live=live, stats=stats)
        except KeyboardInterrupt:
            pass            # Ctrl-C: close open events and print the summary below
        except UserError as e:
            # The input failed (a file damaged half way): its one-line error, no summary after it.
            raise UserError(str(e) if str(e).startswith(source.name) else f"{source.name}: {e}")
        finally:
            source.stop()
        emit(None, detector.finish())
    stats.dropped_chunks, stats.overflows = source.dropped, source.overflows
    zeroed = f", NaN/Inf samples zeroed {source.nonfinite}" if source.nonfinite else ""
    print(f"clap-rt listen: {stats.summary_line()}{zeroed}", file=sys.stderr, flush=True)
    if plot is not None:
        plot.save(args.plot)
    return 0
