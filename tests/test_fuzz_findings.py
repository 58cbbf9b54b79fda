"""Inputs found by fuzzing (python -m bench.fuzz) that broke the contract of the loaders: each
is now one UserError naming the file, like every other bad input."""
from __future__ import annotations

import io
import json
import shutil
import struct

import numpy as np
import pytest

from clap_rt.errors import UserError

NOT_AN_INDEX = "{p}: not an index, or cut short ("


def _index_bytes(save=np.savez) -> bytes:
    buf = io.BytesIO()
    save(buf, paths=np.array(["a.wav"] * 20), embeddings=np.ones((20, 8), np.float32))
    return buf.getvalue()


def _zip_fields(data: bytes, flags: int | None = None, method: int | None = None) -> bytes:
    """Every member's general-purpose flags / compression method set, in the local and central headers."""
    b = bytearray(data)
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = b.find(sig)
        while i >= 0:
            if flags is not None:
                b[i + at:i + at + 2] = struct.pack("<H", flags)
            if method is not None:
                b[i + at + 2:i + at + 4] = struct.pack("<H", method)
            i = b.find(sig, i + 1)
    return bytes(b)


def _damaged_deflate() -> bytes:
    b = bytearray(_index_bytes(np.savez_compressed))
    name_len, extra_len = struct.unpack("<HH", b[26:30])
    start = 30 + name_len + extra_len                       # the first member's compressed data
    b[start + 8:start + 12] = b"\xff\xff\xff\xff"
    return bytes(b)


def _huge_header() -> bytes:
    """An index whose embeddings header claims 8e12 floats (29 TiB) over a few bytes of data."""
    import zipfile
    buf, paths, header = io.BytesIO(), io.BytesIO(), io.BytesIO()
    np.save(paths, np.array(["a.wav"]))
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12, 8)})
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("paths.npy", paths.getvalue())
        z.writestr("embeddings.npy", header.getvalue() + bytes(64))
    return buf.getvalue()


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _archive(embeddings: bytes, embeddings_size: int | None = None) -> bytes:
    """An index zip of good paths and these embeddings.npy bytes; embeddings_size: the member's
    sizes the central directory claims."""
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("paths.npy", _npy(np.array(["a.wav"])))
        z.writestr("embeddings.npy", embeddings)
    b = bytearray(buf.getvalue())
    if embeddings_size is not None:
        i = b.rfind(b"PK\x01\x02")
        b[i + 20:i + 28] = struct.pack("<II", embeddings_size, embeddings_size)
    return bytes(b)


def _header(shape, text: bytes | None = None) -> bytes:
    if text is None:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
        return buf.getvalue()
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


@pytest.mark.parametrize("make, why", [
    (_damaged_deflate, "Error -3 while decompressing data"),
    # a header that is not a Python literal is parsed again as Python 2's, whose tokenizer fails
    (lambda: _archive(_header(None, b"{'descr': '<f4', 'fortran_order': False, 'shape': (1, ") + bytes(8)),
     "('EOF in multi-line statement'"),
    # the member runs past the end of the file: zipfile's EOFError has no message
    (lambda: _archive(_header((1000, 8)) + bytes(32), embeddings_size=10 ** 6), "EOFError)"),
    (lambda: _zip_fields(_index_bytes(), method=99), "That compression method is not supported"),
    (lambda: _zip_fields(_index_bytes(), flags=0x1), "File 'paths.npy' is encrypted, password required"),
    (lambda: _zip_fields(_index_bytes(), flags=0x41), "strong encryption (flag bit 6)"),
    (_huge_header, "Unable to allocate 29.1 TiB"),
])
def test_a_damaged_index_archive_is_a_user_error(tmp_path, make, why):
    from clap_rt.cli.search import load_index
    p = tmp_path / "index.npz"
    p.write_bytes(make())
    with pytest.raises(UserError) as e:
        load_index(str(p))
    assert str(e.value).startswith(NOT_AN_INDEX.format(p=p) + why), str(e.value)


@pytest.mark.parametrize("data, message", [
    (lambda: _archive(b"no .npy magic"), "{p}: 'embeddings' is not a .npy array; expected a .npz written by"),
    (lambda: _npy(np.ones((2, 8), np.float32)), "{p}: one .npy array, not an index; expected a .npz written by"),
])
def test_an_index_that_is_not_an_archive_of_arrays_is_a_user_error(tmp_path, data, message):
    from clap_rt.cli.search import load_index
    p = tmp_path / "index.npz"
    p.write_bytes(data())
    with pytest.raises(UserError) as e:
        load_index(str(p))
    assert str(e.value).startswith(message.format(p=p)), str(e.value)


@pytest.mark.parametrize("content, why", [
    (lambda doc: doc[:40] + b"\xe6\x00" + doc[40:], "invalid JSON (not UTF-8: byte 0xe6 at offset 40)"),
    (lambda doc: b"[" * 100000, "invalid JSON (nested too deeply)"),
])
def test_a_config_json_that_is_not_json_text_is_a_user_error(tiny_model_dir, tmp_path, content, why):
    from clap_rt.zeroshot import Clap
    d = tmp_path / "model"
    shutil.copytree(tiny_model_dir, d)
    doc = (d / "config.json").read_bytes()
    json.loads(doc)
    (d / "config.json").write_bytes(content(doc))
    with pytest.raises(UserError) as e:
        Clap.load(d, backend="torch")
    assert str(e.value) == f"{d / 'config.json'}: {why}"


@pytest.mark.parametrize("edit, why", [
    (lambda m: m["text"]["hf_config"].update(vocab_size=-5),
     "RuntimeError: Trying to create tensor with negative dimension -5"),
    (lambda m: m["projection"].update(dim=10 ** 10), "RuntimeError: [enforce fail at"),
    (lambda m: m["frontend"].update(n_mels=10 ** 13), "MemoryError: Unable to allocate"),
])
def test_a_config_json_of_impossible_sizes_is_a_user_error(tiny_model_dir, tmp_path, edit, why):
    from clap_rt.zeroshot import Clap
    d = tmp_path / "model"
    shutil.copytree(tiny_model_dir, d)
    doc = json.loads((d / "config.json").read_text())
    edit(doc["model"])
    (d / "config.json").write_text(json.dumps(doc))
    with pytest.raises(UserError) as e:
        Clap.load(d, backend="torch")
    assert str(e.value).startswith(f"{d / 'config.json'}: cannot build the model from this configuration ({why}"), \
        str(e.value)


def test_a_sound_file_header_claiming_a_huge_sample_rate_reads_in_small_blocks(tmp_path):
    import soundfile as sf
    from clap_rt.audio import MAX_BLOCK_SAMPLES, read_blocks
    p = tmp_path / "fast.au"
    sf.write(p, np.zeros(8000, np.float32), 8000, format="AU", subtype="G723_24")
    b = bytearray(p.read_bytes())
    b[16:20] = struct.pack(">I", 10 ** 9)            # the AU header's sample rate, big-endian
    p.write_bytes(bytes(b))
    assert sf.info(p).samplerate == 10 ** 9 and 10 * 10 ** 9 > MAX_BLOCK_SAMPLES
    # a G.723 stream reports no frame count to clip a read to: 10 s at the claimed rate would be 40 GB
    with pytest.raises(UserError, match=r"too short: 80\d\d sample\(s\) at 1000000000 Hz resample to none"):
        list(read_blocks(p, 44100))
