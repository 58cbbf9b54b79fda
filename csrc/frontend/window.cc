#include "frontend/window.h"

#include <cmath>

namespace clap_rt {

std::vector<double> PeriodicHannWindow(int win_length, int n_fft) {
  std::vector<double> window(n_fft, 0.0);
  const int left = (n_fft - win_length) / 2;
  for (int i = 0; i < win_length; ++i) {
    window[left + i] = 0.5 - 0.5 * std::cos(2.0 * M_PI * i / win_length);
  }
  return window;
}

}  // namespace clap_rt
