// Real-input FFT of a fixed size (FFTW3, double precision), planned once.
// Double precision on purpose: a float32 FFT is off by ~0.1 dB in bands ~130 dB below a
// loud tone, more than the 1e-3 dB parity the frontend promises.
#ifndef CLAP_RT_FRONTEND_REAL_FFT_H_
#define CLAP_RT_FRONTEND_REAL_FFT_H_

#include <complex>

namespace clap_rt {

class RealFft {
 public:
  explicit RealFft(int n);
  ~RealFft();
  RealFft(const RealFft &) = delete;
  RealFft &operator=(const RealFft &) = delete;

  int Size() const { return n_; }

  // Per-thread scratch, aligned as the plan expects. `in` holds n values, `out` n/2+1 bins.
  class Buffers {
   public:
    explicit Buffers(int n);
    ~Buffers();
    Buffers(const Buffers &) = delete;
    Buffers &operator=(const Buffers &) = delete;
    double *in;
    std::complex<double> *out;
  };

  // out = rfft(in). Thread-safe: the plan is shared, the buffers belong to the caller.
  void Forward(Buffers *buffers) const;

 private:
  int n_;
  void *plan_;  // fftw_plan, kept opaque so that fftw3.h stays out of this header
};

}  // namespace clap_rt

#endif  // CLAP_RT_FRONTEND_REAL_FFT_H_
