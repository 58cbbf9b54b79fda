// Analysis window: periodic Hann of win_length, zero-padded (centred) to n_fft.
#ifndef CLAP_RT_FRONTEND_WINDOW_H_
#define CLAP_RT_FRONTEND_WINDOW_H_

#include <vector>

namespace clap_rt {

// Returns n_fft values; w[left + i] = 0.5 - 0.5*cos(2*pi*i/win_length), left = (n_fft - win_length)/2.
std::vector<double> PeriodicHannWindow(int win_length, int n_fft);

}  // namespace clap_rt

#endif  // CLAP_RT_FRONTEND_WINDOW_H_
