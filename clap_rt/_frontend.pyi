"""Type stub of the C++ extension clap_rt._frontend (csrc/python/). Use clap_rt.frontend instead."""
import numpy as np
import numpy.typing as npt

class FrontendOptions:
    """Filled from clap_rt.config.FrontendConfig by clap_rt.frontend._cpp_options."""
    sample_rate: int
    filterbank_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int
    fmin: float
    fmax: float
    htk: bool
    slaney_norm: bool
    power: float
    amin: float
    top_db: float  # < 0: no clamp
    center: bool
    def __init__(self) -> None: ...
    def validate(self) -> None: ...

class LogMel:
    def __init__(self, options: FrontendOptions) -> None: ...
    @property
    def options(self) -> FrontendOptions: ...
    def num_frames(self, n_samples: int) -> int: ...
    def mel_filterbank(self) -> npt.NDArray[np.float64]:
        """(n_mels, n_fft//2+1) weights."""
    def compute(self, audio: npt.NDArray[np.float32], threads: int = 1) -> npt.NDArray[np.float32]:
        """(n,) -> (n_mels, T) or (B, n) -> (B, n_mels, T) dB; releases the GIL."""

class OnlineLogMel:
    def __init__(self, options: FrontendOptions) -> None: ...
    def accept_waveform(self, samples: npt.NDArray[np.float32]) -> None: ...
    def input_finished(self) -> None: ...
    @property
    def num_frames_ready(self) -> int: ...
    @property
    def num_samples_accepted(self) -> int: ...
    @property
    def is_finished(self) -> bool: ...
    def pop_frames(self, n: int) -> npt.NDArray[np.float32]:
        """Oldest n ready frames, (n_mels, n) dB."""
    def reset(self) -> None: ...
    @property
    def options(self) -> FrontendOptions: ...
