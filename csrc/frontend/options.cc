#include "frontend/options.h"

#include <sstream>
#include <stdexcept>

namespace clap_rt {

namespace {
void Require(bool ok, const char *field, const char *expected) {
  if (!ok) {
    throw std::invalid_argument(std::string("FrontendOptions.") + field + ": expected " + expected);
  }
}
}  // namespace

void FrontendOptions::Validate() const {
  Require(sample_rate > 0, "sample_rate", "> 0");
  Require(filterbank_rate > 0, "filterbank_rate", "> 0");
  Require(n_fft >= 2, "n_fft", ">= 2");
  Require(win_length >= 1 && win_length <= n_fft, "win_length", "in [1, n_fft]");
  Require(hop_length >= 1, "hop_length", ">= 1");
  Require(n_mels >= 1, "n_mels", ">= 1");
  Require(fmin >= 0.0 && fmin < fmax, "fmin", "0 <= fmin < fmax");
  Require(power > 0.0, "power", "> 0");
  Require(amin >= 1.2e-38, "amin", ">= 1.2e-38 (a normal float32)");
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
