"""Converters: parity with transformers' ClapModel, strict loading of msclap / LAION key sets,
torchlibrosa's melW against our filterbank, and the `clap-rt convert` round trip."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import librosa
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clap_rt.config import laion_htsat_tiny, msclap_2023
from clap_rt.converters import convert_hf, convert_laion, convert_msclap, melw_max_abs_diff
from clap_rt.errors import UserError
from clap_rt.frontend import mel_filterbank
from clap_rt.model import CLAP
from fakes import tiny_hf_folder

torch.set_num_threads(2)


# --- (a) parity with transformers ---------------------------------------------------------

@pytest.fixture(scope="module")
def hf_pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf_clap")
    ref = tiny_hf_folder(path)
    return ref, convert_hf(path), path


def _compare(ref, ours, what):
    diff = (ref - ours).abs().max().item()
    cos = F.cosine_similarity(ref, ours, dim=-1).min().item()
    assert cos >= 0.99999, f"{what}: min cosine {cos:.7f}, max abs diff {diff:.3g}"
    assert diff < 1e-5, f"{what}: max abs diff {diff:.3g}"


def test_hf_audio_parity(hf_pair):
    ref, ours, _ = hf_pair
    torch.manual_seed(1)
    feats = torch.randn(3, 1, 201, 16) * 10 - 30              # (B, 1, T, n_mels) as ClapFeatureExtractor gives
    with torch.no_grad():
        r = ref.get_audio_features(input_features=feats).pooler_output
        o = ours.encode_audio(feats[:, 0].transpose(1, 2))    # (B, n_mels, T)
    _compare(r, o, "audio embedding")


def test_hf_text_parity(hf_pair):
    ref, ours, _ = hf_pair
    torch.manual_seed(2)
    ids = torch.randint(3, 99, (3, 9))
    ids[:, 0] = 0
    mask = torch.ones_like(ids)
    ids[1, 6:], mask[1, 6:] = 1, 0                            # right padding with RoBERTa's pad id
    with torch.no_grad():
        r = ref.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        o = ours.encode_text(ids, mask)
    _compare(r, o, "text embedding")


def test_hf_config_read(hf_pair):
    ref, ours, _ = hf_pair
    cfg = ours.config
    assert cfg.audio.htsat.depths == (2, 2, 2) and cfg.audio.htsat.window_size == 4
    assert (cfg.frontend.sample_rate, cfg.frontend.hop_length, cfg.frontend.n_mels) == (8000, 80, 16)
    assert cfg.text.hf_config["layer_norm_eps"] == ref.config.text_config.layer_norm_eps == 1e-12
    assert ours.logit_scale.item() == ref.logit_scale_a.item()


def test_cli_convert_hf_round_trip(hf_pair, tmp_path, capsys):
    from clap_rt.checkpoints import load_model
    from clap_rt.cli import main
    _, ours, src = hf_pair
    assert main(["convert", "--from", "hf", str(src), str(tmp_path / "out")]) == 0
    assert "dropped 1 key(s) /logit_scale_t/" in capsys.readouterr().out
    loaded, tok = load_model(tmp_path / "out")
    ids, mask = tok(["a dog barks"])
    x = torch.randn(2, 16, 201)
    with torch.no_grad():
        assert torch.equal(loaded.encode_audio(x), ours.encode_audio(x))
        assert torch.equal(loaded.encode_text(ids, mask), ours.encode_text(ids, mask))


def test_cli_convert_errors(tmp_path, capsys):
    from clap_rt.cli import main
    assert main(["convert", "--from", "laion", str(tmp_path / "x.pt"), str(tmp_path / "out")]) == 2
    assert "--tokenizer: LAION checkpoints carry no tokenizer" in capsys.readouterr().err
    assert main(["convert", "--from", "msclap", str(tmp_path / "missing.pth"), str(tmp_path / "out")]) == 2
    assert f"{tmp_path / 'missing.pth'}: msclap checkpoint file not found" in capsys.readouterr().err


# --- (b) the released key sets ------------------------------------------------------------

def torchlibrosa_melw(sr, fmax=14000.0):
    """What torchlibrosa's LogmelFilterBank stores: librosa's filterbank transposed, (513, 64)."""
    return torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=1024, n_mels=64, fmin=50.0, fmax=fmax).T.copy())


def htsat_extras(prefix, sr):
    """Keys the released HTSATs carry beyond ours, at their shapes (HTSAT-tiny, AudioSet head)."""
    out = {f"{prefix}spectrogram_extractor.stft.conv_real.weight": torch.randn(513, 1, 1024),
           f"{prefix}spectrogram_extractor.stft.conv_imag.weight": torch.randn(513, 1, 1024),
           f"{prefix}logmel_extractor.melW": torchlibrosa_melw(sr),
           f"{prefix}tscam_conv.weight": torch.randn(527, 768, 2, 3),   # kernel (256/8/4/4, 3)
           f"{prefix}tscam_conv.bias": torch.randn(527),
           f"{prefix}head.weight": torch.randn(527, 527),
           f"{prefix}head.bias": torch.randn(527)}
    return out


def swin_buffers(model, prefix):
    """relative_position_index of every block, attn_mask of the shifted ones (persistent in the releases)."""
    return {prefix + k[len("audio."):]: v.clone() for k, v in model.named_buffers()
            if k.startswith("audio.layers.")}


def released_state(cfg, renames, extras):
    """Our model's keys under a release's names (random values), plus that release's extras."""
    with torch.device("meta"):
        meta = CLAP(cfg)
    torch.manual_seed(0)
    state = {}
    for k, v in meta.state_dict().items():
        for ours, theirs in renames:
            if k.startswith(ours):
                k = theirs + k[len(ours):]
                break
        if not v.is_floating_point():
            state[k] = torch.zeros(v.shape, dtype=v.dtype)
        else:
            state[k] = torch.rand(v.shape) if k.endswith("running_var") else torch.randn(v.shape) * 0.02
    state.update(extras)
    return state


MSCLAP_RENAMES = [("audio.", "audio_encoder.base.htsat."), ("audio_projection.", "audio_encoder.projection."),
                  ("text.body.", "caption_encoder.base."), ("text_projection.", "caption_encoder.projection.")]

# Names and shapes read off msclap's public code (models/htsat.py, models/clap.py; GPT-2 base).
MSCLAP_KNOWN = {
    "audio_encoder.base.htsat.spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
    "audio_encoder.base.htsat.logmel_extractor.melW": (513, 64),
    "audio_encoder.base.htsat.bn0.running_var": (64,),
    "audio_encoder.base.htsat.patch_embed.proj.weight": (96, 1, 4, 4),
    "audio_encoder.base.htsat.patch_embed.norm.weight": (96,),
    "audio_encoder.base.htsat.layers.0.blocks.1.attn_mask": (64, 64, 64),
    "audio_encoder.base.htsat.layers.0.blocks.0.attn.relative_position_index": (64, 64),
    "audio_encoder.base.htsat.layers.2.blocks.5.attn.qkv.weight": (1152, 384),
    "audio_encoder.base.htsat.layers.3.blocks.1.attn.relative_position_bias_table": (225, 32),
    "audio_encoder.base.htsat.layers.2.downsample.reduction.weight": (768, 1536),
    "audio_encoder.base.htsat.layers.2.downsample.norm.weight": (1536,),
    "audio_encoder.base.htsat.norm.weight": (768,),
    "audio_encoder.base.htsat.tscam_conv.weight": (527, 768, 2, 3),
    "audio_encoder.base.htsat.head.weight": (527, 527),
    "audio_encoder.projection.linear1.weight": (1024, 768),
    "audio_encoder.projection.linear2.weight": (1024, 1024),
    "audio_encoder.projection.layer_norm.bias": (1024,),
    "caption_encoder.base.wte.weight": (50257, 768),
    "caption_encoder.base.h.11.mlp.c_fc.weight": (768, 3072),
    "caption_encoder.base.ln_f.weight": (768,),
    "caption_encoder.projection.linear1.weight": (1024, 768),
    "logit_scale": (),
}


@pytest.fixture(scope="module")
def msclap_state():
    cfg = msclap_2023()
    prefix = "audio_encoder.base.htsat."
    buffers = swin_buffers(htsat_only(cfg), prefix)
    state = released_state(cfg, MSCLAP_RENAMES, {**htsat_extras(prefix, 32000), **buffers})
    # transformers < 4.2x stored GPT-2's causal-mask buffers
    for i in range(12):
        state[f"caption_encoder.base.h.{i}.attn.bias"] = torch.ones(1, 1, 1024, 1024, dtype=torch.bool).tril()
        state[f"caption_encoder.base.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return state


def htsat_only(cfg):
    """A module whose buffers are named like CLAP's audio tower (`audio.`), without the text tower."""
    from clap_rt.htsat import HTSAT
    m = torch.nn.Module()
    m.audio = HTSAT(cfg.audio.htsat, cfg.frontend)
    return m


def assert_keys_named(convert, state: dict, missing: str, unexpected: str) -> None:
    """`convert(state)` fails with one UserError naming the missing and the unexpected key."""
    with pytest.raises(UserError) as e:
        convert(state)
    msg = str(e.value)
    assert f"missing keys [{missing!r}]" in msg, msg
    assert f"unexpected keys [{unexpected!r}]" in msg, msg


def test_msclap_key_names_match_public_code(msclap_state):
    for k, shape in MSCLAP_KNOWN.items():
        assert k in msclap_state, f"{k} missing from the generated msclap state dict"
        assert tuple(msclap_state[k].shape) == shape, f"{k}: {tuple(msclap_state[k].shape)} != {shape}"
    # the 8x8 last stage is one window: no shift, no mask
    assert "audio_encoder.base.htsat.layers.3.blocks.1.attn_mask" not in msclap_state


def test_msclap_loads_strictly(msclap_state):
    notes = []
    model = convert_msclap(dict(msclap_state), notes=notes)
    key = "layers.2.blocks.5.attn.qkv.weight"
    assert torch.equal(model.audio.get_parameter(key), msclap_state["audio_encoder.base.htsat." + key])
    assert torch.equal(model.text_projection.linear1.weight, msclap_state["caption_encoder.projection.linear1.weight"])
    assert any(n.startswith("melW vs msclap-2023 filterbank: max abs diff") for n in notes), notes
    n_audio = sum(p.numel() for p in model.audio.parameters())
    n_all = sum(p.numel() for p in model.parameters())
    print(f"msclap-2023: audio tower {n_audio:,} params, total {n_all:,}")


def test_msclap_missing_and_unexpected_keys_are_named(msclap_state):
    state = dict(msclap_state)
    del state["audio_encoder.base.htsat.layers.1.blocks.0.mlp.fc2.bias"]
    state["audio_encoder.base.htsat.fc_doa.weight"] = torch.zeros(3)
    assert_keys_named(convert_msclap, state, "audio.layers.1.blocks.0.mlp.fc2.bias", "audio.fc_doa.weight")


LAION_RENAMES = [("audio.", "audio_branch."), ("text.body.", "text_branch."),
                 ("audio_projection.linear1.", "audio_projection.0."), ("audio_projection.linear2.", "audio_projection.2."),
                 ("text_projection.linear1.", "text_projection.0."), ("text_projection.linear2.", "text_projection.2."),
                 ("logit_scale", "logit_scale_a")]

# Names and shapes read off LAION-CLAP's public code (clap_module/htsat.py, model.py; roberta-base).
LAION_KNOWN = {
    "audio_branch.logmel_extractor.melW": (513, 64),
    "audio_branch.layers.1.blocks.1.attn_mask": (16, 64, 64),
    "audio_branch.patch_embed.norm.bias": (96,),
    "audio_branch.tscam_conv.bias": (527,),
    "text_branch.embeddings.word_embeddings.weight": (50265, 768),
    "text_branch.embeddings.position_ids": (1, 514),
    "text_branch.pooler.dense.weight": (768, 768),
    "audio_projection.0.weight": (512, 768),
    "audio_projection.2.weight": (512, 512),
    "text_projection.0.weight": (512, 768),
    "audio_transform.sequential.0.weight": (512, 512),
    "audio_transform.sequential.3.weight": (512, 512),
    "text_transform.sequential.3.bias": (512,),
    "logit_scale_a": (),
    "logit_scale_t": (),
}


@pytest.fixture(scope="module")
def laion_state():
    cfg = laion_htsat_tiny()
    buffers = swin_buffers(htsat_only(cfg), "audio_branch.")
    extras = {**htsat_extras("audio_branch.", 48000), **buffers,
              "text_branch.embeddings.position_ids": torch.arange(514)[None],
              "logit_scale_t": torch.tensor(3.0)}
    for side in ("audio", "text"):
        for i in (0, 3):
            extras[f"{side}_transform.sequential.{i}.weight"] = torch.randn(512, 512)
            extras[f"{side}_transform.sequential.{i}.bias"] = torch.randn(512)
    # as saved by LAION's training (DDP) under "state_dict"
    return {"epoch": 45, "state_dict": {"module." + k: v for k, v in
                                        released_state(cfg, LAION_RENAMES, extras).items()}}


def test_laion_key_names_match_public_code(laion_state):
    state = {k[len("module."):]: v for k, v in laion_state["state_dict"].items()}
    for k, shape in LAION_KNOWN.items():
        assert k in state, f"{k} missing from the generated LAION state dict"
        assert tuple(state[k].shape) == shape, f"{k}: {tuple(state[k].shape)} != {shape}"


def test_laion_file_loads_strictly_and_bad_keys_are_named(laion_state, tmp_path):
    path = tmp_path / "630k-audioset-best.pt"
    torch.save(laion_state, path)
    model = convert_laion(path)
    src = laion_state["state_dict"]
    assert torch.equal(model.logit_scale, src["module.logit_scale_a"])
    assert torch.equal(model.audio_projection.linear2.weight, src["module.audio_projection.2.weight"])
    assert torch.equal(model.text.body.pooler.dense.weight, src["module.text_branch.pooler.dense.weight"])

    bad = {k[len("module."):]: v for k, v in src.items() if k != "module.text_projection.2.bias"}
    bad["text_branch.lm_head.bias"] = torch.zeros(3)
    assert_keys_named(convert_laion, bad, "text_projection.linear2.bias", "text.body.lm_head.bias")


# --- (c) torchlibrosa's filterbank vs our presets -----------------------------------------

def test_msclap_filterbank_is_librosa_32k():
    ours = mel_filterbank(msclap_2023().frontend)                     # (64, 513)
    ref = librosa.filters.mel(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000)
    diff = float(np.abs(ours - ref).max())
    assert diff <= 1e-6, f"msclap-2023 filterbank vs librosa: max abs diff {diff:.3g}"
    diff_t = melw_max_abs_diff(torchlibrosa_melw(32000), msclap_2023())
    assert diff_t <= 1e-6, f"torchlibrosa melW vs msclap-2023: max abs diff {diff_t:.3g}"


def test_melw_mismatch_names_the_preset(msclap_state):
    # msclap's YAML says fmax 8000; the weights were trained with the code's 14000.
    wrong = dict(msclap_state)
    wrong["audio_encoder.base.htsat.logmel_extractor.melW"] = torchlibrosa_melw(32000, fmax=8000.0)
    with pytest.raises(UserError, match="differs from the msclap-2023 preset's filterbank by"):
        convert_msclap(wrong)


# --- the bundled GPT-2 BPE files (msclap's tokenizer) -------------------------------------

GPT2_IDS = [5661, 318, 257, 2128, 286, 3290, 220, 50256]      # "this is a sound of dog <|endoftext|>"


def test_gpt2_assets_load_with_transformers():
    import transformers
    from clap_rt.cli.convert import GPT2_ASSETS
    tok = transformers.GPT2TokenizerFast.from_pretrained(str(GPT2_ASSETS))
    assert len(tok) == 50257
    assert tok("this is a sound of dog <|endoftext|>").input_ids == GPT2_IDS


def test_gpt2_assets_through_text_tokenizer():
    """What `clap-rt convert --from msclap` stores: msclap's prompt + suffix as GPT-2 ids."""
    from clap_rt.cli.convert import GPT2_ASSETS
    from clap_rt.tokenizer import TextTokenizer
    ids, mask = TextTokenizer.from_dir(GPT2_ASSETS, msclap_2023().text)(["this is a sound of dog"])
    assert ids[0].tolist() == GPT2_IDS and mask.sum().item() == len(GPT2_IDS), ids
