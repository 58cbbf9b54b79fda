#include "frontend/mel_filterbank.h"

#include <algorithm>
#include <cmath>

namespace clap_rt {

namespace {
// Slaney scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4).
constexpr double kSlaneyHzPerMel = 200.0 / 3.0;
constexpr double kSlaneyMinLogHz = 1000.0;
constexpr double kSlaneyMinLogMel = kSlaneyMinLogHz / kSlaneyHzPerMel;
const double kSlaneyLogStep = std::log(6.4) / 27.0;

double HzToMel(double hz, bool htk) {
  if (htk) return 2595.0 * std::log10(1.0 + hz / 700.0);
  if (hz >= kSlaneyMinLogHz) return kSlaneyMinLogMel + std::log(hz / kSlaneyMinLogHz) / kSlaneyLogStep;
  return hz / kSlaneyHzPerMel;
}

double MelToHz(double mel, bool htk) {
  if (htk) return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
  if (mel >= kSlaneyMinLogMel) return kSlaneyMinLogHz * std::exp(kSlaneyLogStep * (mel - kSlaneyMinLogMel));
  return kSlaneyHzPerMel * mel;
}
}  // namespace

MelFilterbank::MelFilterbank(const FrontendOptions &opts) {
  const int n_bins = opts.NumBins();
  const int n_mels = opts.n_mels;
  const double mel_lo = HzToMel(opts.fmin, opts.htk);
  const double mel_hi = HzToMel(opts.fmax, opts.htk);
  std::vector<double> edges(n_mels + 2);  // Hz, n_mels + 2 points evenly spaced in mel
  for (int i = 0; i < n_mels + 2; ++i) {
    edges[i] = MelToHz(mel_lo + (mel_hi - mel_lo) * i / (n_mels + 1), opts.htk);
  }
  const double bin_hz = static_cast<double>(opts.filterbank_rate) / opts.n_fft;
  first_bin_.assign(n_mels, 0);
  offset_.assign(1, 0);
  for (int m = 0; m < n_mels; ++m) {
    const double lo = edges[m], mid = edges[m + 1], hi = edges[m + 2];
    const double norm = opts.slaney_norm ? 2.0 / (hi - lo) : 1.0;
    std::vector<double> row(n_bins);
    int first = n_bins, last = -1;
    for (int b = 0; b < n_bins; ++b) {
      const double f = b * bin_hz;
      const double w = std::max(0.0, std::min((f - lo) / (mid - lo), (hi - f) / (hi - mid)));
      row[b] = w * norm;
      if (w > 0.0) {
        first = std::min(first, b);
        last = b;
      }
    }
    if (last >= first) {
      first_bin_[m] = first;
      weights_.insert(weights_.end(), row.begin() + first, row.begin() + last + 1);
    }
    offset_.push_back(static_cast<int>(weights_.size()));
  }
}

void MelFilterbank::Apply(const double *power, double *mel) const {
  const double *w = weights_.data();
  for (size_t m = 0; m < first_bin_.size(); ++m) {
    const double *p = power + first_bin_[m];
    const int length = offset_[m + 1] - offset_[m];
    // Four partial sums: one running sum is a chain of dependent adds, 4x slower here.
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    int i = 0;
    for (; i + 4 <= length; i += 4) {
      for (int k = 0; k < 4; ++k) acc[k] += w[i + k] * p[i + k];
    }
    for (; i < length; ++i) acc[0] += w[i] * p[i];
    mel[m] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    w += length;
  }
}

std::vector<double> MelFilterbank::Dense(int n_bins) const {
  std::vector<double> dense(first_bin_.size() * n_bins, 0.0);
  for (size_t m = 0; m < first_bin_.size(); ++m) {
    std::copy(weights_.begin() + offset_[m], weights_.begin() + offset_[m + 1],
              dense.begin() + m * n_bins + first_bin_[m]);
  }
  return dense;
}

}  // namespace clap_rt
