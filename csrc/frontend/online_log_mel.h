// Streaming log-mel: accept samples in chunks of any size, pop frames as they become ready.
// The frames equal LogMel::Compute of the whole signal: the left reflect padding is built
// from the first samples, and input finished reflects the right edge. top_db is refused
// (its clamp depends on the whole clip's maximum, so it cannot be applied frame by frame).
#ifndef CLAP_RT_FRONTEND_ONLINE_LOG_MEL_H_
#define CLAP_RT_FRONTEND_ONLINE_LOG_MEL_H_

#include <cstdint>
#include <vector>

#include "frontend/log_mel.h"

namespace clap_rt {

class OnlineLogMel {
 public:
  explicit OnlineLogMel(const FrontendOptions &opts);

  // Appends n samples and computes every frame that became ready. Throws std::logic_error
  // after InputFinished() until Reset().
  void AcceptWaveform(const float *samples, int64_t n);
  // Flushes the frames that reach past the end. Throws std::invalid_argument if fewer than
  // MinSamples() samples were accepted (centred reflect padding needs them).
  void InputFinished();
  bool IsFinished() const { return finished_; }
  int64_t NumFramesReady() const;
  int64_t NumSamplesAccepted() const { return received_; }
  // Moves the oldest n ready frames to out as (n_mels, n) row-major. Requires n <= NumFramesReady().
  void PopFrames(int64_t n, float *out);
  void Reset();

  const FrontendOptions &Options() const { return log_mel_.Options(); }

 private:
  int64_t FramesAvailable() const;  // frames computable from what was received so far
  void ComputeReady();

  LogMel log_mel_;
  LogMel::Workspace ws_;
  int64_t pad_;
  std::vector<float> buf_;   // raw samples [buf_start_, received_)
  int64_t buf_start_ = 0;
  int64_t received_ = 0;
  bool finished_ = false;
  int64_t next_frame_ = 0;   // next frame index to compute
  std::vector<float> ready_; // computed frames, frame-major (k, n_mels)
  int64_t ready_head_ = 0;   // frames of ready_ already popped
};

}  // namespace clap_rt

#endif  // CLAP_RT_FRONTEND_ONLINE_LOG_MEL_H_
