"""Build the corpus: install packages, run each source (resumable), then write manifest,
held-out list, stats and attribution."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import defaultdict

from clap_rt.errors import UserError

from .clips import run_tasks
from .manifest import assign_splits, write_jsonl_atomic, write_manifest
from .render import render_source
from .sources import HELDOUT, SOURCES, Source


def _installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and "install ok installed" in out.stdout


def ensure_packages(packages: list[str]) -> None:
    """apt-get install the missing packages (one `apt-get update` first); UserError if not root."""
    missing = sorted({p for p in packages if not _installed(p)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise UserError(f"packages {' '.join(missing)} are missing and installing them needs root "
                        f"(run: sudo apt-get install -y {' '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=True, env=env)


def build_source(source: Source, data_dir: str, max_per_item: int, jobs: int) -> list[dict]:
    """Produce the rows of one source; skipped (read back) when its done-marker exists."""
    parts = os.path.join(data_dir, "parts")
    done, part = os.path.join(parts, f"{source.name}.done"), os.path.join(parts, f"{source.name}.jsonl")
    if os.path.exists(done):
        with open(part, encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    shutil.rmtree(os.path.join(data_dir, "clips", source.name), ignore_errors=True)
    t0 = time.time()
    if source.soundfont:
        rows = render_source(source.name, source.soundfont, data_dir)
    else:
        rows = run_tasks(source.tasks(source.name, max_per_item), data_dir, jobs)
    os.makedirs(parts, exist_ok=True)
    write_jsonl_atomic(part, rows)
    with open(done + ".tmp", "w") as f:
        f.write(f"{len(rows)} clips in {time.time() - t0:.1f} s\n")
    os.replace(done + ".tmp", done)  # written last: a crash before this re-runs the source
    print(f"{source.name}: {len(rows)} clips in {time.time() - t0:.1f} s", flush=True)
    return rows


def corpus_stats(rows: list[dict]) -> dict:
    """{source: {split: {clips, labels, seconds}}} plus a "total" per split."""
    acc: dict = defaultdict(lambda: defaultdict(lambda: {"clips": 0, "labels": set(), "seconds": 0.0}))
    for r in rows:
        for key in (r["source"], "total"):
            cell = acc[key][r["split"]]
            cell["clips"] += 1
            cell["labels"].add(r["label"])
            cell["seconds"] += r["seconds"]
    return {src: {split: {"clips": c["clips"], "labels": len(c["labels"]), "seconds": round(c["seconds"], 1)}
                  for split, c in splits.items()} for src, splits in acc.items()}


def _license_excerpt(package: str) -> str:
    """License names found in /usr/share/doc/<package>/copyright: the values of DEP-5 "License:"
    lines, or for a free-form file the first two text lines under its "License:" heading."""
    try:
        with open(f"/usr/share/doc/{package}/copyright", encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f]
    except OSError:
        return "copyright file not found"
    names = []
    for i, line in enumerate(lines):
        if line.lower().startswith(("license:", "licence:")):
            value = line.split(":", 1)[1].strip()
            if not value:
                value = " ".join([x for x in lines[i + 1: i + 8] if x][:2])[:160]
            names.append(value)
    return ", ".join(dict.fromkeys(n for n in names if n)) or f"see /usr/share/doc/{package}/copyright"


def write_attribution(path: str, sources: list[Source]) -> None:
    lines = ["# Attribution of the clap_rt training corpus", "",
             "Audio rendered or cut from these Debian packages; full terms in /usr/share/doc/<package>/copyright.", ""]
    for s in sources:
        lines.append(f"## {s.name}")
        for p in s.packages:
            lines.append(f"- package `{p}`: license {_license_excerpt(p)}")
        lines += [f"- used: {s.used}", ""]
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)


def build(data_dir: str, source_names: list[str] | None, max_per_item: int, jobs: int) -> dict:
    """Build (or resume) the corpus under `data_dir`; returns the stats dict."""
    known = {s.name: s for s in SOURCES}
    for n in source_names or []:
        if n not in known:
            raise UserError(f"--sources: unknown source '{n}', expected some of {', '.join(known)}")
    chosen = [known[n] for n in source_names] if source_names else SOURCES
    os.makedirs(data_dir, exist_ok=True)
    ensure_packages([p for s in chosen for p in s.packages])
    t0 = time.time()
    rows = []
    for s in chosen:
        rows += build_source(s, data_dir, max_per_item, jobs)
    heldout = [s.name for s in chosen if s.name in HELDOUT]
    rows = assign_splits(rows, set(heldout))
    write_manifest(os.path.join(data_dir, "manifest.jsonl"), rows)
    test_labels = sorted({r["label"] for r in rows if r["split"] == "test"})
    with open(os.path.join(data_dir, "heldout.json.tmp"), "w") as f:
        json.dump({"sources": heldout, "labels": test_labels}, f, indent=1)
    os.replace(os.path.join(data_dir, "heldout.json.tmp"), os.path.join(data_dir, "heldout.json"))
    stats = corpus_stats(rows)
    with open(os.path.join(data_dir, "stats.json.tmp"), "w") as f:
        json.dump(stats, f, indent=1)
    os.replace(os.path.join(data_dir, "stats.json.tmp"), os.path.join(data_dir, "stats.json"))
    write_attribution(os.path.join(data_dir, "ATTRIBUTION.md"), chosen)
    print(f"corpus: {len(rows)} clips, {time.time() - t0:.1f} s this run", flush=True)
    return stats
