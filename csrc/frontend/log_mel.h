// Offline log-mel: (n,) samples -> (n_mels, T) dB, and a batched, multi-threaded entry.
#ifndef CLAP_RT_FRONTEND_LOG_MEL_H_
#define CLAP_RT_FRONTEND_LOG_MEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "frontend/mel_filterbank.h"
#include "frontend/options.h"
#include "frontend/real_fft.h"

namespace clap_rt {

class LogMel {
 public:
  // Validates opts; builds the window, the filterbank and the FFT plan once.
  explicit LogMel(const FrontendOptions &opts);

  const FrontendOptions &Options() const { return opts_; }
  const MelFilterbank &Filterbank() const { return filterbank_; }
  // Frames for n samples: 1 + n/hop if centred, else max(0, 1 + (n - n_fft)/hop).
  int64_t NumFrames(int64_t n) const;
  // Shortest accepted signal: n_fft/2 + 1 if centred (single reflection), else 1.
  int64_t MinSamples() const;

  // audio: n samples; out: n_mels * NumFrames(n) floats, row-major (n_mels, T). Applies top_db.
  void Compute(const float *audio, int64_t n, float *out, int threads) const;
  // audio: batch * n samples (row-major); out: (batch, n_mels, T). top_db per clip.
  void ComputeBatch(const float *audio, int64_t batch, int64_t n, float *out, int threads) const;

  // Scratch for one thread.
  struct Workspace {
    explicit Workspace(const LogMel &log_mel);
    RealFft::Buffers fft;
    std::vector<double> power;  // n_fft/2 + 1
    std::vector<double> mel;    // n_mels
    std::vector<float> db;      // n_mels
  };

  // One frame starting at raw sample index `start` (may be negative: reflected about x[0]).
  // buf holds raw samples [buf_start, ...); indices >= signal_len are reflected about
  // x[signal_len - 1] (pass INT64_MAX while the end is unknown). Writes n_mels dB values
  // to out[0], out[stride], ... (no top_db).
  void ComputeFrame(const float *buf, int64_t buf_start, int64_t signal_len, int64_t start, float *out,
                    int64_t stride, Workspace *ws) const;

 private:
  void ComputeRange(const float *audio, int64_t n, int64_t frames, int64_t first, int64_t last,
                    float *out) const;  // linear frame indices over the batch [first, last)
  void ClampTopDb(float *db, int64_t count) const;

  FrontendOptions opts_;
  std::vector<double> window_;
  MelFilterbank filterbank_;
  RealFft fft_;
};

}  // namespace clap_rt

#endif  // CLAP_RT_FRONTEND_LOG_MEL_H_
