#include "frontend/online_log_mel.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

namespace clap_rt {

namespace {
const FrontendOptions &Streamable(const FrontendOptions &opts) {
  if (opts.top_db >= 0.0) {
    throw std::invalid_argument(
        "FrontendOptions.top_db: expected < 0 (no clamp) for streaming; the clamp is relative to the whole "
        "clip's maximum");
  }
  return opts;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
}  // namespace

OnlineLogMel::OnlineLogMel(const FrontendOptions &opts)
    : log_mel_(Streamable(opts)), ws_(log_mel_), pad_(opts.center ? opts.n_fft / 2 : 0) {}

void OnlineLogMel::Reset() {
  buf_.clear();
  buf_start_ = 0;
  received_ = 0;
  finished_ = false;
  next_frame_ = 0;
  ready_.clear();
  ready_head_ = 0;
}

int64_t OnlineLogMel::FramesAvailable() const {
  if (finished_) return log_mel_.NumFrames(received_);
  // Frame t reads raw samples [t*hop - pad, t*hop - pad + n_fft); the first frames also
  // read the reflected x[1..pad], hence received_ > pad.
  if (pad_ > 0 && received_ <= pad_) return 0;
  const FrontendOptions &o = log_mel_.Options();
  return std::max<int64_t>(0, FloorDiv(received_ - o.n_fft + pad_, o.hop_length) + 1);
}

void OnlineLogMel::ComputeReady() {
  const int64_t stop = FramesAvailable();
  if (stop <= next_frame_) return;
  const FrontendOptions &o = log_mel_.Options();
  const int64_t signal_len = finished_ ? received_ : std::numeric_limits<int64_t>::max();
  // Drop popped frames before growing the queue, so it holds only what the caller has not taken.
  ready_.erase(ready_.begin(), ready_.begin() + ready_head_ * o.n_mels);
  ready_head_ = 0;
  size_t offset = ready_.size();
  ready_.resize(offset + (stop - next_frame_) * o.n_mels);
  for (int64_t t = next_frame_; t < stop; ++t, offset += o.n_mels) {
    log_mel_.ComputeFrame(buf_.data(), buf_start_, signal_len, t * o.hop_length - pad_, ready_.data() + offset,
                          1, &ws_);
  }
  next_frame_ = stop;
  // Keep what later frames may still read; the right-edge reflection reaches up to two
  // samples before a frame's start.
  const int64_t keep_from = std::max<int64_t>(0, next_frame_ * o.hop_length - pad_ - 2);
  if (keep_from > buf_start_) {
    const int64_t drop = std::min<int64_t>(keep_from - buf_start_, static_cast<int64_t>(buf_.size()));
    buf_.erase(buf_.begin(), buf_.begin() + drop);
    buf_start_ += drop;
  }
}

void OnlineLogMel::AcceptWaveform(const float *samples, int64_t n) {
  if (finished_) throw std::logic_error("accept_waveform: input already finished; call reset() to start a new stream");
  buf_.insert(buf_.end(), samples, samples + n);
  received_ += n;
  ComputeReady();
}

void OnlineLogMel::InputFinished() {
  if (finished_) return;
  if (received_ < log_mel_.MinSamples()) {
    throw std::invalid_argument("audio stream: expected at least " + std::to_string(log_mel_.MinSamples()) +
                                " samples for centred reflect padding (n_fft=" +
                                std::to_string(log_mel_.Options().n_fft) + "), got " + std::to_string(received_));
  }
  finished_ = true;
  ComputeReady();
}

int64_t OnlineLogMel::NumFramesReady() const {
  return static_cast<int64_t>(ready_.size()) / log_mel_.Options().n_mels - ready_head_;
}

void OnlineLogMel::PopFrames(int64_t n, float *out) {
  if (n < 0 || n > NumFramesReady()) {
    throw std::invalid_argument("pop_frames: expected 0 <= n <= " + std::to_string(NumFramesReady()) +
                                " (frames ready), got " + std::to_string(n));
  }
  const int n_mels = log_mel_.Options().n_mels;
  const float *src = ready_.data() + ready_head_ * n_mels;
  for (int64_t t = 0; t < n; ++t) {
    for (int m = 0; m < n_mels; ++m) out[m * n + t] = src[t * n_mels + m];
  }
  ready_head_ += n;
}

}  // namespace clap_rt
