/* The machine's own timing noise, for reading benchmark tails: times 5,000 runs of a fixed
 * busy loop and prints p50, p99 and max. Pick ITERS so the p50 matches the call under study.
 * usage: cc -O2 -o /tmp/jitter scripts/bench/jitter.c && /tmp/jitter ITERS */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  long iters = argc > 1 ? atol(argv[1]) : 14000;
  enum { N = 5000 };
  static double ts[N];
  volatile double acc = 0;
  for (int r = 0; r < N; r++) {
    double t = now_us();
    for (long i = 0; i < iters; i++) acc += i * 0.5;
    ts[r] = now_us() - t;
  }
  qsort(ts, N, sizeof ts[0], cmp);
  printf("p50 %.1f p99 %.1f max %.1f us\n", ts[N / 2], ts[N * 99 / 100], ts[N - 1]);
  return 0;
}
