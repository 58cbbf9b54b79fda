// One Pybind* function per core file; frontend_module.cc assembles the module clap_rt._frontend.
#ifndef CLAP_RT_PYTHON_BINDINGS_H_
#define CLAP_RT_PYTHON_BINDINGS_H_

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

namespace clap_rt {

namespace py = pybind11;
// C-contiguous float32 input; other layouts and dtypes are converted by pybind11 (the Python
// wrapper in clap_rt/frontend.py has already validated and converted them).
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

void PybindOptions(py::module_ &m);
void PybindLogMel(py::module_ &m);
void PybindOnlineLogMel(py::module_ &m);

}  // namespace clap_rt

#endif  // CLAP_RT_PYTHON_BINDINGS_H_
