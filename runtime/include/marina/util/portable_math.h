#pragma once
// exp and log1p built from IEEE-754 basic operations only, so that workers on x86-64, arm64 and
// armhf compute bit-identical losses and gradients (with -ffp-contract=off). glibc's exp()
// rounds differently with and without FMA: x86-64 and arm64 agree, armhf and FMA-less x86-64
// do not. Accuracy: at most 1 ulp for exp, 2 ulp for log1p (fdlibm's algorithms).

#include <bit>
#include <cmath>
#include <cstdint>

namespace marina::util {

// ldexp(y, k): where 2^k is a normal double, one multiplication by 2^k built from its bits. That
// is exact for a normal result and rounds once for a subnormal one, as ldexp does, so the two
// agree bit for bit (problem_test.cc checks every k); the call into libm cost as much as the
// rest of portable_exp.
inline double scale_by_power_of_two(double y, int k) {
  if (k < -1022 || k > 1023) return std::ldexp(y, k);
  return y * std::bit_cast<double>(static_cast<uint64_t>(k + 1023) << 52);
}

inline double portable_exp(double x) {
  if (std::isnan(x)) return x;
  if (x > 709.782712893383973096) return HUGE_VAL;
  if (x < -745.13321910194110842) return 0.0;
  constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  constexpr double inv_ln2 = 1.44269504088896338700e+00;
  constexpr double P1 = 1.66666666666666019037e-01, P2 = -2.77777777770155933842e-03,
                   P3 = 6.61375632143793436117e-05, P4 = -1.65339022054652515390e-06,
                   P5 = 4.13813679705723846039e-08;
  const double k = std::nearbyint(x * inv_ln2);
  const double hi = x - k * ln2_hi;
  const double lo = k * ln2_lo;
  const double r = hi - lo;
  const double t = r * r;
  const double c = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  const double y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
  return scale_by_power_of_two(y, static_cast<int>(k));
}

// log(u) for 1 <= u <= 2 (fdlibm's e_log.c, basic operations only).
inline double portable_log_1_2(double u) {
  constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  constexpr double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01,
                   Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01,
                   Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                   Lg7 = 1.479819860511658591e-01;
  double k = 0.0, x = u;
  if (x > 1.41421356237309504880) {
    x *= 0.5;
    k = 1.0;
  }  // exact
  const double f = x - 1.0;
  const double s = f / (2.0 + f);
  const double z = s * s, w = z * z;
  const double R = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7))) + w * (Lg2 + w * (Lg4 + w * Lg6));
  const double hfsq = 0.5 * f * f;
  return k * ln2_hi - ((hfsq - (s * (hfsq + R) + k * ln2_lo)) - f);
}

// log1p(y) for 0 <= y <= 1: log(1+y) corrected for the rounding of 1+y (Goldberg).
inline double portable_log1p(double y) {
  const double u = 1.0 + y;
  if (u == 1.0) return y;
  return portable_log_1_2(u) * (y / (u - 1.0));
}

}  // namespace marina::util
