// Power to decibels: out[i] = 10*log10(max(amin, power[i])), ref 1.0.
#ifndef CLAP_RT_FRONTEND_DECIBEL_H_
#define CLAP_RT_FRONTEND_DECIBEL_H_

namespace clap_rt {

// amin must be a normal float32 (>= 1.2e-38). Absolute error < 1e-5 dB over the float range.
void PowerToDb(const double *power, int n, float amin, float *out);

}  // namespace clap_rt

#endif  // CLAP_RT_FRONTEND_DECIBEL_H_
