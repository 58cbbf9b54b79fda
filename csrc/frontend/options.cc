#include "frontend/options.h"

#include <sstream>
#include <stdexcept>
#include <string>

namespace clap_rt {

namespace {
template <typename T>
void Require(bool ok, const char *field, const std::string &expected, T value) {
  if (!ok) {
    std::ostringstream os;
    os << "FrontendOptions." << field << ": expected " << expected << ", got " << value;
    throw std::invalid_argument(os.str());
  }
}

std::string Number(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}
}  // namespace

// The one rule for the recipe's numbers: clap_rt.frontend reports these messages for
// FrontendConfig (same field names) whichever backend then computes.
void FrontendOptions::Validate() const {
  Require(sample_rate > 0, "sample_rate", "> 0", sample_rate);
  Require(filterbank_rate > 0, "filterbank_rate", "> 0", filterbank_rate);
  Require(n_fft >= 2, "n_fft", ">= 2", n_fft);
  Require(win_length >= 1 && win_length <= n_fft, "win_length", "in [1, n_fft=" + std::to_string(n_fft) + "]",
          win_length);
  Require(hop_length >= 1, "hop_length", ">= 1", hop_length);
  Require(n_mels >= 1, "n_mels", ">= 1", n_mels);
  Require(fmin >= 0.0 && fmin < fmax, "fmin", "0 <= fmin < fmax=" + Number(fmax), fmin);
  Require(power > 0.0, "power", "> 0", power);
  // The dB conversion reads float32 exponent bits (decibel.cc): right for normal floats only.
  Require(amin >= 1.2e-38, "amin", ">= 1.2e-38 (a normal float32)", amin);
}

std::string FrontendOptions::ToString() const {
  std::ostringstream os;
  os << "FrontendOptions(sample_rate=" << sample_rate << ", filterbank_rate=" << filterbank_rate
     << ", n_fft=" << n_fft << ", win_length=" << win_length << ", hop_length=" << hop_length
     << ", n_mels=" << n_mels << ", fmin=" << fmin << ", fmax=" << fmax
     << ", htk=" << (htk ? "True" : "False") << ", slaney_norm=" << (slaney_norm ? "True" : "False")
     << ", power=" << power << ", amin=" << amin << ", top_db=" << top_db
     << ", center=" << (center ? "True" : "False") << ")";
  return os.str();
}

}  // namespace clap_rt
