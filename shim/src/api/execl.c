/* The variadic members of the exec family, which stable Rust cannot define. glibc's own
 * execl, execlp and execle call execve internally, past the PLT, so they are interposed:
 * exec.rs exports `execl` & co. as naked jumps to these (a cdylib exports only symbols
 * defined in Rust), and each collects its arguments, as glibc does, and calls the vector
 * form, which resolves to the shim's interposed execve/execvpe. */
#define _GNU_SOURCE /* execvpe */
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

/* One interposer: NAME collects its arguments and calls CALL (a vector form taking an
 * environment) with ENVP, read after the arguments' NULL; glibc's execl and execlp pass
 * `environ`, as these do. */
#define EXECL(name, call, envp)                                                          \
    __attribute__((visibility("hidden"))) int name(const char *file, const char *arg, ...) { \
        va_list ap;                                                                      \
        va_start(ap, arg);                                                               \
        size_t n = count_args(ap);                                                       \
        va_end(ap);                                                                      \
        char *argv[n + 1];                                                               \
        va_start(ap, arg);                                                               \
        COLLECT(argv, n, arg, ap);                                                       \
        char *const *env = (envp);                                                       \
        va_end(ap);                                                                      \
        return call(file, argv, env);                                                    \
    }

EXECL(rprof_execl, execve, environ)
EXECL(rprof_execlp, execvpe, environ)
EXECL(rprof_execle, execve, va_arg(ap, char *const *))
