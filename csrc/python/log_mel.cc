#include "frontend/log_mel.h"

#include <algorithm>
#include <vector>

#include "python/bindings.h"

namespace clap_rt {

namespace {
// audio (n,) -> (n_mels, T); (B, n) -> (B, n_mels, T). The GIL is released while computing.
py::array_t<float> Compute(const LogMel &log_mel, const FloatArray &audio, int threads) {
  if (audio.ndim() != 1 && audio.ndim() != 2) throw std::invalid_argument("audio: expected shape (n,) or (B, n)");
  const bool batched = audio.ndim() == 2;
  const int64_t batch = batched ? audio.shape(0) : 1;
  const int64_t n = audio.shape(audio.ndim() - 1);
  const int64_t frames = log_mel.NumFrames(n);
  const int64_t n_mels = log_mel.Options().n_mels;
  std::vector<py::ssize_t> shape = {n_mels, frames};
  if (batched) shape.insert(shape.begin(), batch);
  py::array_t<float> out(shape);
  const float *in = audio.data();
  float *dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    log_mel.ComputeBatch(in, batch, n, dst, threads);
  }
  return out;
}

py::array_t<double> DenseFilterbank(const LogMel &log_mel) {
  const int n_bins = log_mel.Options().NumBins();
  const std::vector<double> dense = log_mel.Filterbank().Dense(n_bins);
  py::array_t<double> out({static_cast<int64_t>(log_mel.Options().n_mels), static_cast<int64_t>(n_bins)});
  std::copy(dense.begin(), dense.end(), out.mutable_data());
  return out;
}
}  // namespace

void PybindLogMel(py::module_ &m) {
  py::class_<LogMel>(m, "LogMel")
      .def(py::init<const FrontendOptions &>(), py::arg("options"))
      .def_property_readonly("options", &LogMel::Options)
      .def("num_frames", &LogMel::NumFrames, py::arg("n_samples"))
      .def("mel_filterbank", &DenseFilterbank, "(n_mels, n_fft/2+1) float64 weights, as built in C++.")
      .def("compute", &Compute, py::arg("audio"), py::arg("threads") = 1,
           "audio (n,) or (B, n) float32 -> (n_mels, T) or (B, n_mels, T) float32 dB, on `threads` threads.");
}

}  // namespace clap_rt
