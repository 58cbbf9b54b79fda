#include "frontend/online_log_mel.h"

#include "python/bindings.h"

namespace clap_rt {

namespace {
void AcceptWaveform(OnlineLogMel &online, const FloatArray &samples) {
  if (samples.ndim() != 1) throw std::invalid_argument("samples: expected shape (k,)");
  const float *data = samples.data();
  const int64_t n = samples.shape(0);
  py::gil_scoped_release release;
  online.AcceptWaveform(data, n);
}

py::array_t<float> PopFrames(OnlineLogMel &online, int64_t n) {
  py::array_t<float> out({static_cast<int64_t>(online.Options().n_mels), n});
  online.PopFrames(n, out.mutable_data());
  return out;
}
}  // namespace

void PybindOnlineLogMel(py::module_ &m) {
  py::class_<OnlineLogMel>(m, "OnlineLogMel")
      .def(py::init<const FrontendOptions &>(), py::arg("options"))
      .def("accept_waveform", &AcceptWaveform, py::arg("samples"))
      .def("input_finished", &OnlineLogMel::InputFinished, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("num_frames_ready", &OnlineLogMel::NumFramesReady)
      .def_property_readonly("num_samples_accepted", &OnlineLogMel::NumSamplesAccepted)
      .def_property_readonly("is_finished", &OnlineLogMel::IsFinished)
      .def("pop_frames", &PopFrames, py::arg("n"), "Oldest n ready frames as (n_mels, n) float32 dB.")
      .def("reset", &OnlineLogMel::Reset)
      .def_property_readonly("options", &OnlineLogMel::Options);
}

}  // namespace clap_rt
