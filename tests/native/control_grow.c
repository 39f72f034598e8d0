/* Makes a trace grow: many allocations from many distinct call sites' worth of stacks
 * (recursion depth varies), sampled at the test's small RPROF_MEM_RATE, and CPU samples.
 * The blocks are larger than the 4 KiB up to which the writer folds blocks freed within
 * its flush window into one ShortLived record, so each sample keeps records of its own.
 * Prints a checksum, which must be the same with or without a trace cap.
 * Usage: control_grow ROUNDS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static unsigned long churn(int depth, int i)
{
    if (depth > 0)
        return churn(depth - 1, i) + 1;
    char *p = malloc(4097 + i % 512);
    memset(p, i & 0xff, 256);
    unsigned long v = (unsigned char)p[i % 256];
    free(p);
    return v;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 200000;
    unsigned long sum = 0;
    for (long i = 0; i < rounds; i++)
        sum += churn((int)(i % 40), (int)i);
    printf("sum %lu\n", sum);
    return 0;
}
