"""Resume after SIGKILL: the resumed run logs the same losses as the uninterrupted one."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from fakes import make_toy, toy_args

REPO = Path(__file__).resolve().parents[1]


def _losses(log: Path) -> dict[int, float]:
    if not log.exists():
        return {}
    with open(log, newline="") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")}


def _run_until(args: list, log: Path, last_step: int, timeout: float = 60.0) -> dict[int, float]:
    """Start `python -m train.train args`, SIGKILL it once `log` has step `last_step`."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "train.train", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    try:
        while last_step not in _losses(log):
            if proc.poll() is not None:
                raise AssertionError(f"training exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
            if time.time() - t0 > timeout:
                raise AssertionError(f"step {last_step} not logged within {timeout} s")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return _losses(log)


def test_resume_after_kill_continues_with_same_losses(tmp_path):
    paths = make_toy(tmp_path, per_class_train=8, per_class_test=2)
    # Many steps so the run is still going when killed; the LR schedule depends on --steps.
    common = ["--steps", "5000", "--batch-size", "8", "--log-every", "1", "--eval-split", "",
              "--checkpoint-every", "3", "--warmup-steps", "2", "--no-amp"]
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    ref = _run_until(toy_args(paths, a_dir, *common), a_dir / "train_log.csv", 6)
    ckpt = a_dir / "checkpoints" / "step-00000003"
    assert (ckpt / "optimizer.safetensors").exists() and (ckpt / "trainer.json").exists()
    got = _run_until(toy_args(paths, b_dir, *common, "--resume", str(ckpt)), b_dir / "train_log.csv", 5)
    # The kill lands a few milliseconds after step 5 is logged: a fast step may log 6 as well.
    assert sorted(got) == list(range(4, max(got) + 1)) and max(got) >= 5, \
        f"resumed run logged steps {sorted(got)}, expected 4, 5, ..."
    for step in sorted(set(got) & set(ref)):
        diff = abs(got[step] - ref[step])
        print(f"step {step}: uninterrupted {ref[step]:.7f}, resumed {got[step]:.7f}, diff {diff:.2e}")
        assert diff <= 1e-6 * abs(ref[step]), (f"step {step}: resumed loss {got[step]:.7f} vs uninterrupted "
                                               f"{ref[step]:.7f} (diff {diff:.2e})")
