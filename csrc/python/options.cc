#include "frontend/options.h"

#include "python/bindings.h"

namespace clap_rt {

void PybindOptions(py::module_ &m) {
  py::class_<FrontendOptions>(m, "FrontendOptions")
      .def(py::init<>())
      .def_readwrite("sample_rate", &FrontendOptions::sample_rate)
      .def_readwrite("filterbank_rate", &FrontendOptions::filterbank_rate)
      .def_readwrite("n_fft", &FrontendOptions::n_fft)
      .def_readwrite("win_length", &FrontendOptions::win_length)
      .def_readwrite("hop_length", &FrontendOptions::hop_length)
      .def_readwrite("n_mels", &FrontendOptions::n_mels)
      .def_readwrite("fmin", &FrontendOptions::fmin)
      .def_readwrite("fmax", &FrontendOptions::fmax)
      .def_readwrite("htk", &FrontendOptions::htk)
      .def_readwrite("slaney_norm", &FrontendOptions::slaney_norm)
      .def_readwrite("power", &FrontendOptions::power)
      .def_readwrite("amin", &FrontendOptions::amin)
      .def_readwrite("top_db", &FrontendOptions::top_db)
      .def_readwrite("center", &FrontendOptions::center)
      .def("validate", &FrontendOptions::Validate)
      .def("__repr__", &FrontendOptions::ToString);
}

}  // namespace clap_rt
