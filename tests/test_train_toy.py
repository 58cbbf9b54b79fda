"""The headline train/ test: a short run of `train.train.main` on the toy CLAP (tests/fakes.py)
separates the synthetic classes."""
import json
import subprocess
import sys
import time

import pytest
import torch

from fakes import make_toy, toy_args


def test_toy_training_separates_synthetic_classes(tmp_path):
    from train.train import main
    paths = make_toy(tmp_path)
    t0 = time.time()
    rc = main(toy_args(paths, tmp_path / "run", "--steps", "150", "--batch-size", "32", "--lr", "3e-3",
                       "--warmup-steps", "10", "--log-every", "10", "--checkpoint-every", "0", "--no-amp"))
    seconds = time.time() - t0
    assert rc == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    top1 = result["eval"]["top1"]
    print(f"toy run: {seconds:.1f} s, eval {result['eval']}")
    assert result["eval"]["classes"] == 5 and result["eval"]["clips"] == 40
    assert top1 >= 0.90, f"held-out zero-shot top-1 {top1:.3f} < 0.90 after {seconds:.1f} s"
    assert (tmp_path / "run" / "confusion.png").stat().st_size > 1000
    assert seconds < 120, f"toy run took {seconds:.1f} s"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_toy_training_under_torchrun_on_cuda_with_amp(tmp_path):
    """The GPU path of the same run: torchrun launcher, --device cuda, fp16 autocast + GradScaler."""
    paths = make_toy(tmp_path)
    run = tmp_path / "run"
    args = toy_args(paths, run, "--steps", "150", "--batch-size", "32", "--lr", "3e-3", "--warmup-steps", "10",
                    "--log-every", "10", "--checkpoint-every", "50", "--device", "cuda", "--amp")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
                        "-m", "train.train", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((run / "train_config.json").read_text())["device"] == "cuda"
    result = json.loads((run / "eval.json").read_text())
    print(f"cuda toy run: eval {result['eval']}, last step {result['train']}")
    assert result["eval"]["top1"] >= 0.90, f"held-out zero-shot top-1 {result['eval']['top1']:.3f} < 0.90 on cuda"
