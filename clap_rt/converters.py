"""Released CLAP checkpoints -> our `CLAP`: msclap 2023, LAION-CLAP, transformers `ClapModel`.

Each converter renames keys, sets aside an explicit list of keys we do not use (checking the
ones that prove the preset matches the code that trained the weights), and loads the rest
strictly: a missing or unexpected key is an error that names it.

- torchlibrosa's `logmel_extractor.melW` (n_bins, n_mels) must equal our filterbank
  transposed (max abs diff <= MELW_TOLERANCE); its STFT kernels must have our n_fft.
- Swin's `relative_position_index` / `attn_mask` buffers must equal the ones we derive.
- AudioSet heads, LAION's training-only MLPs, the second temperature and position-id
  buffers of older transformers are dropped.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import torch

from .checkpoints import load_state_strict, read_safetensors
from .config import GPT2_BASE, HTSATConfig, ModelConfig, ProjectionConfig, laion_htsat_tiny, msclap_2023
from .errors import UserError, read_json_file
from .model import CLAP

MELW_TOLERANCE = 1e-4

# Keys (after renaming) that the released files carry and our model does not use.
# Each entry: (pattern, why). Patterns are full-match regular expressions.
HTSAT_EXTRAS = [
    (r"audio\.spectrogram_extractor\.stft\.conv_(real|imag)\.weight", "STFT kernels (frontend is outside)"),
    (r"audio\.logmel_extractor\.melW", "mel filterbank (frontend is outside)"),
    (r"audio\.(tscam_conv|head)\.(weight|bias)", "AudioSet token-semantic head"),
    (r"audio\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index", "derived buffer"),
    (r"audio\.layers\.\d+\.blocks\.\d+\.attn_mask", "derived buffer"),
]
MSCLAP_EXTRAS = HTSAT_EXTRAS + [
    (r"text\.body\.h\.\d+\.attn\.(bias|masked_bias)", "causal-mask buffers of older transformers"),
]
LAION_EXTRAS = HTSAT_EXTRAS + [
    (r"(audio|text)_transform\.sequential\.\d+\.(weight|bias)", "training-only MLP after the projection"),
    (r"logit_scale_t", "second temperature (text->audio); logit_scale_a is kept"),
    (r"text\.body\.embeddings\.(position_ids|token_type_ids)", "constant buffers of older transformers"),
]
HF_EXTRAS = [
    (r"audio\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index", "derived buffer"),
    (r"logit_scale_t", "second temperature (text->audio); logit_scale_a is kept"),
    (r"text\.body\.embeddings\.(position_ids|token_type_ids)", "constant buffers"),
]

MSCLAP_PREFIXES = [
    ("audio_encoder.base.htsat.", "audio."),
    ("audio_encoder.projection.", "audio_projection."),
    ("caption_encoder.base.", "text.body."),
    ("caption_encoder.projection.", "text_projection."),
]
LAION_PREFIXES = [
    ("audio_branch.", "audio."),
    ("text_branch.", "text.body."),
    ("audio_projection.0.", "audio_projection.linear1."),
    ("audio_projection.2.", "audio_projection.linear2."),
    ("text_projection.0.", "text_projection.linear1."),
    ("text_projection.2.", "text_projection.linear2."),
    ("logit_scale_a", "logit_scale"),
]
# transformers ClapModel -> ours; q, k, v are concatenated separately (see `_hf_rename`).
HF_PREFIXES = [
    ("audio_model.audio_encoder.batch_norm.", "audio.bn0."),
    ("audio_model.audio_encoder.", "audio."),
    ("text_model.", "text.body."),
    ("logit_scale_a", "logit_scale"),
]
HF_BLOCK_NAMES = [
    ("layernorm_before.", "norm1."),
    ("layernorm_after.", "norm2."),
    ("attention.self.relative_position_bias_table", "attn.relative_position_bias_table"),
    ("attention.self.relative_position_index", "attn.relative_position_index"),
    ("attention.output.dense.", "attn.proj."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
]


# --- public converters ---------------------------------------------------------------------

def convert_msclap(state_dict_or_path, version: str = "2023", notes: list | None = None) -> CLAP:
    """msclap `CLAP_weights_2023.pth` (or its state dict) -> CLAP with the msclap-2023 preset.

    `notes`, when given, receives one line per check (melW difference, dropped keys).
    """
    if version != "2023":
        raise UserError(f"msclap version {version!r}: only '2023' (HTSAT + GPT2) is supported")
    state = _read_state(state_dict_or_path, "msclap")
    src = _source_name(state_dict_or_path)
    state = _rename_prefixes(state, MSCLAP_PREFIXES)
    cfg = msclap_2023()
    cfg = _with_weights_shapes(cfg, state, src)
    return _build(cfg, state, MSCLAP_EXTRAS, src, notes)


def convert_laion(state_dict_or_path, notes: list | None = None) -> CLAP:
    """LAION-CLAP `630k-*.pt` (non-fusion HTSAT + RoBERTa, or its state dict) -> CLAP."""
    state = _read_state(state_dict_or_path, "laion")
    src = _source_name(state_dict_or_path)
    if any(".fusion_model." in k or ".mel_conv" in k for k in state):
        raise UserError(f"{src}: a fusion LAION-CLAP checkpoint; only non-fusion models are supported")
    state = _rename_prefixes(state, LAION_PREFIXES)
    cfg = _with_weights_shapes(laion_htsat_tiny(), state, src)
    return _build(cfg, state, LAION_EXTRAS, src, notes)


def convert_hf(folder, notes: list | None = None) -> CLAP:
    """A transformers `ClapModel.save_pretrained` folder -> CLAP (non-fusion models only).

    The frontend follows `preprocessor_config.json` when the folder has one (a saved
    `ClapProcessor`), else the laion-htsat-tiny preset.
    """
    folder = Path(folder)
    hf = read_json_file(folder / "config.json", f"{folder}: expected a transformers ClapModel folder with config.json")
    if not isinstance(hf, dict):
        raise UserError(f"{folder / 'config.json'}: expected a transformers ClapConfig object")
    try:
        cfg = hf_model_config(hf, _read_json(folder / "preprocessor_config.json"), str(folder))
    except (KeyError, TypeError, ValueError, IndexError) as e:     # a field missing or of the wrong kind
        raise UserError(f"{folder / 'config.json'}: {type(e).__name__}: {e}; expected a transformers ClapConfig")
    state = _read_safetensors_or_bin(folder)
    return _build(cfg, _hf_rename(state), HF_EXTRAS, str(folder), notes)


def hf_model_config(hf: dict, preprocessor: dict | None, src: str) -> ModelConfig:
    """transformers ClapConfig dict (+ ClapFeatureExtractor dict) -> our ModelConfig."""
    try:
        import transformers
    except ImportError as e:
        raise RuntimeError("converting a transformers folder requires the transformers package "
                           "(pip install transformers)") from e
    # Through ClapConfig so that fields save_pretrained left out take transformers' defaults.
    try:
        full = transformers.ClapConfig.from_dict(hf)
    except Exception as e:      # huggingface_hub's validation errors derive from Exception alone
        why = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise UserError(f"{src}: config.json is not a valid ClapConfig ({why})")
    a, t = full.audio_config.to_dict(), full.text_config.to_dict()
    if a["enable_fusion"]:
        raise UserError(f"{src}: audio_config.enable_fusion is true; only non-fusion models are supported")
    for where, d, key, want in (("audio_config", a, "hidden_act", "gelu"),
                                ("audio_config", a, "projection_hidden_act", "relu"),
                                ("text_config", t, "projection_hidden_act", "relu"),
                                ("audio_config", a, "patch_embed_input_channels", 1),
                                ("audio_config", a, "enable_patch_layer_norm", True)):
        if d[key] != want:
            raise UserError(f"{src}: {where}.{key} is {d[key]!r}; only {want!r} is supported")
    htsat = HTSATConfig(
        spec_size=a["spec_size"], patch_size=_square(a["patch_size"], f"{src}: audio_config.patch_size"),
        patch_stride=_square(a["patch_stride"], f"{src}: audio_config.patch_stride"), embed_dim=a["patch_embeds_hidden_size"],
        depths=tuple(a["depths"]), num_heads=tuple(a["num_attention_heads"]), window_size=a["window_size"],
        mlp_ratio=a["mlp_ratio"], qkv_bias=a["qkv_bias"],
        layer_norm_eps=a["layer_norm_eps"])
    if htsat.out_dim != a["hidden_size"]:
        raise UserError(f"{src}: audio_config.hidden_size {a['hidden_size']} != patch_embeds_hidden_size * "
                        f"2^(len(depths)-1) = {htsat.out_dim}")
    cfg = laion_htsat_tiny()
    text_keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "hidden_act", "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
                 "hidden_dropout_prob", "attention_probs_dropout_prob", "pad_token_id", "bos_token_id",
                 "eos_token_id")
    text_cfg = {**cfg.text.hf_config, **{k: t[k] for k in text_keys if k in t}}
    fe = cfg.frontend
    if preprocessor:
        fe = dataclasses.replace(
            fe, sample_rate=preprocessor.get("sampling_rate", fe.sample_rate),
            n_fft=preprocessor.get("fft_window_size", fe.n_fft), win_length=preprocessor.get("fft_window_size", fe.n_fft),
            hop_length=preprocessor.get("hop_length", fe.hop_length), n_mels=preprocessor.get("feature_size", fe.n_mels),
            fmin=preprocessor.get("frequency_min", fe.fmin), fmax=preprocessor.get("frequency_max", fe.fmax),
            clip_seconds=preprocessor.get("max_length_s", fe.clip_seconds))
    if fe.n_mels != a["num_mel_bins"]:
        raise UserError(f"{src}: audio_config.num_mel_bins {a['num_mel_bins']} != frontend n_mels {fe.n_mels}")
    return dataclasses.replace(
        cfg, name=f"hf-{Path(src).name}", frontend=fe,
        audio=dataclasses.replace(cfg.audio, htsat=htsat),
        text=dataclasses.replace(cfg.text, hf_config=text_cfg),
        projection=ProjectionConfig(kind="laion", dim=full.projection_dim, dropout=0.0),
        logit_scale_init=float(np.log(full.logit_scale_init_value)))


def _square(v, name: str) -> int:
    """An int, or a list of equal ints -> that int."""
    if isinstance(v, int):
        return v
    if len(set(v)) != 1:
        raise UserError(f"{name} is {list(v)}; only square patches are supported")
    return int(v[0])


# --- reading -------------------------------------------------------------------------------

def _source_name(state_dict_or_path) -> str:
    return "state dict" if isinstance(state_dict_or_path, dict) else str(state_dict_or_path)


def _read_state(state_dict_or_path, kind: str) -> dict[str, torch.Tensor]:
    """A state dict, or a torch file holding one (plain, under "model" / "state_dict", or DDP's "module.")."""
    obj = state_dict_or_path
    if not isinstance(obj, dict):
        path = Path(obj)
        if not path.is_file():
            raise UserError(f"{path}: {kind} checkpoint file not found")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:   # pickle errors come in many types; name the file and the cause
            raise UserError(f"{path}: not readable with torch.load(weights_only=True): "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}")
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{_source_name(state_dict_or_path)}: expected a state dict of tensors")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _read_json(path: Path) -> dict | None:
    return read_json_file(path, f"{path}: not found") if path.is_file() else None


def _read_safetensors_or_bin(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        return read_safetensors(folder / "model.safetensors")
    if (folder / "pytorch_model.bin").is_file():
        return _read_state(folder / "pytorch_model.bin", "transformers")
    raise UserError(f"{folder}: expected model.safetensors or pytorch_model.bin")


# --- renaming ------------------------------------------------------------------------------

def _rename_prefixes(state: dict, prefixes: list[tuple[str, str]]) -> dict:
    """First matching prefix wins; keys matching none keep their name (and fail strict loading)."""
    out = {}
    for k, v in state.items():
        for old, new in prefixes:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def _hf_rename(state: dict) -> dict:
    """transformers ClapModel names -> ours; separate q/k/v linears -> one `qkv`."""
    out = {}
    for k, v in _rename_prefixes(state, HF_PREFIXES).items():
        m = re.fullmatch(r"(audio\.layers\.\d+\.blocks\.\d+\.)(.*)", k)
        if m:
            head, rest = m.groups()
            for old, new in HF_BLOCK_NAMES:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            k = head + rest
        out[k] = v
    qkv = {}
    for k in list(out):
        m = re.fullmatch(r"(audio\.layers\.\d+\.blocks\.\d+\.)attention\.self\.(query|key|value)\.(weight|bias)", k)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = out.pop(k)
    for (head, kind), parts in qkv.items():
        missing = [p for p in ("query", "key", "value") if p not in parts]
        if missing:
            raise UserError(f"missing keys {[f'{head}attention.self.{p}.{kind}' for p in missing]}")
        out[f"{head}attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
    return out


def _with_weights_shapes(cfg: ModelConfig, state: dict, src: str) -> ModelConfig:
    """Read the HTSAT size (width, depths, heads, window, MLP) and projection dim off the weights,
    so the larger HTSAT variants convert too; everything else comes from the preset."""
    h = cfg.audio.htsat
    try:
        embed_dim = state["audio.patch_embed.proj.weight"].shape[0]
        depths, heads = [], []
        while f"audio.layers.{len(depths)}.blocks.0.norm1.weight" in state:
            i = len(depths)
            depths.append(1 + max(int(m.group(1)) for k in state
                                  if (m := re.fullmatch(rf"audio\.layers\.{i}\.blocks\.(\d+)\.norm1\.weight", k))))
            heads.append(state[f"audio.layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1])
        table = state["audio.layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]
        fc1 = state["audio.layers.0.blocks.0.mlp.fc1.weight"].shape
        n_mels = state["audio.bn0.weight"].shape[0]
        dim = state["audio_projection.linear1.weight"].shape[0]
    except KeyError as e:
        raise UserError(f"{src}: missing key {e.args[0]!r} (after renaming to our names)")
    if n_mels != cfg.frontend.n_mels:
        raise UserError(f"{src}: bn0 has {n_mels} mel bins; preset {cfg.name} has {cfg.frontend.n_mels}")
    ws = (int(round(table ** 0.5)) + 1) // 2
    htsat = dataclasses.replace(h, embed_dim=embed_dim, depths=tuple(depths), num_heads=tuple(heads),
                                window_size=ws, mlp_ratio=fc1[0] / fc1[1],
                                qkv_bias="audio.layers.0.blocks.0.attn.qkv.bias" in state)
    return dataclasses.replace(cfg, audio=dataclasses.replace(cfg.audio, htsat=htsat),
                               projection=dataclasses.replace(cfg.projection, dim=dim))


# --- checks and loading --------------------------------------------------------------------

def _build(cfg: ModelConfig, state: dict, extras: list, src: str, notes: list | None) -> CLAP:
    kept, dropped = _set_aside(state, extras)
    _check_frontend(cfg, dropped, src, notes)
    model = CLAP(cfg)
    _check_buffers(model, dropped, src)
    _load_noting(model, kept, dropped, extras, src, notes)
    return model.eval()


def _set_aside(state: dict, extras: list) -> tuple[dict, dict]:
    """state -> (kept, dropped): the keys matching one of `extras`' patterns are dropped."""
    kept, dropped = {}, {}
    for k, v in state.items():
        (dropped if any(re.fullmatch(p, k) for p, _ in extras) else kept)[k] = v
    return kept, dropped


def _load_noting(model, kept: dict, dropped: dict, extras: list, src: str, notes: list | None) -> None:
    """Strict loading (a bad key is a UserError), then one note per pattern that dropped keys."""
    try:
        load_state_strict(model, kept, src)
    except ValueError as e:
        raise UserError(str(e))
    if notes is not None:
        for pattern, why in extras:
            n = sum(1 for k in dropped if re.fullmatch(pattern, k))
            if n:
                notes.append(f"dropped {n} key(s) /{pattern}/: {why}")


def _check_frontend(cfg: ModelConfig, dropped: dict, src: str, notes: list | None) -> None:
    """torchlibrosa's melW and STFT kernels must match the preset's frontend."""
    fe = cfg.frontend
    if "audio.logmel_extractor.melW" in dropped:
        diff = melw_max_abs_diff(dropped["audio.logmel_extractor.melW"], cfg)
        if notes is not None:
            notes.append(f"melW vs {cfg.name} filterbank: max abs diff {diff:.3g}")
        if diff > MELW_TOLERANCE:
            raise UserError(f"{src}: logmel_extractor.melW differs from the {cfg.name} preset's "
                            f"filterbank by {diff:.3g} (> {MELW_TOLERANCE}); the preset does not match this checkpoint")
    for part in ("real", "imag"):
        key = f"audio.spectrogram_extractor.stft.conv_{part}.weight"
        if key in dropped and tuple(dropped[key].shape) != (fe.n_bins, 1, fe.n_fft):
            raise UserError(f"{src}: {key} has shape {tuple(dropped[key].shape)}; the {cfg.name} "
                            f"preset's STFT needs {(fe.n_bins, 1, fe.n_fft)}")


def _check_buffers(model: CLAP, dropped: dict, src: str) -> None:
    """Released Swin buffers must equal the ones we derive from the config."""
    buffers = dict(model.named_buffers())
    for k, v in dropped.items():
        if k.endswith(("relative_position_index", "attn_mask")):
            ours = buffers.get(k)
            if ours is None or ours.shape != v.shape or not torch.equal(ours.to(v.dtype), v):
                raise UserError(f"{src}: buffer {k} does not match the window layout of the {model.config.name} "
                                f"config (shape {tuple(v.shape)})")


def melw_max_abs_diff(melw: torch.Tensor, cfg: ModelConfig) -> float:
    """Max |melW - filterbank(cfg.frontend).T|; melW is torchlibrosa's (n_bins, n_mels) matrix."""
    from .frontend import mel_filterbank
    ours = mel_filterbank(cfg.frontend).T                    # (n_bins, n_mels)
    theirs = melw.detach().float().numpy()
    if theirs.shape != ours.shape:
        return float("inf")
    return float(np.abs(theirs - ours).max())


# --- msclap clapcap (captioning) -----------------------------------------------------------

# clapcap_weights_2023.pth: msclap's ClapCaptionModel. `clap.` is the frozen audio encoder,
# `clap_project.` the mapper, `gpt.` GPT2LMHeadModel.
CLAPCAP_PREFIXES = [
    ("clap.base.htsat.", "audio."),
    ("clap.projection.", "audio_projection."),
    ("clap_project.", "mapper."),
    ("gpt.", "decoder."),
]
CLAPCAP_EXTRAS = [
    (r"decoder\.transformer\.h\.\d+\.attn\.(bias|masked_bias)", "causal-mask buffers of older transformers"),
]
GPT2_HEAD_DIM = 64               # every released GPT2 size: 768/12, 1024/16, 1280/20, 1600/25
CLAPCAP_MAPPER_HEADS = 8         # msclap's TransformerMapper: Transformer(dim_embedding, 8, num_layers)
AUDIO_MATCH_TOLERANCE = 1e-6


def convert_clapcap(state_dict_or_path, notes: list | None = None):
    """msclap `clapcap_weights_2023.pth` (or its state dict) -> (Captioner, audio encoder state).

    The audio encoder's weights come back under our names (`audio.`, `audio_projection.`, the
    released extras included) for `add_clapcap` to compare with the model the captioner joins;
    sizes (mapper kind and depth, prefix and clip lengths, GPT2 width, depth, vocabulary) are
    read off the weights; the mapper's 8 heads and the decoding settings are clapcap's.
    """
    from .caption import TIED_EMBEDDING, TIED_HEAD, Captioner
    src = _source_name(state_dict_or_path)
    state = _rename_prefixes(_read_state(state_dict_or_path, "msclap clapcap"), CLAPCAP_PREFIXES)
    audio = {k: v for k, v in state.items() if k.startswith(("audio.", "audio_projection."))}
    state = {k: v for k, v in state.items() if k not in audio}
    kept, dropped = _set_aside(state, CLAPCAP_EXTRAS)
    cfg = clapcap_config(kept, src)
    head, emb = kept.get(TIED_HEAD), kept.get(TIED_EMBEDDING)
    if head is not None and not torch.equal(head, emb):
        raise UserError(f"{src}: gpt.lm_head.weight differs from gpt.transformer.wte.weight; "
                        f"only GPT2 with a tied output head is supported")
    kept[TIED_HEAD] = emb
    try:
        captioner = Captioner(cfg)
    except ValueError as e:
        raise UserError(f"{src}: {e}")
    kept["vocab"] = captioner.vocab.clone()
    _load_noting(captioner, kept, dropped, CLAPCAP_EXTRAS, src, notes)
    return captioner.eval(), audio


def clapcap_config(state: dict, src: str):
    """The CaptionerConfig of clapcap weights under our names (`mapper.`, `decoder.`)."""
    from .caption import CaptionerConfig, MapperConfig
    try:
        vocab, width = state["decoder.transformer.wte.weight"].shape
        n_positions = state["decoder.transformer.wpe.weight"].shape[0]
        n_inner = state["decoder.transformer.h.0.mlp.c_fc.weight"].shape[1]
        if "mapper.linear.weight" in state:
            linear = state["mapper.linear.weight"]
            mapper = MapperConfig(kind="transformer", prefix_length=state["mapper.prefix_const"].shape[0],
                                  clip_length=linear.shape[0] // width,
                                  num_layers=_count(state, r"mapper\.transformer\.layers\.(\d+)\.norm1\.weight"),
                                  num_heads=CLAPCAP_MAPPER_HEADS,
                                  mlp_ratio=state["mapper.transformer.layers.0.mlp.fc1.weight"].shape[0] / width)
            embed_dim = linear.shape[1]
        else:
            mapper = MapperConfig(kind="mlp", prefix_length=state["mapper.model.2.weight"].shape[0] // width)
            embed_dim = state["mapper.model.0.weight"].shape[1]
    except KeyError as e:
        raise UserError(f"{src}: missing key {e.args[0]!r} (after renaming to our names); "
                        f"expected msclap's ClapCaptionModel (clap_project., gpt.)")
    decoder = dict(GPT2_BASE, vocab_size=vocab, n_positions=n_positions, n_embd=width, n_inner=n_inner,
                   n_layer=_count(state, r"decoder\.transformer\.h\.(\d+)\.ln_1\.weight"),
                   n_head=max(1, width // GPT2_HEAD_DIM))
    return CaptionerConfig(name="msclap-clapcap", embed_dim=embed_dim, mapper=mapper, decoder=decoder)


def _count(state: dict, pattern: str) -> int:
    """1 + the largest layer index captured by `pattern` (0 when none match)."""
    return 1 + max((int(m.group(1)) for k in state if (m := re.fullmatch(pattern, k))), default=-1)


def add_clapcap(src, model_dir) -> list[str]:
    """Convert clapcap weights `src` into the captioner of model folder `model_dir` (a model
    converted with `convert_msclap`): clapcap's frozen audio encoder must be that model's audio
    tower. Returns one line per check."""
    from .caption import save_captioner
    from .checkpoints import load_model, model_fingerprint
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir}: expected a model folder made by `clap-rt convert --from msclap "
                        f"CLAP_weights_2023.pth {model_dir}` (clapcap's checkpoint has no text tower)")
    model, _ = load_model(model_dir)
    notes: list[str] = []
    captioner, audio = convert_clapcap(src, notes)
    src_name = _source_name(src)
    own = model.state_dict()
    used, _ = _set_aside(audio, HTSAT_EXTRAS)
    own_audio = {k for k in own if k.startswith(("audio.", "audio_projection."))}
    absent, extra = sorted(own_audio - set(used)), sorted(set(used) - own_audio)
    if not used or absent or extra:
        raise UserError(f"{src_name}: its audio encoder (clap.) does not have the layout of {model_dir}'s audio tower "
                        f"(missing {absent[:3]}, unexpected {extra[:3]})")
    diff = max(float((used[k].float() - own[k].float()).abs().max()) if used[k].numel() else 0.0 for k in used)
    if diff > AUDIO_MATCH_TOLERANCE:
        raise UserError(f"{src_name}: its audio encoder differs from {model_dir}'s audio tower by {diff:.3g} "
                        f"(> {AUDIO_MATCH_TOLERANCE}); the captioner would read another model's embeddings")
    if captioner.config.embed_dim != model.config.projection.dim:
        raise UserError(f"{src_name}: the mapper reads {captioner.config.embed_dim}-d embeddings; "
                        f"{model_dir}'s joint space has {model.config.projection.dim}")
    notes.append(f"audio encoder vs {model_dir}'s audio tower: max abs diff {diff:.3g} over {len(used)} tensors")
    save_captioner(captioner, model_dir, model_fingerprint(model),
                   meta={"converted_from": "msclap-clapcap", "source": src_name})
    return notes
