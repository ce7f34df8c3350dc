/* fuzz_image.c -- libFuzzer target: image decoding from memory (stb_image behind duel's own
 * header, size and completeness checks), the path every loader and duel.image.load takes.
 * The input's length picks the channel request and the file name's extension, so seeds stay
 * real image files. */
#include "image.h"
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int chans[] = {0, 1, 3, 4};
    static const char *names[] = {"fuzz.png", "fuzz.tga", "fuzz.jpg", "fuzz.bmp"};
    int c = 0, h = 0, w = 0;
    char err[512];
    float *px = duel_image_decode_mem(data, size, names[(size >> 2) & 3], chans[size & 3],
                                      "fuzz_image", &c, &h, &w, err, sizeof err);
    if (px) {
        /* every decoded value must be readable and in [0,1] */
        size_t n = (size_t)c * (size_t)h * (size_t)w;
        for (size_t i = 0; i < n; i++)
            if (!(px[i] >= 0.0f && px[i] <= 1.0f)) abort();
        free(px);
    }
    return 0;
}
