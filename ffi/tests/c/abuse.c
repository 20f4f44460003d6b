/* abuse MODEL.gguf NOT_A_MODEL — every entry point with NULLs, zero sizes, too-small buffers, a
 * non-GGUF file, free(NULL), and cancel from a second thread during generate. Prints one line per
 * failed expectation and exits non-zero if any. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tensorsharp.h"

static int failures = 0;
#define EXPECT(call, want)                                                                     \
    do {                                                                                       \
        ts_status got_ = (call);                                                               \
        if (got_ != (want)) {                                                                  \
            printf("FAIL %s:%d %s -> %d (%s: %s), want %d\n", __FILE__, __LINE__, #call, got_, \
                   ts_status_str(got_), ts_last_error(), (want));                              \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

static void *cancel_later(void *s) {
    usleep(50 * 1000);
    ts_session_cancel((const ts_session *)s);
    return NULL;
}

static int count_tokens(void *user, int32_t token, const char *piece, size_t len) {
    (void)token, (void)piece, (void)len;
    ++*(size_t *)user;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    ts_model *m = (ts_model *)1;
    EXPECT(ts_model_load(NULL, NULL, &m), TS_ERR_INVALID_ARG);
    EXPECT(ts_model_load(argv[1], NULL, NULL), TS_ERR_INVALID_ARG);
    EXPECT(ts_model_load(argv[2], NULL, &m), TS_ERR_BAD_MODEL);
    if (m != NULL) { printf("FAIL: out not cleared on error\n"); failures++; }
    EXPECT(ts_model_load("/nonexistent/x.gguf", NULL, &m), TS_ERR_IO);
    ts_model_params mp;
    EXPECT(ts_model_params_default(NULL), TS_ERR_INVALID_ARG);
    ts_model_params_default(&mp);
    mp.struct_size = 3;
    EXPECT(ts_model_load(argv[1], &mp, &m), TS_ERR_INVALID_ARG);
    ts_model_params_default(&mp);
    mp.flags = 0x80; /* unknown bit */
    EXPECT(ts_model_load(argv[1], &mp, &m), TS_ERR_INVALID_ARG);
    mp.flags = TS_MODEL_MMAP; /* zero-copy mapping instead of resident memory */
    EXPECT(ts_model_load(argv[1], &mp, &m), TS_OK);
    ts_model_free(m);
    EXPECT(ts_model_load(argv[1], NULL, &m), TS_OK);

    /* tokenize / detokenize */
    size_t n = 0;
    int32_t toks[4];
    EXPECT(ts_tokenize(NULL, "hi", 2, 1, 1, toks, 4, &n), TS_ERR_INVALID_ARG);
    EXPECT(ts_tokenize(m, NULL, 2, 1, 1, toks, 4, &n), TS_ERR_INVALID_ARG);
    EXPECT(ts_tokenize(m, "hi", 2, 1, 1, toks, 4, NULL), TS_ERR_INVALID_ARG);
    EXPECT(ts_tokenize(m, "hi", 2, 1, 1, NULL, 4, &n), TS_ERR_INVALID_ARG);
    const char *long_text = "one two three four five six seven";
    EXPECT(ts_tokenize(m, long_text, strlen(long_text), 1, 1, toks, 4, &n), TS_ERR_BUFFER_TOO_SMALL);
    if (n <= 4) { printf("FAIL: needed size not reported (%zu)\n", n); failures++; }
    EXPECT(ts_tokenize(m, "", 0, 0, 0, NULL, 0, &n), TS_OK);
    EXPECT(ts_tokenize(m, "\xff\xfe", 2, 1, 1, toks, 4, &n), TS_ERR_INVALID_ARG);
    EXPECT(ts_tokenize(m, "Hello", 5, 0, 0, toks, 4, &n), TS_OK);
    char buf[4];
    size_t len = 0;
    EXPECT(ts_detokenize(m, toks, n, buf, 0, &len), TS_ERR_BUFFER_TOO_SMALL);
    if (len != 5) { printf("FAIL: detokenize needed %zu, want 5\n", len); failures++; }
    EXPECT(ts_detokenize(m, toks, n, NULL, 4, &len), TS_ERR_INVALID_ARG);
    int32_t bad = -5;
    EXPECT(ts_detokenize(m, &bad, 1, buf, 4, &len), TS_ERR_INVALID_ARG);

    /* session / sampler creation */
    ts_session *s = NULL;
    ts_sampler *sm = NULL;
    ts_session_params sp;
    ts_session_params_default(&sp);
    EXPECT(ts_session_create(NULL, &sp, &s), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_create(m, &sp, NULL), TS_ERR_INVALID_ARG);
    sp.kv_type = 9;
    EXPECT(ts_session_create(m, &sp, &s), TS_ERR_INVALID_ARG);
    ts_session_params_default(&sp);
    sp.ram_budget = 1024 * 1024;
    EXPECT(ts_session_create(m, &sp, &s), TS_ERR_OVER_BUDGET);
    ts_session_params_default(&sp);
    sp.n_ctx = 256;
    sp.n_threads = 2;
    EXPECT(ts_session_create(m, &sp, &s), TS_OK);
    ts_sampler_params pp;
    ts_sampler_params_default(&pp);
    pp.top_p = 7.0f;
    EXPECT(ts_sampler_create(m, &pp, &sm), TS_ERR_INVALID_ARG);
    EXPECT(ts_sampler_create(m, NULL, &sm), TS_OK);

    /* step-wise calls */
    int32_t t = 0;
    EXPECT(ts_session_prefill(NULL, toks, 1), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_prefill(s, NULL, 1), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_prefill(s, toks, 0), TS_ERR_INVALID_ARG);
    int32_t huge = 1 << 30;
    EXPECT(ts_session_prefill(s, &huge, 1), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_decode_step(s, sm, &t), TS_ERR_INVALID_ARG); /* nothing prefilled */
    EXPECT(ts_session_prefill(s, toks, n), TS_OK);
    EXPECT(ts_session_decode_step(s, NULL, &t), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_decode_step(s, sm, NULL), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_decode_step(s, sm, &t), TS_OK);
    EXPECT(ts_session_reset(NULL), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_reset(s), TS_OK);

    /* a prompt longer than the context */
    static int32_t many[300];
    for (int i = 0; i < 300; i++) many[i] = toks[0];
    EXPECT(ts_session_prefill(s, many, 300), TS_ERR_CONTEXT_FULL);
    EXPECT(ts_session_reset(s), TS_OK);

    /* cancel from a second thread during a long generation */
    pthread_t th;
    size_t got = 0, n_gen = 0;
    pthread_create(&th, NULL, cancel_later, s);
    EXPECT(ts_session_generate(s, sm, toks, n, 250, count_tokens, &got, &n_gen), TS_ERR_CANCELLED);
    pthread_join(th, NULL);
    if (n_gen != got || n_gen >= 250) { printf("FAIL: cancelled after %zu tokens (%zu callbacks)\n", n_gen, got); failures++; }
    EXPECT(ts_session_cancel(NULL), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_reset(s), TS_OK);
    EXPECT(ts_session_generate(s, sm, toks, n, 3, NULL, NULL, &n_gen), TS_OK);

    /* metadata */
    char meta[64];
    size_t mlen = 0;
    EXPECT(ts_model_meta(m, "general.architecture", meta, sizeof meta, &mlen), TS_OK);
    if (strcmp(meta, "llama") != 0 || mlen != 5) { printf("FAIL: architecture %s\n", meta); failures++; }
    EXPECT(ts_model_meta(m, "llama.block_count", meta, sizeof meta, &mlen), TS_OK);
    if (strcmp(meta, "30") != 0) { printf("FAIL: block_count %s\n", meta); failures++; }
    EXPECT(ts_model_meta(m, "general.architecture", meta, 3, &mlen), TS_ERR_BUFFER_TOO_SMALL);
    EXPECT(ts_model_meta(m, "no.such.key", meta, sizeof meta, &mlen), TS_ERR_INVALID_ARG);
    EXPECT(ts_model_meta(m, NULL, meta, sizeof meta, &mlen), TS_ERR_INVALID_ARG);

    /* state save / load: the continuation after a restore equals the original one */
    static uint8_t state[64 << 20];
    size_t need = 0, wrote = 0;
    int32_t a[4], b[4];
    EXPECT(ts_session_reset(s), TS_OK);
    EXPECT(ts_sampler_reset(sm), TS_OK);
    EXPECT(ts_session_prefill(s, toks, n), TS_OK);
    EXPECT(ts_session_state_size(s, &need), TS_OK);
    EXPECT(ts_session_state_save(s, state, 10, &wrote), TS_ERR_BUFFER_TOO_SMALL);
    if (wrote != need) { printf("FAIL: needed %zu reported %zu\n", need, wrote); failures++; }
    EXPECT(ts_session_state_save(s, state, sizeof state, &wrote), TS_OK);
    for (int i = 0; i < 4; i++) EXPECT(ts_session_decode_step(s, sm, &a[i]), TS_OK);
    EXPECT(ts_session_reset(s), TS_OK);
    EXPECT(ts_sampler_reset(sm), TS_OK);
    EXPECT(ts_session_state_load(s, state, wrote - 1), TS_ERR_INVALID_ARG);
    state[0] ^= 1;
    EXPECT(ts_session_state_load(s, state, wrote), TS_ERR_INVALID_ARG);
    state[0] ^= 1;
    EXPECT(ts_session_state_load(s, state, wrote), TS_OK);
    if (ts_session_n_past(s) != n) { printf("FAIL: n_past after load\n"); failures++; }
    for (int i = 0; i < 4; i++) EXPECT(ts_session_decode_step(s, sm, &b[i]), TS_OK);
    if (memcmp(a, b, sizeof a) != 0) { printf("FAIL: continuation differs after state load\n"); failures++; }
    EXPECT(ts_session_state_size(NULL, &need), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_state_load(s, NULL, 5), TS_ERR_INVALID_ARG);

    /* status strings and frees of NULL */
    for (int st = 0; st <= 11; st++)
        if (ts_status_str(st) == NULL) { printf("FAIL: status_str(%d) NULL\n", st); failures++; }
    ts_model_free(NULL);
    ts_session_free(NULL);
    ts_sampler_free(NULL);
    ts_sampler_free(sm);
    ts_session_free(s);
    ts_model_free(m);
    printf("%d failures\n", failures);
    return failures != 0;
}
