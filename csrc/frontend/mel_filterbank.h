// Triangular mel filterbank (Slaney or HTK scale, optional Slaney area norm), as librosa builds it.
#ifndef CLAP_RT_FRONTEND_MEL_FILTERBANK_H_
#define CLAP_RT_FRONTEND_MEL_FILTERBANK_H_

#include <vector>

#include "frontend/options.h"

namespace clap_rt {

class MelFilterbank {
 public:
  // Built for opts.filterbank_rate with opts.NumBins() FFT bins.
  explicit MelFilterbank(const FrontendOptions &opts);

  // mel[m] = sum_b W[m, b] * power[b]; power has n_fft/2+1 values, mel has n_mels.
  void Apply(const double *power, double *mel) const;
  // Dense (n_mels, n_bins) row-major copy, for tests.
  std::vector<double> Dense(int n_bins) const;

 private:
  // Each triangle is stored by its non-zero span only (a few bins), all spans back to back in
  // weights_: Apply is O(n_bins), not O(n_mels * n_bins). Triangle m covers bins
  // [first_bin_[m], first_bin_[m] + length) with length = offset_[m + 1] - offset_[m].
  std::vector<int> first_bin_;
  std::vector<int> offset_;  // n_mels + 1
  std::vector<double> weights_;
};

}  // namespace clap_rt

#endif  // CLAP_RT_FRONTEND_MEL_FILTERBANK_H_
