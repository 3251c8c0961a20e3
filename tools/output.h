/* output.h - what every program of w4a8 does with its output: it writes only
   to regular files, and a write that was lost is an error, standard output
   included.

   output_target(path)     NULL when path may be written (absent, or a regular
                           file), else why not: a directory, a device, a link
                           or a pipe is never replaced or written through.
   output_finish(prog, out, err, rc)
                           the exit status: rc, or 1 (with a message on err)
                           when out (standard output) lost a write or cannot
                           be flushed.

   POSIX (lstat): a program that includes this defines _POSIX_C_SOURCE
   200809L before its first system header. */
#ifndef W4A8_OUTPUT_H
#define W4A8_OUTPUT_H
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__GNUC__) || defined(__clang__)
#define OUTPUT_API static __attribute__((unused))
#else
#define OUTPUT_API static
#endif

OUTPUT_API const char *output_target(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? NULL : strerror(errno);
    if (S_ISREG(st.st_mode)) return NULL;
    if (S_ISDIR(st.st_mode)) return strerror(EISDIR);
    if (S_ISLNK(st.st_mode)) return "a symbolic link: name the file it points to";
    return "not a regular file (a device, a pipe or a socket)";
}

OUTPUT_API int output_finish(const char *prog, FILE *out, FILE *err, int rc) {
    errno = 0;
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(err, "%s: cannot write standard output: %s\n", prog, errno ? strerror(errno) : "write error");
        return rc ? rc : 1;
    }
    return rc;
}

#endif /* W4A8_OUTPUT_H */
