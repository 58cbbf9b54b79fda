"""Finding copies of one recording in the corpus, so that a split never puts it on both sides.

Games re-ship the same sound under other names and in other packages: re-encoded (ogg vs wav),
trimmed at either end, gain- or EQ-changed, resampled, mono vs stereo. `fingerprint` turns one
decoded clip into a small time-frequency feature matrix; `find_copies` reports, for every clip
that repeats an earlier one, the lowest index of its group and how it was found ("bytes" for the
same file hash, "waveform" for correlated fingerprints). Drop the copies before `assign_splits`.

The feature (per 16 ms hop, 128 ms window, 16 mel bands of an 8 kHz short-time spectrum):
  log band energy, softly floored per band -> minus the frame's mean over bands (removes gain and
  the loudness envelope, so two different noises with the same envelope do not look alike) ->
  minus each band's mean over time (removes gain and mild EQ: constant offsets per band in the
  log domain); plus one channel with the (scaled) loudness envelope. frames: (T, 17).
Two prints are compared by the Pearson correlation of their frame sequences at every lag whose
overlap is at least half of the shorter clip (and MIN_OVERLAP_FRAMES); the band means are
removed again inside each overlap window, so a trimmed copy correlates as well as a whole one.
find_copies prunes pairs by duration ratio (<= 2) and a corpus-standardized descriptor cosine,
then correlates each print with its candidates in one batched FFT.

Timing (this machine, 2 shared cores, one used): find_copies on 5,000 synthetic prints of
0.1-30 s (log-uniform durations, 500 trimmed / gain / 30 dB-noise copies) took 133 s (fingerprinting
them: 31 s). Pair count grows with N^2: 20,000 prints of similarly uniform synthetic material
would take ~16x; a real corpus of many sound types prunes better, but measure it there.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from clap_rt.audio import resample

SAMPLE_RATE_FP = 8000  # copies differ in rate; 8 kHz keeps what identifies a recording and is cheap
# 128 ms window: a copy trimmed by a fraction of a hop sits up to 8 ms off the frame grid; with
# a 1/16-window shift a noise band's energy still correlates ~0.95 (a 32 ms window gave ~0.85).
N_FFT = 1024
HOP = 128  # 16 ms frames
N_BANDS = 16
F_MIN, F_MAX = 100.0, 3800.0  # below 100 Hz little identifies a sound; soxr's 8 kHz filter cuts ~4 kHz
# Energies this far under the band's mean energy are clamped softly: re-encoding and added noise
# change what is in the quiet parts, the recording is the loud part. Tried -40..-10 dB on the
# synthetic sets: -15 gave the widest gap between true copies and distinct recordings.
FLOOR_DB = -15.0
GLOBAL_FLOOR_DB = -35.0
# An overlap of 16 frames spans 0.25 s of hops plus one window (~0.37 s of audio); fewer frames of
# a 128 ms window hold too few independent values to tell recordings apart.
MIN_OVERLAP_SECONDS = 0.25
MIN_OVERLAP_FRAMES = int(np.ceil(MIN_OVERLAP_SECONDS * SAMPLE_RATE_FP / HOP))  # 16 frames
DURATION_RATIO = 2.0  # trims up to ~30% of the longer clip leave ratios far inside [1/2, 2]
# Pruning cosine between descriptors standardized over the corpus (each dimension to zero mean and
# unit spread, so what all clips share does not count). Loose: it only prunes, the lagged
# correlation decides. True copies in the tests stay >= ~0.8; most distinct sound types fall below.
DESCRIPTOR_MIN_COS = 0.5
TOP_LAGS = 4  # find_copies computes the exact correlation at this many best lags of a cheaper score
PRUNE_MIN_PRINTS = 64  # below this many prints every duration-compatible pair is correlated exactly
_EPS = 1e-12
# The loudness envelope is one extra channel, scaled to ENV_WEIGHT of the spectral-shape energy:
# without it two tones with the same sweep but different envelopes look alike; with too much, two
# different noises with the same envelope do (0.25..1 tried; 0.5 keeps both apart).
ENV_WEIGHT = 0.5


@dataclass(frozen=True)
class Fingerprint:
    sha1: str  # hex sha1 of the file's bytes
    seconds: float  # duration of the decoded audio
    # Arrays are left out of == and hash (numpy would make them ambiguous); sha1 + seconds decide.
    frames: np.ndarray = field(compare=False, repr=False)  # (T, N_BANDS) float16, see module doc
    # (2 * N_BANDS,) float32 summary for cheap pruning (zeros if silent); None for prints built by
    # hand, then find_copies prunes with the half it can recompute from the frames.
    descriptor: np.ndarray | None = field(default=None, compare=False, repr=False)


def _mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_inv(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def _mel_bank() -> np.ndarray:
    """(N_FFT // 2 + 1, N_BANDS) triangular mel filters."""
    edges = _mel_inv(np.linspace(_mel(F_MIN), _mel(F_MAX), N_BANDS + 2))  # (N_BANDS + 2,) Hz
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE_FP)  # (F,)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (N_BANDS, 1) each
    tri = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))  # (N_BANDS, F)
    return (tri / tri.sum(axis=1, keepdims=True)).T.astype(np.float32)


_BANK = _mel_bank()
_TREND = np.vander(np.linspace(-1.0, 1.0, N_BANDS), 3)  # (N_BANDS, 3) quadratic over band index
_TREND_PINV = np.linalg.pinv(_TREND)  # (3, N_BANDS)
_WINDOW = np.hanning(N_FFT).astype(np.float32)


def _log_bands(audio8k: np.ndarray) -> np.ndarray:
    """(S,) float32 at 8 kHz -> (T, N_BANDS) float64 log band energies (natural log), floored softly."""
    # Only whole windows: zero-padded edge frames would differ between a clip and its trimmed copy.
    if len(audio8k) < N_FFT:  # except tiny clips, which get one padded frame (too few to match)
        audio8k = np.pad(audio8k, (0, N_FFT - len(audio8k)))
    n = 1 + (len(audio8k) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]  # (T, N_FFT)
    spec = np.fft.rfft(audio8k[idx] * _WINDOW, axis=1)  # (T, F)
    energy = (spec.real ** 2 + spec.imag ** 2).astype(np.float32) @ _BANK  # (T, N_BANDS)
    energy = energy.astype(np.float64)
    # Per band relative to that band's mean, so the floor moves with gain and EQ alike (a floor shared
    # by all bands made EQ push weak bands under it); plus a low shared floor, so that bands far under
    # the others (where re-encoding noise rules) stay flat.
    floor = energy.mean(axis=0) * 10.0 ** (FLOOR_DB / 10.0) + energy.mean() * 10.0 ** (GLOBAL_FLOOR_DB / 10.0)
    floor = floor + _EPS  # (N_BANDS,)
    return np.log(energy + floor)


def fingerprint(data: bytes, audio: np.ndarray, sample_rate: int) -> Fingerprint:
    """data: the encoded file's bytes (for the exact-copy hash); audio: (samples,) float32 mono
    at sample_rate Hz (the caller decodes). Returns the fingerprint."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    seconds = len(audio) / float(sample_rate)
    if len(audio):
        audio = resample(audio, sample_rate, SAMPLE_RATE_FP)
    sha1 = hashlib.sha1(data).hexdigest()
    if not len(audio) or not np.any(np.abs(audio) > 0):  # silent: no waveform identity at all
        frames = np.zeros((max(1, 1 + (len(audio) - N_FFT) // HOP), N_BANDS + 1), np.float16)
        return Fingerprint(sha1, seconds, frames, np.zeros(2 * N_BANDS, np.float32))
    logs = _log_bands(audio)  # (T, N_BANDS)
    shape = logs - logs.mean(axis=1, keepdims=True)  # (T, N_BANDS) spectral shape per frame, gain/envelope gone
    # Descriptor for pruning: the average spectral shape with its smooth trend (what first-order EQ
    # and shelves change) fitted away, and how much each band moves. Gain-invariant; trims move it a little.
    mean_shape = shape.mean(axis=0)  # (N_BANDS,)
    mean_shape = mean_shape - _TREND @ (_TREND_PINV @ mean_shape)
    desc = np.concatenate([mean_shape, shape.std(axis=0)])  # (2 * N_BANDS,)
    loud = logs.mean(axis=1, keepdims=True)  # (T, 1) loudness envelope (log)
    frames = shape - shape.mean(axis=0, keepdims=True)  # (T, N_BANDS)
    loud = loud - loud.mean()
    w = np.sqrt(ENV_WEIGHT * (frames ** 2).sum() / max((loud ** 2).sum(), _EPS))
    frames = np.concatenate([frames, w * loud], axis=1)
    return Fingerprint(sha1, seconds, frames.astype(np.float16), desc.astype(np.float32))


def lagged_correlation(a: np.ndarray, b: np.ndarray, min_overlap: int | None = None) -> float:
    """Best Pearson correlation of frame sequences a (Ta, B) and b (Tb, B) over all lags with an
    overlap of at least half the shorter one and MIN_OVERLAP_FRAMES. Band means are removed inside
    each overlap window (trims change them); the correlation pools all bands. -1 if no lag fits."""
    import scipy.fft

    ta, tb = len(a), len(b)
    need = max(MIN_OVERLAP_FRAMES, int(np.ceil(0.5 * min(ta, tb)))) if min_overlap is None else min_overlap
    if min(ta, tb) < need:
        return -1.0
    # Lag d pairs a[t] with b[t - d]; only lags with an overlap of >= need frames, d in [lo, hi].
    d = np.arange(need - tb, ta - need + 1)  # (L,)
    a0, a1 = np.maximum(0, d), np.minimum(ta, tb + d)  # (L,) overlap window in a
    b0, b1 = a0 - d, a1 - d  # (L,) the same window in b
    n = (a1 - a0).astype(np.float64)  # (L,) overlap length
    # Cross sums over all lags at once via FFT: xc[d] = sum_t sum_band a[t] b[t - d]. float32 and
    # scipy.fft on contiguous (B, T) rows: ~4x faster than numpy's float64 rfft along axis 0.
    size = scipy.fft.next_fast_len(ta + tb - 1, real=True)
    at = np.ascontiguousarray(a.T, dtype=np.float32)  # (B, Ta)
    bt = np.ascontiguousarray(b.T, dtype=np.float32)  # (B, Tb)
    fa = scipy.fft.rfft(at, size, axis=1)  # (B, size//2+1)
    fb = scipy.fft.rfft(bt, size, axis=1)
    xc = scipy.fft.irfft(np.einsum("bf,bf->f", fa, np.conj(fb)), size)  # (size,) circular: d<0 wraps
    s_ab = xc[d % size].astype(np.float64)  # (L,)
    a64, b64 = at.T.astype(np.float64), bt.T.astype(np.float64)  # (T, B) for exact running sums
    ca = np.zeros((ta + 1, a64.shape[1]))
    np.cumsum(a64, axis=0, out=ca[1:])  # (Ta+1, B)
    cb = np.zeros((tb + 1, b64.shape[1]))
    np.cumsum(b64, axis=0, out=cb[1:])
    qa = np.concatenate([[0.0], np.cumsum(np.einsum("tb,tb->t", a64, a64))])  # (Ta+1,) band-summed squares
    qb = np.concatenate([[0.0], np.cumsum(np.einsum("tb,tb->t", b64, b64))])
    s_a = ca[a1] - ca[a0]  # (L, B) window sums per band
    s_b = cb[b1] - cb[b0]
    num = s_ab - np.einsum("lb,lb->l", s_a, s_b) / n  # (L,) centred cross products
    va = qa[a1] - qa[a0] - np.einsum("lb,lb->l", s_a, s_a) / n  # (L,) centred energies
    vb = qb[b1] - qb[b0] - np.einsum("lb,lb->l", s_b, s_b) / n
    # A window that is (nearly) constant carries no identity: leave it out instead of dividing by ~0.
    tiny = 1e-6 * n * a.shape[1]
    ok = (va > tiny) & (vb > tiny)
    if not ok.any():
        return -1.0
    return float(np.max(num[ok] / np.sqrt(va[ok] * vb[ok])))


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def find_copies(prints: list[Fingerprint], min_corr: float = 0.9) -> list[tuple[int, int, str]]:
    """(copy, original, how) for every print that repeats an earlier one: `original` is the
    lowest index of its group, `how` is "bytes" (same sha1) or "waveform" (correlated). Every
    index appears at most once as a copy; originals are never copies.

    Groups are the connected components of "same bytes or correlation >= min_corr" (union-find):
    if B copies A and C copies B, all three are one group even when A and C share too little to
    correlate themselves (say, trimmed at opposite ends); that is what keeps a recording on one
    side of a split. `how` is "bytes" when the copy's sha1 equals its original's, else "waveform".
    Silent prints and prints shorter than MIN_OVERLAP_FRAMES match by bytes only.
    """
    n = len(prints)
    parent = list(range(n))

    def union(i, j):
        ri, rj = _find(parent, i), _find(parent, j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)  # the root stays the lowest index

    first_of_sha = {}
    reps = []  # the first print of each distinct sha1: byte copies share its frames, so only reps are correlated
    for i, p in enumerate(prints):
        if p.sha1 in first_of_sha:
            union(i, first_of_sha[p.sha1])
        else:
            first_of_sha[p.sha1] = i
            reps.append(i)

    usable = [i for i in reps if len(prints[i].frames) >= MIN_OVERLAP_FRAMES and np.any(prints[i].frames)]
    if len(usable) > 1:
        frames = [prints[i].frames for i in usable]
        secs = np.array([prints[i].seconds for i in usable], dtype=np.float64)  # (U,)
        desc = _descriptors([prints[i] for i in usable]) if len(usable) >= PRUNE_MIN_PRINTS else None
        for q, cands in _candidates(secs, desc):
            root = _find(parent, usable[q])
            # Pairs already in one group need no correlation: copies found earlier save work.
            cands = [c for c in cands if _find(parent, usable[c]) != root]
            if not cands:
                continue
            corr = _correlate_many(frames[q], [frames[c] for c in cands])  # (K,)
            for c in np.asarray(cands)[corr >= min_corr]:
                union(usable[q], usable[int(c)])

    out = []
    for i in range(n):
        root = _find(parent, i)
        if root != i:
            out.append((i, root, "bytes" if prints[i].sha1 == prints[root].sha1 else "waveform"))
    return out


def _descriptors(prints: list[Fingerprint]) -> np.ndarray:
    """(U, D) float32 unit rows, each dimension standardized over these prints first. If any print
    lacks the stored descriptor, all use the half the frames still hold (band std)."""
    if all(p.descriptor is not None for p in prints):
        raw = np.stack([p.descriptor for p in prints]).astype(np.float64)  # (U, 2 * N_BANDS)
    else:
        raw = np.stack([p.frames[:, :N_BANDS].astype(np.float64).std(axis=0) for p in prints])  # (U, N_BANDS)
    z = (raw - raw.mean(axis=0)) / (raw.std(axis=0) + 1e-6)
    return (z / (np.linalg.norm(z, axis=1, keepdims=True) + _EPS)).astype(np.float32)


def _candidates(secs: np.ndarray, desc: np.ndarray | None, block: int = 512):
    """Yield (q, [c, ...]) local indices: every pair whose duration ratio is within DURATION_RATIO and
    (when desc is given) whose descriptor cosine is >= DESCRIPTOR_MIN_COS, once. secs: (U,);
    desc: (U, D) unit rows or None. Rows sorted by duration, one matrix product per block of rows."""
    u = len(secs)
    order = np.argsort(secs, kind="stable")  # sorted by duration: each row only sees a window after it
    s_sorted = secs[order]
    d_sorted = None if desc is None else desc[order]
    for start in range(0, u, block):
        stop = min(u, start + block)
        hi = int(np.searchsorted(s_sorted, s_sorted[stop - 1] * DURATION_RATIO, side="right"))
        ratio = s_sorted[None, start:hi] / np.maximum(s_sorted[start:stop, None], _EPS)  # (rows, cols)
        ok = (ratio <= DURATION_RATIO) & (np.arange(start, hi)[None, :] > np.arange(start, stop)[:, None])
        if d_sorted is not None:
            ok &= d_sorted[start:stop] @ d_sorted[start:hi].T >= DESCRIPTOR_MIN_COS  # (rows, cols)
        for r in range(stop - start):
            cols = np.nonzero(ok[r])[0]
            if len(cols):
                yield int(order[start + r]), [int(c) for c in order[start + cols]]


def _correlate_many(a: np.ndarray, bs: list[np.ndarray], max_cells: int = 2_000_000) -> np.ndarray:
    """lagged_correlation(a, b) for every b in bs, batched: a's FFT is taken once and the numpy calls
    are shared (one pair at a time is ~0.1 ms of call overhead). a: (Ta, B); bs: K arrays (Tb, B).
    Returns (K,) float64. Candidates are split into chunks of <= max_cells (lag, band) cells.
    The band means per window are removed only at the TOP_LAGS best lags of a cheaper cosine, so
    this can only be <= lagged_correlation (equal at a copy's sharp peak)."""
    out = np.full(len(bs), -1.0)
    order = np.argsort([len(b) for b in bs], kind="stable")  # similar lengths share a chunk: less padding
    ta, nb = len(a), a.shape[1]
    at = np.ascontiguousarray(a.T, dtype=np.float32)  # (B, Ta)
    a64 = a.astype(np.float64)  # (Ta, B)
    ca = np.zeros((ta + 1, nb))
    np.cumsum(a64, axis=0, out=ca[1:])  # (Ta+1, B) running band sums
    qa = np.concatenate([[0.0], np.cumsum(np.einsum("tb,tb->t", a64, a64))])  # (Ta+1,)
    fa_cache = {}
    pos = 0
    while pos < len(order):
        tmax = len(bs[order[pos]])
        k = 1
        while pos + k < len(order):  # grow the chunk while the padded cell count stays bounded
            t_next = len(bs[order[pos + k]])
            if (k + 1) * (ta + t_next) * nb > max_cells:
                break
            tmax, k = t_next, k + 1
        idx = order[pos:pos + k]
        pos += k
        out[idx] = _correlate_chunk(a, at, ca, qa, [bs[i] for i in idx], tmax, fa_cache)
    return out


def _correlate_chunk(a, at, ca, qa, bs, tmax, fa_cache):
    """One chunk of _correlate_many: a (Ta, B), at (B, Ta) float32, ca (Ta+1, B) / qa (Ta+1,)
    running sums of a; bs: K arrays (Tb <= tmax, B). Returns (K,) best correlations (-1: none)."""
    import scipy.fft

    ta, nb, kk = len(a), a.shape[1], len(bs)
    tbs = np.array([len(b) for b in bs])  # (K,)
    need = np.maximum(MIN_OVERLAP_FRAMES, np.ceil(0.5 * np.minimum(ta, tbs)).astype(int))  # (K,)
    size = scipy.fft.next_fast_len(ta + tmax - 1, real=True)
    if size not in fa_cache:
        fa_cache[size] = scipy.fft.rfft(at, size, axis=1)  # (B, F)
    fa = fa_cache[size]
    bpad = np.zeros((kk, nb, tmax), np.float32)  # (K, B, Tmax) zero-padded, transposed
    cb = np.zeros((kk, tmax + 1, nb))  # (K, Tmax+1, B) running band sums
    qb = np.zeros((kk, tmax + 1))  # (K, Tmax+1) running band-summed squares
    for i, b in enumerate(bs):
        b64 = b.astype(np.float64)
        bpad[i, :, :len(b)] = b64.T
        np.cumsum(b64, axis=0, out=cb[i, 1:len(b) + 1])
        cb[i, len(b) + 1:] = cb[i, len(b)]
        np.cumsum(np.einsum("tb,tb->t", b64, b64), out=qb[i, 1:len(b) + 1])
        qb[i, len(b) + 1:] = qb[i, len(b)]
    fb = scipy.fft.rfft(bpad, size, axis=2)  # (K, B, F)
    xc = scipy.fft.irfft(np.einsum("bf,kbf->kf", fa, np.conj(fb)), size, axis=1).astype(np.float64)  # (K, size)
    # Lag d pairs a[t] with b[t - d]; d in [-(Tmax-1), Ta-1], invalid (k, d) masked below.
    d = np.arange(-(tmax - 1), ta)  # (L,)
    s_ab = xc[:, d % size]  # (K, L)
    a0 = np.broadcast_to(np.maximum(0, d), (kk, len(d)))  # (K, L) overlap window in a
    a1 = np.maximum(np.minimum(ta, tbs[:, None] + d[None, :]), a0)  # (K, L)
    n = a1 - a0  # (K, L) overlap length
    b0, b1 = a0 - d, a1 - d  # (K, L) the window in b (empty where n == 0)
    b0, b1 = np.clip(b0, 0, tmax), np.clip(b1, 0, tmax)
    rows = np.arange(kk)[:, None]
    # Pass 1, every lag: cosine of the windows (band means not removed), from 1-D running sums only.
    # Removing the band means per window costs a (lag, band) gather per candidate, 10x this.
    va = qa[a1] - qa[a0]  # (K, L)
    vb = qb[rows, b1] - qb[rows, b0]
    valid = (n >= need[:, None]) & (va > 0) & (vb > 0)
    cos = np.where(valid, s_ab / np.sqrt(np.where(valid, va * vb, 1.0)), -np.inf)  # (K, L)
    # Pass 2, the TOP_LAGS best lags of pass 1: the exact correlation with band means removed. A copy's
    # true lag is a sharp peak in both; elsewhere only a too-low value can result, never a false match.
    m = min(TOP_LAGS, len(d))
    top = np.argpartition(-cos, m - 1, axis=1)[:, :m]  # (K, M) lag positions
    ok = np.take_along_axis(valid, top, axis=1)  # (K, M)
    ta0, ta1 = np.take_along_axis(a0, top, 1), np.take_along_axis(a1, top, 1)  # (K, M)
    tb0, tb1 = np.take_along_axis(b0, top, 1), np.take_along_axis(b1, top, 1)
    nf = np.maximum(ta1 - ta0, 1).astype(np.float64)  # (K, M)
    s_a = ca[ta1] - ca[ta0]  # (K, M, B) window band sums
    s_b = cb[rows, tb1] - cb[rows, tb0]
    num = np.take_along_axis(s_ab, top, 1) - np.einsum("kmb,kmb->km", s_a, s_b) / nf  # (K, M)
    ua = np.take_along_axis(va, top, 1) - np.einsum("kmb,kmb->km", s_a, s_a) / nf  # (K, M) centred energies
    ub = np.take_along_axis(vb, top, 1) - np.einsum("kmb,kmb->km", s_b, s_b) / nf
    # A window that is (nearly) constant carries no identity: leave it out instead of dividing by ~0.
    tiny = 1e-6 * nf * nb
    ok &= (ua > tiny) & (ub > tiny)
    corr = np.where(ok, num / np.sqrt(np.where(ok, ua * ub, 1.0)), -1.0)  # (K, M)
    return corr.max(axis=1)
