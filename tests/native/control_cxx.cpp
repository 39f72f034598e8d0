// The header in C++ (g++ -Wall -Werror). Built two ways: linked with librprof.so, it
// calls the API and checks what each call returns; with -DRPROF_WEAK and not linked, it
// runs without the library and sees RPROF_AVAILABLE() false.
#include <rprof.h>

#include <cstdio>
#include <cstring>

int main()
{
    if (!RPROF_AVAILABLE()) {
        std::puts("rprof absent");
        return 0;
    }
    const char *v = rprof_version();
    int marked = rprof_mark("from C++");
    int flushed = rprof_flush();
    int nul = rprof_mark(nullptr);
    std::printf("version %s mark %d flush %d null_mark %d\n", v, marked, flushed, nul);
    return v && std::strlen(v) > 0 && marked == 0 && flushed == 0 && nul == -1 ? 0 : 1;
}
