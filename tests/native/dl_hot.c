// dl_hot.c -- a library of two hot functions, built with -g -shared and dlopen'ed by
// dl_main.c after the program started (so the profiler's writer never had it mapped).
double hot_a(long n) {
    double x = 0;
    for (long i = 0; i < n; i++) x = x * 0.999999 + (double)(i & 7);   // HOT-A
    return x;
}

double hot_b(long n) {
    double x = 1;
    for (long i = 0; i < n; i++) x = x * 1.000001 - (double)(i & 3);   // HOT-B
    return x;
}
