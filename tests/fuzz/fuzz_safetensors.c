/* fuzz_safetensors.c -- libFuzzer target: duel_st_decode, the parser behind duel.load. Whatever
 * it accepts must also survive a round trip: re-encoded, it decodes again to the same entries. */
#include "duel.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    duel_st *st = duel_st_decode(data, size);
    if (!st) return 0;
    double sum = 0; /* touches every decoded element */
    for (int i = 0; i < st->n; i++) {
        duel_tensor *t = st->entries[i].tensor;
        if (!t) continue;
        const float *p = t->data;
        for (int64_t k = 0, n = duel_numel(t); k < n; k++) sum += p[k];
    }
    (void)sum;
    unsigned char *buf = NULL;
    size_t len = 0;
    if (duel_st_encode(st->entries, st->n, &buf, &len) != 0) abort();
    duel_st *again = duel_st_decode(buf, len);
    if (!again || again->n != st->n) abort();
    duel_st_free(again);
    free(buf);
    duel_st_free(st);
    return 0;
}
