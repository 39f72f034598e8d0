/* The variadic members of the exec family, which stable Rust cannot define. glibc's own
 * execl, execlp and execle call execve internally, past the PLT, so they are interposed
 * here: each collects its arguments, as glibc does, and calls the vector form, which
 * resolves to the shim's interposed execv/execvp/execve (exec.rs). */
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

/* Counts the arguments up to the terminating NULL, `arg` included (glibc declares `arg`
 * non-null and counts the same way). */
static size_t count_args(va_list ap) {
    size_t n = 1;
    while (va_arg(ap, char *))
        n++;
    return n;
}

#define COLLECT(argv, n, arg, ap)                                                        \
    do {                                                                                 \
        argv[0] = (char *)(arg);                                                         \
        for (size_t i = 1; i < (n); i++)                                                 \
            argv[i] = va_arg(ap, char *);                                                \
        argv[(n)] = NULL;                                                                \
        (void)va_arg(ap, char *); /* the terminating NULL */                             \
    } while (0)

int execl(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    size_t n = count_args(ap);
    va_end(ap);
    char *argv[n + 1];
    va_start(ap, arg);
    COLLECT(argv, n, arg, ap);
    va_end(ap);
    return execv(path, argv);
}

int execlp(const char *file, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    size_t n = count_args(ap);
    va_end(ap);
    char *argv[n + 1];
    va_start(ap, arg);
    COLLECT(argv, n, arg, ap);
    va_end(ap);
    return execvp(file, argv);
}

int execle(const char *path, const char *arg, ...) {
    va_list ap;
    va_start(ap, arg);
    size_t n = count_args(ap);
    va_end(ap);
    char *argv[n + 1];
    va_start(ap, arg);
    COLLECT(argv, n, arg, ap);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}
