#include "frontend/decibel.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace clap_rt {

namespace {
// log10 of a normal float as pure arithmetic, so the loop below vectorises; a libm log10 call
// per mel band was ~15% of a frame's cost. x = 2^e * m with m in [sqrt(1/2), sqrt(2)), and
// ln(m) = 2*atanh(s) with s = (m-1)/(m+1), |s| <= 0.172: the odd series to s^7 leaves a
// relative error below 3e-8 (next term 2*s^9/9).
inline float Log10(float x) {
  constexpr float kLn2 = 0.693147180559945f;
  constexpr float kInvLn10 = 0.434294481903252f;
  constexpr float kSqrt2 = 1.41421356237310f;
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int32_t e = static_cast<int32_t>(bits >> 23) - 127;  // x > 0: no sign bit
  bits = (bits & 0x007fffffu) | 0x3f800000u;            // mantissa m in [1, 2)
  float m;
  std::memcpy(&m, &bits, sizeof m);
  const int32_t high = m > kSqrt2;  // fold m into [sqrt(1/2), sqrt(2)) without a branch
  m *= 1.0f - 0.5f * static_cast<float>(high);
  e += high;
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  const float ln_m = 2.0f * s * (1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7))));
  return (static_cast<float>(e) * kLn2 + ln_m) * kInvLn10;
}
}  // namespace

void PowerToDb(const double *power, int n, float amin, float *out) {
  for (int i = 0; i < n; ++i) {
    const float x = static_cast<float>(power[i]);
    out[i] = x > amin ? x : amin;
  }
  for (int i = 0; i < n; ++i) out[i] = 10.0f * Log10(out[i]);
}

}  // namespace clap_rt
