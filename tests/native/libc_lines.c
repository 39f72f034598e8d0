// libc_lines.c -- spends most of its time in the C library's qsort (glibc's msort.c,
// calling back into cmp): the C library's frames get file:line from its build-id debug
// file, looked up by the report, where libc6-dbg is installed.
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int main(void) {
    long n = 2000000, *v = malloc(n * sizeof *v);
    if (!v) return 1;
    double s = 0;
    for (int r = 0; r < 3; r++) {
        for (long i = 0; i < n; i++) v[i] = (i * 2654435761u) % 1000003;
        qsort(v, n, sizeof *v, cmp);
        s += v[n / 2];
    }
    printf("sink %g\n", s);
    free(v);
    return 0;
}
