// Options of the log-mel frontend. The values come from clap_rt/config.py (FrontendConfig):
// the Python side fills this struct field by field, so the recipe is defined in one place.
// Zero-initialised fields are invalid on purpose: Validate() rejects an unfilled struct.
#ifndef CLAP_RT_FRONTEND_OPTIONS_H_
#define CLAP_RT_FRONTEND_OPTIONS_H_

#include <string>

namespace clap_rt {

struct FrontendOptions {
  int sample_rate = 0;       // Hz, rate of the audio entering the frontend
  int filterbank_rate = 0;   // Hz, rate the mel filterbank is built for (msclap: 32000)
  int n_fft = 0;
  int win_length = 0;        // periodic Hann, zero-padded (centred) to n_fft
  int hop_length = 0;
  int n_mels = 0;
  double fmin = 0.0;         // Hz
  double fmax = 0.0;         // Hz
  bool htk = false;          // mel scale: false = Slaney, true = HTK
  bool slaney_norm = true;   // divide each triangle by its width in Hz
  double power = 2.0;        // |X|^power
  double amin = 0.0;         // dB floor: 10*log10(max(amin, x))
  double top_db = -1.0;      // < 0: no clamp; else max(dB, clip max - top_db), offline only
  bool center = true;        // reflect-pad n_fft/2 on both sides

  int NumBins() const { return n_fft / 2 + 1; }
  // Throws std::invalid_argument naming the first bad field.
  void Validate() const;
  std::string ToString() const;
};

}  // namespace clap_rt

#endif  // CLAP_RT_FRONTEND_OPTIONS_H_
