"""Contrastive loss: a hand-computed example, the temperature clamp, and DDP == one process."""
import math
import os
import socket

import numpy as np
import torch

from fakes import CLASSES, toy_model_config, write_tokenizer


def test_contrastive_loss_matches_hand_computed_example():
    from train.loss import contrastive_loss
    audio = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # scale = exp(ln 2) = 2. logits audio->text = 2 * [[1, .6], [0, .8]] = [[2, 1.2], [0, 1.6]]
    # CE rows: log(1 + e^-0.8) = 0.3711007, log(1 + e^-1.6) = 0.1839007 -> mean 0.2775007
    # logits text->audio = [[2, 0], [1.2, 1.6]]
    # CE rows: log(1 + e^-2) = 0.1269280, log(1 + e^-0.4) = 0.5130153 -> mean 0.3199716
    # loss = (0.2775007 + 0.3199716) / 2 = 0.2987362
    loss = float(contrastive_loss(audio, text, torch.tensor(math.log(2.0))))
    assert abs(loss - 0.2987362) < 1e-6, f"loss {loss:.7f}, expected 0.2987362 (diff {abs(loss - 0.2987362):.2e})"


def test_logit_scale_clamped_to_ln100():
    from train.config import OptimConfig
    from train.loss import clamp_logit_scale_
    p = torch.nn.Parameter(torch.tensor(5.0))
    clamp_logit_scale_(p, OptimConfig().max_logit_scale)
    scale = float(p.detach().exp())
    assert abs(scale - 100.0) < 1e-4, f"exp(logit_scale) = {scale}, expected 100"


# --- DDP: 2 gloo ranks x 4 == 1 process x 8 ------------------------------------------------

def _features(n_clips=16, n_mels=32, frames=63, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(-40, 15, size=(2, n_mels, frames)).astype(np.float32) for _ in range(n_clips)]


def _trainer(folder, world, batch):
    """A toy Trainer (BN on running statistics so per-rank batches cannot differ)."""
    from clap_rt.tokenizer import TextTokenizer
    from clap_rt.model import CLAP
    from train.config import TrainConfig
    from train.data import Clip, TrainBatches
    from train.train import ContrastiveStep, Trainer
    cfg = TrainConfig()
    cfg.amp, cfg.model.freeze_bn, cfg.optim.batch_size = False, True, batch
    from tokenizers import Tokenizer
    model_cfg = toy_model_config(Tokenizer.from_file(os.path.join(folder, "tokenizer.json")).get_vocab_size())
    torch.manual_seed(0)
    model = CLAP(model_cfg)
    tok = TextTokenizer.from_dir(folder, model_cfg.text)
    labels = list(CLASSES)
    clips = [Clip(path=f"c{i}", captions=CLASSES[labels[i % 5]]) for i in range(16)]
    from train.augment import Augmenter
    batches = TrainBatches(clips, _features(), tok, batch, world, seed=0, augment=Augmenter(cfg.augment))
    return Trainer(cfg, model, tok, ContrastiveStep(model), batches, torch.device("cpu"))


def _ddp_worker(rank, world, port, folder):
    from safetensors.torch import save_file
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        trainer = _trainer(folder, world, 8 // world)
        loss = trainer.compute_grads(0)
        grads = {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None}
        grads["__loss__"] = torch.tensor(loss)
        save_file(grads, os.path.join(folder, f"grads-{rank}.safetensors"))
    finally:
        torch.distributed.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_step_matches_single_process(tmp_path):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file
    write_tokenizer(tmp_path)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = _trainer(tmp_path, 1, 8)
    loss = single.compute_grads(0)
    ref = {n: p.grad for n, p in single.model.named_parameters() if p.grad is not None}
    for rank in range(2):
        got = load_file(str(tmp_path / f"grads-{rank}.safetensors"))
        dl = abs(float(got.pop("__loss__")) - loss)
        assert dl < 1e-5, f"rank {rank}: global loss differs by {dl:.2e} (single {loss:.6f})"
        assert set(got) == set(ref), f"rank {rank}: gradient keys differ: {sorted(set(got) ^ set(ref))[:5]}"
        # Relative to each tensor's largest gradient, floored at 1e-6 of the largest overall
        # (attention key biases have gradients that are zero up to rounding).
        floor = 1e-6 * max(g.abs().max().item() for g in ref.values())
        worst = max(((got[n] - ref[n]).abs().max().item() / max(ref[n].abs().max().item(), floor), n)
                    for n in ref)
        print(f"rank {rank}: loss diff {dl:.2e}, max relative grad diff {worst[0]:.2e} ({worst[1]})")
        assert worst[0] < 1e-4, f"rank {rank}: max relative gradient difference {worst[0]:.2e} at {worst[1]}"
    assert ref["logit_scale"].abs().item() > 0 and ref["audio.blocks.0.conv1.weight"].abs().max() > 0
