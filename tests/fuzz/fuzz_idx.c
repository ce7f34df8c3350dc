/* fuzz_idx.c -- libFuzzer target: the IDX (+gzip) reader behind duel.data.read_idx and
 * duel.data.fashion_mnist. duel_idx_load reads through zlib's gzopen, so the input is put in a
 * memory file and opened by its /proc/self/fd path: the file reader itself is what runs. */
#include "image.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz_idx", 0);
    if (fd < 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t k = write(fd, data + off, size - off);
        if (k <= 0) abort();
        off += (size_t)k;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    /* the length picks padding on or off, as fashion_mnist pads its images */
    duel_tensor *t = duel_idx_load(path, 2.0 / 255, -1, (int64_t)(size & 1) * 2, -1.0f);
    if (t) {
        const float *p = t->data;
        for (int64_t k = 0, n = duel_numel(t); k < n; k++)
            if (!(p[k] >= -1.0f && p[k] <= 1.0f)) abort();
        duel_release(t);
    }
    close(fd);
    return 0;
}
