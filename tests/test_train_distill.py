"""Distillation on tiny configs: a toy teacher teaches a smaller student audio tower."""
import json

import numpy as np
import torch

from fakes import make_toy, toy_args, toy_model_config


def test_distilled_student_matches_teacher_embeddings(tmp_path):
    from clap_rt.checkpoints import load_model
    from clap_rt.config import SfxCNNConfig
    from train.data import FeatureCache, read_manifest, select_split
    from train.config import ModelSource
    from train.distill import build_student, main as distill_main
    from train.evaluate import embed_clip_windows
    from train.train import main as train_main
    paths = make_toy(tmp_path, per_class_train=12, per_class_test=4)
    assert train_main(toy_args(paths, tmp_path / "teacher", "--steps", "60", "--batch-size", "20", "--lr", "3e-3",
                                "--warmup-steps", "5", "--checkpoint-every", "0", "--no-amp")) == 0
    teacher_dir = tmp_path / "teacher" / "model"
    # Student: half-width CNN on the same frontend.
    student_cfg = toy_model_config(vocab_size=1)
    student_cfg.audio.sfx_cnn = SfxCNNConfig(channels=(4, 8, 16, 16), aisfx_input=False)
    (tmp_path / "student.json").write_text(json.dumps(student_cfg.to_dict()))
    args = toy_args(paths, tmp_path / "student", "--steps", "150", "--batch-size", "20", "--lr", "3e-3",
                    "--warmup-steps", "5", "--checkpoint-every", "0", "--no-amp", "--teacher", str(teacher_dir))
    args[args.index("--model-config") + 1] = str(tmp_path / "student.json")
    assert distill_main(args) == 0

    teacher, _ = load_model(teacher_dir)
    student, _ = load_model(tmp_path / "student" / "model")
    assert sum(p.numel() for p in student.audio.parameters()) < sum(p.numel() for p in teacher.audio.parameters()) / 3
    for k, v in teacher.state_dict().items():
        if k.startswith(("text.", "text_projection.")):
            assert torch.equal(v, student.state_dict()[k]), f"{k}: student text side differs from the teacher's"
    test = select_split(read_manifest(paths["manifest"]), "test")
    feats = FeatureCache(teacher.config.frontend, paths["cache"]).load_all(test)
    ref = embed_clip_windows(teacher, feats)
    cos = float(np.mean(np.sum(ref * embed_clip_windows(student, feats), axis=1)))
    torch.manual_seed(0)
    untrained = build_student(teacher, ModelSource(model_config=str(tmp_path / "student.json"))).eval()
    cos0 = float(np.mean(np.sum(ref * embed_clip_windows(untrained, feats), axis=1)))
    result = json.loads((tmp_path / "student" / "eval.json").read_text())["eval"]
    print(f"held-out teacher/student cosine {cos0:.3f} before, {cos:.3f} after; student top-1 {result['top1']:.3f}")
    assert cos > 0.9 and cos > cos0 + 0.3, f"mean teacher/student cosine on held-out clips {cos0:.3f} -> {cos:.3f}"
    assert result["top1"] >= 0.9, f"student zero-shot top-1 {result['top1']:.3f} < 0.9"


def test_distill_refuses_mixing(capsys):
    from train.distill import main
    rc = main(["--teacher", "t", "--preset", "clap-rt-small", "--manifest", "m.jsonl", "--mix-prob", "0.5"])
    assert rc == 2
    assert capsys.readouterr().err.strip() == ("python -m train.distill: error: --mix-prob: must be 0 for "
                                               "distillation (a mixed window has no teacher target)")
