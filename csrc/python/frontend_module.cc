#include "python/bindings.h"

PYBIND11_MODULE(_frontend, m) {
  m.doc() = "clap_rt C++ log-mel frontend (FFTW3); see clap_rt/frontend.py for the Python API.";
  clap_rt::PybindOptions(m);
  clap_rt::PybindLogMel(m);
  clap_rt::PybindOnlineLogMel(m);
}
