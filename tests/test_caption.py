"""Captioning: msclap clapcap's layout converts strictly, and our mapper + cached GPT2 decoding
give the tokens of a plain-torch reference written here from clapcap's public code
(msclap/models/mapper.py: TransformerMapper, MLP; CLAPWrapper._generate_beam)."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clap_rt.caption import (CaptionerConfig, Captioner, MapperConfig, caption_token_ids, gpt2_tokenizer,
                             load_captioner, save_captioner)
from clap_rt.cli import main
from clap_rt.converters import convert_clapcap
from clap_rt.errors import UserError

LOGIT_TOLERANCE = 1e-4


# --- clapcap's names and shapes (ClapCaptionModel: clap_project = mapper, gpt = GPT2LMHeadModel) ----

def clapcap_shapes(d=1024, e=768, prefix=40, clip=40, map_layers=8, gpt_layers=12, vocab=50257,
                   n_pos=1024, mapper="transformer") -> dict[str, tuple]:
    s: dict[str, tuple] = {}
    if mapper == "transformer":
        s["clap_project.linear.weight"] = (clip * e, d)
        s["clap_project.linear.bias"] = (clip * e,)
        s["clap_project.prefix_const"] = (prefix, e)
        for i in range(map_layers):
            p = f"clap_project.transformer.layers.{i}."
            s.update({p + "norm1.weight": (e,), p + "norm1.bias": (e,),
                      p + "attn.to_queries.weight": (e, e),               # bias=False in TransformerLayer
                      p + "attn.to_keys_values.weight": (2 * e, e),
                      p + "attn.project.weight": (e, e), p + "attn.project.bias": (e,),
                      p + "norm2.weight": (e,), p + "norm2.bias": (e,),
                      p + "mlp.fc1.weight": (2 * e, e), p + "mlp.fc1.bias": (2 * e,),   # mlp_ratio 2
                      p + "mlp.fc2.weight": (e, 2 * e), p + "mlp.fc2.bias": (e,)})
    else:
        s.update({"clap_project.model.0.weight": (prefix * e // 2, d), "clap_project.model.0.bias": (prefix * e // 2,),
                  "clap_project.model.2.weight": (prefix * e, prefix * e // 2), "clap_project.model.2.bias": (prefix * e,)})
    s["gpt.transformer.wte.weight"] = (vocab, e)
    s["gpt.transformer.wpe.weight"] = (n_pos, e)
    for i in range(gpt_layers):
        p = f"gpt.transformer.h.{i}."
        s.update({p + "ln_1.weight": (e,), p + "ln_1.bias": (e,),
                  p + "attn.c_attn.weight": (e, 3 * e), p + "attn.c_attn.bias": (3 * e,),    # Conv1D: (in, out)
                  p + "attn.c_proj.weight": (e, e), p + "attn.c_proj.bias": (e,),
                  p + "ln_2.weight": (e,), p + "ln_2.bias": (e,),
                  p + "mlp.c_fc.weight": (e, 4 * e), p + "mlp.c_fc.bias": (4 * e,),
                  p + "mlp.c_proj.weight": (4 * e, e), p + "mlp.c_proj.bias": (e,)})
    s["gpt.transformer.ln_f.weight"] = (e,)
    s["gpt.transformer.ln_f.bias"] = (e,)
    s["gpt.lm_head.weight"] = (vocab, e)
    return s


def random_state(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values with gains large enough that different embeddings give different captions
    (at GPT2's init scale every prefix gives the same few tokens)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in shapes.items():
        if k.endswith(("norm1.weight", "norm2.weight", "ln_1.weight", "ln_2.weight", "ln_f.weight")):
            state[k] = 1 + 0.1 * torch.randn(shape, generator=g)
            continue
        gain = 3.0 if k.startswith("clap_project") else 1.8 if k.startswith("gpt.transformer.h.") else 0.3
        if len(shape) < 2 or k == "clap_project.prefix_const":
            gain = 0.3
        state[k] = gain * torch.randn(shape, generator=g) / math.sqrt(shape[-1] if len(shape) > 1 else 1)
    state["gpt.lm_head.weight"] = state["gpt.transformer.wte.weight"]      # tied, as in GPT2
    return state


# --- the reference: plain torch from the state dict, whole sequence recomputed every step ----

def ref_prefix(sd: dict, emb: torch.Tensor, heads: int = 8) -> torch.Tensor:
    emb = emb / emb.norm(2, -1).reshape(-1, 1)                            # normalize_prefix
    b = emb.shape[0]
    if "clap_project.model.0.weight" in sd:
        h = torch.tanh(emb @ sd["clap_project.model.0.weight"].T + sd["clap_project.model.0.bias"])
        out = h @ sd["clap_project.model.2.weight"].T + sd["clap_project.model.2.bias"]
        return out.view(b, -1, sd["gpt.transformer.wte.weight"].shape[1])
    const = sd["clap_project.prefix_const"]
    e = const.shape[1]
    x = (emb @ sd["clap_project.linear.weight"].T + sd["clap_project.linear.bias"]).view(b, -1, e)
    clip = x.shape[1]
    x = torch.cat([x, const.unsqueeze(0).expand(b, *const.shape)], dim=1)
    i = 0
    while f"clap_project.transformer.layers.{i}.norm1.weight" in sd:
        p = f"clap_project.transformer.layers.{i}."
        h = F.layer_norm(x, (e,), sd[p + "norm1.weight"], sd[p + "norm1.bias"])
        n = h.shape[1]
        q = (h @ sd[p + "attn.to_queries.weight"].T).reshape(b, n, heads, e // heads)
        kv = (h @ sd[p + "attn.to_keys_values.weight"].T).reshape(b, n, 2, heads, e // heads)
        att = torch.einsum("bnhd,bmhd->bnmh", q, kv[:, :, 0]) * (e // heads) ** -0.5
        out = torch.einsum("bnmh,bmhd->bnhd", att.softmax(dim=2), kv[:, :, 1]).reshape(b, n, e)
        x = x + out @ sd[p + "attn.project.weight"].T + sd[p + "attn.project.bias"]
        h = F.layer_norm(x, (e,), sd[p + "norm2.weight"], sd[p + "norm2.bias"])
        h = F.relu(h @ sd[p + "mlp.fc1.weight"].T + sd[p + "mlp.fc1.bias"])
        x = x + h @ sd[p + "mlp.fc2.weight"].T + sd[p + "mlp.fc2.bias"]
        i += 1
    return x[:, clip:]


def ref_gpt2_logits(sd: dict, x: torch.Tensor, head_dim: int = 64) -> torch.Tensor:
    """GPT2LMHeadModel(inputs_embeds=x).logits: (B, S, E) -> (B, S, V)."""
    b, s, e = x.shape
    heads = max(1, e // head_dim)
    h = x + sd["gpt.transformer.wpe.weight"][:s]
    causal = torch.ones(s, s, dtype=torch.bool).tril()
    i = 0
    while f"gpt.transformer.h.{i}.ln_1.weight" in sd:
        p = f"gpt.transformer.h.{i}."
        a = F.layer_norm(h, (e,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps=1e-5)
        q, k, v = (a @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"]).split(e, dim=2)
        q, k, v = (t.view(b, s, heads, e // heads).transpose(1, 2) for t in (q, k, v))    # (B, h, S, dh)
        w = (q @ k.transpose(-1, -2)) / math.sqrt(e // heads)
        w = w.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        a = (w @ v).transpose(1, 2).reshape(b, s, e)
        h = h + a @ sd[p + "attn.c_proj.weight"] + sd[p + "attn.c_proj.bias"]
        m = F.layer_norm(h, (e,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps=1e-5)
        m = F.gelu(m @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"], approximate="tanh")
        h = h + m @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"]
        i += 1
    h = F.layer_norm(h, (e,), sd["gpt.transformer.ln_f.weight"], sd["gpt.transformer.ln_f.bias"], eps=1e-5)
    return h @ sd["gpt.transformer.wte.weight"].T


def ref_greedy(sd, prefix: torch.Tensor, n: int, stop: int, head_dim: int) -> list[int]:
    wte = sd["gpt.transformer.wte.weight"]
    x, out = prefix, []
    for _ in range(n):
        t = int(ref_gpt2_logits(sd, x, head_dim)[0, -1].argmax())
        if t == stop:
            break
        out.append(t)
        x = torch.cat([x, wte[t].view(1, 1, -1)], dim=1)
    return out


def ref_beam(sd, prefix: torch.Tensor, beam: int, n: int, stop: int, head_dim: int) -> list[int]:
    """CLAPWrapper._generate_beam's loop (embed given, temperature 1), best hypothesis."""
    wte = sd["gpt.transformer.wte.weight"]
    generated, tokens, scores = prefix, None, None
    seq_lengths = torch.ones(beam)
    is_stopped = torch.zeros(beam, dtype=torch.bool)
    for _ in range(n):
        logits = ref_gpt2_logits(sd, generated, head_dim)[:, -1, :].softmax(-1).log()
        if scores is None:
            scores, next_tokens = logits.topk(beam, -1)
            generated = generated.expand(beam, *generated.shape[1:])
            next_tokens, scores = next_tokens.permute(1, 0), scores.squeeze(0)
            tokens = next_tokens
        else:
            logits[is_stopped] = -float("inf")
            logits[is_stopped, 0] = 0
            scores_sum = scores[:, None] + logits
            seq_lengths[~is_stopped] += 1
            avg, next_tokens = (scores_sum / seq_lengths[:, None]).view(-1).topk(beam, -1)
            source = next_tokens // scores_sum.shape[1]
            seq_lengths = seq_lengths[source]
            next_tokens = (next_tokens % scores_sum.shape[1]).unsqueeze(1)
            tokens = torch.cat((tokens[source], next_tokens), dim=1)
            generated = generated[source]
            scores = avg * seq_lengths
            is_stopped = is_stopped[source]
        generated = torch.cat((generated, wte[next_tokens.squeeze(1)].view(generated.shape[0], 1, -1)), dim=1)
        is_stopped = is_stopped | next_tokens.eq(stop).squeeze(1)
        if is_stopped.all():
            break
    best = int((scores / seq_lengths).argsort(descending=True)[0])
    out = tokens[best, :int(seq_lengths[best])].tolist()
    return out[:out.index(stop)] if stop in out else out


# --- fixtures ------------------------------------------------------------------------------

SMALL = dict(d=16, e=32, prefix=4, clip=3, map_layers=2, gpt_layers=2, vocab=300, n_pos=80)


def small_captioner(mapper="transformer", seed=0, max_tokens=12):
    sd = random_state(clapcap_shapes(**SMALL, mapper=mapper), seed)
    captioner, audio = convert_clapcap(dict(sd))
    assert audio == {}
    # A stop token the model emits (the second greedy token of the first test embedding), so
    # that stopping is exercised; a short caption budget.
    emb = torch.randn(1, SMALL["d"], generator=torch.Generator().manual_seed(99))
    first = ref_greedy(sd, ref_prefix(sd, emb), 2, -1, 64)
    captioner.config.stop_token = first[1]
    captioner.config.max_tokens = max_tokens
    return sd, captioner


@pytest.fixture(scope="module")
def embeddings():
    return torch.randn(5, SMALL["d"], generator=torch.Generator().manual_seed(99))


# --- layout --------------------------------------------------------------------------------

def test_full_size_clapcap_layout_loads_strictly():
    shapes = clapcap_shapes()
    state = {k: torch.zeros(s) for k, s in shapes.items()}
    state["gpt.lm_head.weight"] = state["gpt.transformer.wte.weight"]
    # clapcap's audio encoder travels beside; older transformers stored GPT2's mask buffers
    state["clap.projection.linear1.weight"] = torch.zeros(1024, 768)
    for i in range(12):
        state[f"gpt.transformer.h.{i}.attn.bias"] = torch.ones(1, 1, 1024, 1024, dtype=torch.bool).tril()
        state[f"gpt.transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    notes: list[str] = []
    captioner, audio = convert_clapcap(state, notes)
    cfg = captioner.config
    assert (cfg.embed_dim, cfg.mapper.kind, cfg.mapper.prefix_length, cfg.mapper.clip_length,
            cfg.mapper.num_layers, cfg.mapper.num_heads, cfg.mapper.mlp_ratio) == (1024, "transformer", 40, 40, 8, 8, 2.0)
    d = cfg.decoder
    assert (d["vocab_size"], d["n_positions"], d["n_embd"], d["n_layer"], d["n_head"]) == (50257, 1024, 768, 12, 12)
    assert (cfg.stop_token, cfg.max_tokens, cfg.normalize_prefix) == (220, 67, True)
    assert list(audio) == ["audio_projection.linear1.weight"]
    assert notes == ["dropped 24 key(s) /decoder\\.transformer\\.h\\.\\d+\\.attn\\.(bias|masked_bias)/: "
                     "causal-mask buffers of older transformers"]


def test_clapcap_stop_token_is_msclaps():
    # msclap: stop_token_index = tokenizer.encode(' <|endoftext|>')[0]
    assert gpt2_tokenizer().encode(" <|endoftext|>").ids == [220, 50256]
    assert CaptionerConfig().stop_token == 220


def test_bad_clapcap_keys_are_named():
    sd = random_state(clapcap_shapes(**SMALL))
    missing = {k: v for k, v in sd.items() if k != "gpt.transformer.h.1.attn.c_proj.bias"}
    with pytest.raises(UserError, match=r"missing keys \['decoder.transformer.h.1.attn.c_proj.bias'\]"):
        convert_clapcap(missing)
    with pytest.raises(UserError, match=r"unexpected keys \['mapper.extra'\]"):
        convert_clapcap({**sd, "clap_project.extra": torch.zeros(1)})
    with pytest.raises(UserError, match="missing key 'decoder.transformer.wte.weight'"):
        convert_clapcap({k: v for k, v in sd.items() if "wte" not in k})
    with pytest.raises(UserError, match="lm_head.weight differs from gpt.transformer.wte.weight"):
        convert_clapcap({**sd, "gpt.lm_head.weight": sd["gpt.lm_head.weight"] + 1})
    with pytest.raises(UserError, match="expected a state dict of tensors"):
        convert_clapcap({"model": {"a": 1}})


# --- parity with the reference -------------------------------------------------------------

@pytest.mark.parametrize("mapper", ["transformer", "mlp"])
def test_converted_state_matches_reference_logits(mapper, embeddings):
    sd, captioner = small_captioner(mapper)
    tokens = torch.randint(0, SMALL["vocab"], (len(embeddings), 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = captioner(embeddings, tokens)                                      # (B, 6, V)
        prefix = ref_prefix(sd, embeddings)
        x = torch.cat([prefix, sd["gpt.transformer.wte.weight"][tokens]], dim=1)
        ref = ref_gpt2_logits(sd, x, 64)[:, SMALL["prefix"] - 1:-1]
        prefix_diff = float((captioner.prefix(embeddings) - prefix).abs().max())
    diff = float((ours - ref).abs().max())
    assert prefix_diff < LOGIT_TOLERANCE, f"prefix max abs diff {prefix_diff:.3g}"
    assert diff < LOGIT_TOLERANCE, f"logits max abs diff {diff:.3g}"


@pytest.mark.parametrize("mapper", ["transformer", "mlp"])
def test_converted_state_gives_reference_tokens(mapper, embeddings):
    sd, captioner = small_captioner(mapper)
    stop, n = captioner.config.stop_token, captioner.config.max_tokens
    greedy = captioner.generate(embeddings, beam=1)
    beams = captioner.generate(embeddings, beam=3)
    with torch.no_grad():
        prefix = ref_prefix(sd, embeddings)
        assert greedy == [ref_greedy(sd, prefix[i:i + 1], n, stop, 64) for i in range(len(embeddings))]
        assert beams == [ref_beam(sd, prefix[i:i + 1], 3, n, stop, 64) for i in range(len(embeddings))]
    assert any(len(r) < n for r in greedy), "no caption stopped early: the stop token is not exercised"
    assert len({tuple(r) for r in greedy}) > 1, "every embedding gave the same caption"
    assert captioner.generate(embeddings, beam=3) == beams                       # deterministic


def test_save_load_round_trip_and_model_check(tmp_path, embeddings):
    _, captioner = small_captioner()
    save_captioner(captioner, tmp_path, model_id="abc")
    loaded = load_captioner(tmp_path, "abc")
    assert loaded.generate(embeddings, beam=2) == captioner.generate(embeddings, beam=2)
    with pytest.raises(UserError, match="made for model abc, this model is xyz"):
        load_captioner(tmp_path, "xyz")
    with pytest.raises(UserError, match="this model has no captioner"):
        load_captioner(tmp_path / "nothing")
    (tmp_path / "captioner.safetensors").write_bytes(b"cut")
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_captioner(tmp_path)


def test_vocabulary_subset_maps_back_to_gpt2_ids():
    ids = caption_token_ids(["a dog barking"])[0]
    vocab = sorted(set(ids) | {50256})
    cfg = CaptionerConfig(name="t", embed_dim=8, mapper=MapperConfig(prefix_length=2, clip_length=2, num_layers=1,
                                                                      num_heads=2),
                          decoder=dict(vocab_size=len(vocab), n_positions=32, n_embd=16, n_layer=1, n_head=2),
                          stop_token=50256, max_tokens=8)
    captioner = Captioner(cfg)
    captioner.vocab = torch.tensor(vocab)
    assert captioner.stop_index == len(vocab) - 1
    for row in captioner.generate(torch.randn(3, 8), beam=2):
        assert set(row) <= set(vocab) - {50256}


# --- the command line on a model folder ----------------------------------------------------

@pytest.fixture()
def clapcap_model(tiny_model_dir, tmp_path):
    """A copy of the tiny model folder and a clapcap checkpoint whose audio encoder is its audio tower."""
    from clap_rt.checkpoints import load_model
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    model, _ = load_model(model_dir)
    sd = random_state(clapcap_shapes(**dict(SMALL, d=model.config.projection.dim)))
    for k, v in model.state_dict().items():
        if k.startswith("audio."):
            sd["clap.base.htsat." + k[len("audio."):]] = v.clone()
        elif k.startswith("audio_projection."):
            sd["clap.projection." + k[len("audio_projection."):]] = v.clone()
    ckpt = tmp_path / "clapcap_weights_2023.pth"
    torch.save({"model": sd}, ckpt)
    return model_dir, ckpt, sd


def test_cli_convert_clapcap_then_caption(clapcap_model, audio_dir, capsys):
    from clap_rt import Clap
    model_dir, ckpt, sd = clapcap_model
    assert main(["convert", "--from", "msclap-clapcap", str(ckpt), str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert "audio encoder vs" in out and "max abs diff 0 over" in out
    wav = audio_dir / "low.wav"
    assert main(["caption", str(wav), "--model", str(model_dir), "--json", "--beam", "2"]) == 0
    got = json.loads(capsys.readouterr().out)
    clap = Clap.load(model_dir)
    emb = torch.from_numpy(clap.embed_audio([wav]))
    with torch.no_grad():
        want = ref_beam(sd, ref_prefix(sd, emb), 2, 67, 220, 64)
    assert got == {"path": str(wav), "caption": gpt2_tokenizer().decode(want).strip()}
    assert clap.caption([wav], beam=2) == [got["caption"]]


def test_cli_convert_clapcap_errors(clapcap_model, tiny_model_dir, tmp_path, capsys, audio_dir):
    model_dir, ckpt, sd = clapcap_model
    assert main(["convert", "--from", "msclap-clapcap", str(ckpt), str(tmp_path / "empty")]) == 2
    assert "expected a model folder made by `clap-rt convert --from msclap" in capsys.readouterr().err
    key = next(k for k in sd if k.startswith("clap.projection."))
    torch.save({"model": {**sd, key: sd[key] + 0.5}}, ckpt)
    assert main(["convert", "--from", "msclap-clapcap", str(ckpt), str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{ckpt}: its audio encoder differs from {model_dir}'s audio tower by 0.5" in err
    assert main(["caption", str(audio_dir / "low.wav"), "--model", str(tiny_model_dir)]) == 2
    assert "this model has no captioner" in capsys.readouterr().err


def test_event_captions_caption_the_strongest_window(embeddings):
    from clap_rt.caption import EventCaptions
    _, captioner = small_captioner()
    ev = EventCaptions(captioner, ["a", "b"])
    e = embeddings.numpy()
    for scores, emb in (([0.1, 0.9], e[0]), ([0.8, 0.2], e[1]), ([0.3, 0.1], e[2])):
        ev.update(np.array(scores), emb)
    assert ev.end("a") == captioner.caption(e[1][None])[0]
    assert ev.end("b") == captioner.caption(e[0][None])[0]
    ev.update(np.array([0.2, 0.1]), e[3])           # after an end, only newer windows count
    assert ev.end("a") == captioner.caption(e[3][None])[0]

