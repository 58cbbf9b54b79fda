#include "frontend/log_mel.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>

#include "frontend/decibel.h"
#include "frontend/window.h"

namespace clap_rt {

namespace {
const FrontendOptions &Validated(const FrontendOptions &opts) {
  opts.Validate();
  return opts;
}
}  // namespace

LogMel::Workspace::Workspace(const LogMel &log_mel)
    : fft(log_mel.opts_.n_fft), power(log_mel.opts_.NumBins()), mel(log_mel.opts_.n_mels), db(log_mel.opts_.n_mels) {}

LogMel::LogMel(const FrontendOptions &opts)
    : opts_(Validated(opts)),
      window_(PeriodicHannWindow(opts.win_length, opts.n_fft)),
      filterbank_(opts),
      fft_(opts.n_fft) {}

int64_t LogMel::NumFrames(int64_t n) const {
  if (opts_.center) return 1 + n / opts_.hop_length;
  return n < opts_.n_fft ? 0 : 1 + (n - opts_.n_fft) / opts_.hop_length;
}

int64_t LogMel::MinSamples() const { return opts_.center ? opts_.n_fft / 2 + 1 : 1; }

void LogMel::ComputeFrame(const float *buf, int64_t buf_start, int64_t signal_len, int64_t start, float *out,
                          int64_t stride, Workspace *ws) const {
  const int n_fft = opts_.n_fft;
  double *__restrict in = ws->fft.in;
  const double *__restrict window = window_.data();
  if (start >= 0 && start + n_fft <= signal_len) {  // interior frame: no reflection
    const float *__restrict x = buf + (start - buf_start);
    for (int i = 0; i < n_fft; ++i) in[i] = window[i] * x[i];
  } else {
    for (int i = 0; i < n_fft; ++i) {
      int64_t k = start + i;
      if (k < 0) k = -k;                                    // x[-k] = x[k]
      if (k >= signal_len) k = 2 * (signal_len - 1) - k;  // x[n-1+j] = x[n-1-j]
      in[i] = window[i] * buf[k - buf_start];
    }
  }
  fft_.Forward(&ws->fft);

  const int n_bins = opts_.NumBins();
  const std::complex<double> *spec = ws->fft.out;
  double *power = ws->power.data();
  for (int b = 0; b < n_bins; ++b) power[b] = spec[b].real() * spec[b].real() + spec[b].imag() * spec[b].imag();
  if (opts_.power != 2.0) {
    const double exponent = opts_.power / 2.0;
    for (int b = 0; b < n_bins; ++b) power[b] = std::pow(power[b], exponent);
  }
  filterbank_.Apply(power, ws->mel.data());
  PowerToDb(ws->mel.data(), opts_.n_mels, static_cast<float>(opts_.amin), ws->db.data());
  for (int m = 0; m < opts_.n_mels; ++m) out[m * stride] = ws->db[m];
}

void LogMel::ComputeRange(const float *audio, int64_t n, int64_t frames, int64_t first, int64_t last,
                          float *out) const {
  Workspace ws(*this);
  const int64_t pad = opts_.center ? opts_.n_fft / 2 : 0;
  for (int64_t i = first; i < last; ++i) {
    const int64_t clip = i / frames, t = i % frames;
    ComputeFrame(audio + clip * n, 0, n, t * opts_.hop_length - pad, out + clip * opts_.n_mels * frames + t,
                 frames, &ws);
  }
}

void LogMel::ClampTopDb(float *db, int64_t count) const {
  if (opts_.top_db < 0.0 || count == 0) return;
  const float floor = *std::max_element(db, db + count) - static_cast<float>(opts_.top_db);
  for (int64_t i = 0; i < count; ++i) db[i] = std::max(db[i], floor);
}

void LogMel::Compute(const float *audio, int64_t n, float *out, int threads) const {
  ComputeBatch(audio, 1, n, out, threads);
}

void LogMel::ComputeBatch(const float *audio, int64_t batch, int64_t n, float *out, int threads) const {
  if (n < MinSamples()) {
    throw std::invalid_argument("audio: expected at least " + std::to_string(MinSamples()) +
                                " samples for centred reflect padding (n_fft=" + std::to_string(opts_.n_fft) +
                                "), got " + std::to_string(n));
  }
  const int64_t frames = NumFrames(n);
  const int64_t total = batch * frames;
  // Split all frames of all clips into contiguous, equal runs: clips of any count balance.
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(threads, total));
  if (workers == 1) {
    ComputeRange(audio, n, frames, 0, total, out);
  } else {
    std::vector<std::thread> pool;
    for (int64_t w = 0; w < workers; ++w) {
      pool.emplace_back(&LogMel::ComputeRange, this, audio, n, frames, total * w / workers,
                        total * (w + 1) / workers, out);
    }
    for (std::thread &t : pool) t.join();
  }
  for (int64_t clip = 0; clip < batch; ++clip) ClampTopDb(out + clip * opts_.n_mels * frames, opts_.n_mels * frames);
}

}  // namespace clap_rt
