"""Fuzzing the inputs a user hands the library, for a bounded time, with atheris (libFuzzer).

    python -m bench.fuzz --target decode|model-folder|index [--seconds 300 | --runs N] [--findings DIR]

Targets (the bytes libFuzzer makes, seeded with small valid inputs of each kind):
  decode        bytes as a sound file -> `audio.read_blocks` of its path (what classify decodes with) ->
                `audio.iter_windows` -> `frontend.log_mel` of every window
  model-folder  the first byte picks config.json or model.safetensors, the rest replaces that
                file in a tiny random model folder (made with `checkpoints.save_model`) ->
                `Clap.load` on the torch engine
  index         bytes as the .npz of `clap-rt embed -o` -> `cli.search.load_index`
The contract: every input loads (decodes) or raises `UserError`; any other exception is a
finding, printed once per type and place with the input saved under --findings, and fuzzing
goes on. A hang (over --timeout s) or a crash of native code stops libFuzzer, which saves the
input there too. clap_rt's modules are instrumented for coverage (atheris.instrument_imports);
numpy, torch and the native libraries are not. Exit status 1 when there were findings.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

# One core: numpy's BLAS and torch each get one thread.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROG = "python -m bench.fuzz"
TARGETS = ("decode", "model-folder", "index")
RSS_LIMIT_MB = 3072          # libFuzzer stops an input that takes the process past this
# Instrumented for coverage: the library and the pure-Python parsers under the targets (zip
# members and .npy headers, JSON, soundfile's wrapper); numpy's core, torch and the native
# libraries give no coverage.
INSTRUMENTED = ["clap_rt", "zipfile", "numpy.lib._format_impl", "numpy.lib._npyio_impl", "soundfile", "json"]


def import_atheris():
    try:
        import atheris
    except ImportError as e:
        raise RuntimeError(f"fuzzing requires the atheris package (pip install atheris): {e}") from e
    return atheris


def instrumented():
    """First imports of INSTRUMENTED modules under this are instrumented for coverage when
    atheris is installed (run() says so in one line when it is not)."""
    try:
        return import_atheris().instrument_imports(include=INSTRUMENTED)
    except RuntimeError:
        return contextlib.nullcontext()


# --- the targets: (seed inputs, one input -> None or an exception) ---------------------------

def decode_target(root: Path):
    import numpy as np
    import soundfile as sf
    from clap_rt.audio import iter_windows, read_blocks
    from clap_rt.checkpoints import DEFAULT_MODEL_DIR, read_config
    from clap_rt.frontend import log_mel
    cfg, _ = read_config(DEFAULT_MODEL_DIR)
    fe = cfg.frontend
    rng = np.random.default_rng(0)
    seeds = []
    for rate, channels, fmt, subtype, seconds in [(44100, 1, "WAV", "PCM_16", 0.02), (22050, 2, "WAV", "FLOAT", 0.02),
                                                  (8000, 1, "FLAC", "PCM_16", 0.2), (16000, 1, "OGG", "VORBIS", 0.2),
                                                  (11025, 1, "AIFF", "PCM_24", 0.05), (8000, 3, "AU", "ULAW", 0.05),
                                                  (96000, 1, "WAV", "PCM_U8", 0.01)]:
        buf = io.BytesIO()
        x = 0.3 * rng.standard_normal((int(rate * seconds), channels))
        sf.write(buf, x, rate, format=fmt, subtype=subtype)
        seeds.append(buf.getvalue())

    path = root / "input"

    def one(data: bytes) -> None:
        path.write_bytes(data)          # a file, as classify reads one (libsndfile's own I/O)
        blocks = read_blocks(path, fe.sample_rate)
        for w in iter_windows(blocks, fe.clip_samples, short=cfg.short_clips):
            log_mel(w[None], fe)
    return seeds, one


def tiny_model_folder(folder: Path) -> Path:
    """A random clap-rt-small-shaped model with tiny towers and a 6-word vocabulary, saved."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from clap_rt.checkpoints import save_model
    from clap_rt.config import small_default
    from clap_rt.model import CLAP
    from clap_rt.tokenizer import TextTokenizer
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "the", "sound", "of", "dog"])}
    cfg = small_default()
    cfg.name = "fuzz-tiny"
    cfg.audio.sfx_cnn.channels = (4, 4, 8, 8)
    cfg.audio.sfx_cnn.aisfx_input = False
    cfg.text.hf_config = dict(cfg.text.hf_config, vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1,
                              num_attention_heads=2, intermediate_size=8, max_position_embeddings=16)
    cfg.text.pretrained, cfg.text.max_length = "", 16
    cfg.projection.dim = 8
    torch.manual_seed(0)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return save_model(CLAP(cfg).eval(), folder, TextTokenizer(backend, cfg.text))


def model_folder_target(root: Path):
    import torch
    from clap_rt.checkpoints import CONFIG_FILE, WEIGHTS_FILE
    from clap_rt.zeroshot import Clap
    torch.set_num_threads(1)
    folder = tiny_model_folder(root / "model")
    files = (CONFIG_FILE, WEIGHTS_FILE)
    good = {name: (folder / name).read_bytes() for name in files}
    seeds = [bytes([i]) + good[name] for i, name in enumerate(files)]

    def one(data: bytes) -> None:
        fuzzed = files[data[0] % 2] if data else CONFIG_FILE
        for name in files:
            (folder / name).write_bytes(data[1:] if name == fuzzed else good[name])
        Clap.load(folder, backend="torch", threads=1)
    return seeds, one


def index_target(root: Path):
    import numpy as np
    from clap_rt.cli.search import load_index
    rng = np.random.default_rng(0)
    seeds = []
    for save in (np.savez, np.savez_compressed):      # embed writes the first; np.load reads both
        buf = io.BytesIO()
        save(buf, paths=np.array(["a.wav", "dir/b.flac", "名前.ogg"]), model=np.array("fuzz-tiny"),
             embeddings=rng.standard_normal((3, 8)).astype(np.float32))
        seeds.append(buf.getvalue())
    path = root / "index.npz"

    def one(data: bytes) -> None:
        path.write_bytes(data)
        load_index(str(path))
    return seeds, one


SETUP = {"decode": decode_target, "model-folder": model_folder_target, "index": index_target}


# --- the run ---------------------------------------------------------------------------------

def place(e: BaseException) -> str:
    """Where an exception was raised: its innermost frame in clap_rt, else the innermost frame."""
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if f"{os.sep}clap_rt{os.sep}" in f.filename]
    f = (ours or frames)[-1]
    return f"{os.path.relpath(f.filename)}:{f.lineno} in {f.name}"


class Campaign:
    """Counts the inputs, keeps one saved input per finding (type and place), stops on time."""

    def __init__(self, target: str, one, findings: Path, seconds: float | None, runs: int | None, cleanup: Path):
        from clap_rt.errors import UserError
        self.target, self.one, self.findings = target, one, findings
        self.user_error = UserError
        self.seconds, self.max_runs, self.cleanup = seconds, runs, cleanup
        self.t0 = time.monotonic()
        self.runs = self.loaded = self.refused = 0
        self.seen: dict[tuple[str, str], int] = {}

    def __call__(self, data: bytes) -> None:
        self.runs += 1
        try:
            self.one(data)
            self.loaded += 1
        except self.user_error:
            self.refused += 1
        except Exception as e:        # the contract is UserError or nothing: anything else is a finding
            kind = type(e).__qualname__ if type(e).__module__ == "builtins" else \
                f"{type(e).__module__}.{type(e).__qualname__}"
            key = (kind, place(e))
            if key not in self.seen:
                saved = self.findings / f"{self.target}-{len(self.seen) + 1}-{type(e).__name__}.bin"
                saved.write_bytes(data)
                msg = str(e).splitlines()[0][:200] if str(e) else ""
                print(f"{PROG}: finding: {key[0]} at {key[1]}: {msg} (input saved as {saved})",
                      file=sys.stderr, flush=True)
            self.seen[key] = self.seen.get(key, 0) + 1
        if (self.seconds is not None and time.monotonic() - self.t0 >= self.seconds) or \
                (self.max_runs is not None and self.runs >= self.max_runs):
            self.finish()

    def finish(self) -> None:
        wall = time.monotonic() - self.t0
        print(f"{self.target}: {self.runs} executions in {wall:.0f} s ({self.runs / wall:.0f}/s): "
              f"{self.loaded} loaded, {self.refused} refused with a UserError, "
              f"{sum(self.seen.values())} other exceptions at {len(self.seen)} place(s)")
        for (kind, where), n in sorted(self.seen.items()):
            print(f"  {n:7d}  {kind} at {where}")
        sys.stdout.flush()
        shutil.rmtree(self.cleanup, ignore_errors=True)
        # libFuzzer's loop never returns to Python: leave from here, with the figures printed.
        os._exit(1 if self.seen else 0)


def run(args: argparse.Namespace) -> int:
    from clap_rt.errors import UserError
    atheris = import_atheris()
    if args.seconds is not None and not args.seconds > 0:
        raise UserError(f"--seconds: expected a time > 0, got {args.seconds}")
    if args.runs is not None and args.runs < 1:
        raise UserError(f"--runs: expected an integer >= 1, got {args.runs}")
    findings = Path(args.findings or Path(tempfile.gettempdir()) / "clap_rt_fuzz")
    findings.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="clap_rt_fuzz."))
    seeds, one = SETUP[args.target](root)
    corpus = root / "corpus"
    corpus.mkdir()
    for i, s in enumerate(seeds):
        (corpus / f"seed{i}").write_bytes(s)
    seconds = args.seconds if args.runs is None else None
    campaign = Campaign(args.target, one, findings, seconds, args.runs, root)
    flags = [f"-max_len={max(map(len, seeds)) + 1024}", f"-timeout={args.timeout}", f"-rss_limit_mb={RSS_LIMIT_MB}",
             f"-artifact_prefix={findings}{os.sep}{args.target}-", f"-seed={args.seed}"]
    print(f"{PROG}: {args.target}: {len(seeds)} seeds, " + (f"{args.runs} runs" if args.runs else f"{seconds:.0f} s")
          + f"; findings in {findings}", file=sys.stderr, flush=True)
    atheris.Setup([sys.argv[0], *flags, str(corpus)], campaign)
    atheris.Fuzz()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, choices=TARGETS)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seconds", type=float, default=None, help="fuzz this long (default: 300)")
    g.add_argument("--runs", type=int, default=None, help="fuzz this many inputs instead")
    p.add_argument("--timeout", type=int, default=30, help="seconds one input may take before it is a hang")
    p.add_argument("--findings", default=None, help="folder for inputs that broke the contract "
                                                    "(default: clap_rt_fuzz in the temp folder)")
    p.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed")
    args = p.parse_args(argv)
    if args.seconds is None and args.runs is None:
        args.seconds = 300.0
    with instrumented():
        # every module the targets reach, imported here for the first time so it is instrumented
        import json, zipfile  # noqa: E401, F401
        import soundfile  # noqa: F401
        import clap_rt.cli.search  # noqa: F401
        import clap_rt.frontend  # noqa: F401
        from clap_rt.errors import run_program
    return run_program(PROG, lambda: run(args), also=(RuntimeError,))


if __name__ == "__main__":
    sys.exit(main())
