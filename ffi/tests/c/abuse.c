/* abuse MODEL.gguf NOT_A_MODEL — every entry point with NULLs, zero sizes, too-small buffers, a
 * non-GGUF file, free(NULL), and cancel from a second thread during generate. Prints one line per
 * failed expectation and exits non-zero if any. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- one session used by two threads (against the rules): TS_ERR_BUSY, never a race ---- */
struct busy_ctx {
    ts_session *s;
    ts_sampler *sm;  /* the sampler the running generate holds */
    ts_sampler *own; /* a second sampler, free */
    const int32_t *toks;
    size_t n;
    int checked;
};

/* Runs on a second thread while the main thread's ts_session_generate holds the session. */
static void *intrude(void *p) {
    struct busy_ctx *c = p;
    int32_t t = 0;
    size_t sz = 0, n_gen = 0;
    EXPECT(ts_session_prefill(c->s, c->toks, c->n), TS_ERR_BUSY);
    EXPECT(ts_session_decode_step(c->s, c->own, &t), TS_ERR_BUSY);
    EXPECT(ts_session_generate(c->s, c->own, c->toks, c->n, 4, NULL, NULL, &n_gen), TS_ERR_BUSY);
    EXPECT(ts_session_reset(c->s), TS_ERR_BUSY);
    EXPECT(ts_session_state_size(c->s, &sz), TS_ERR_BUSY);
    EXPECT(ts_sampler_reset(c->sm), TS_ERR_BUSY);
    if (strstr(ts_last_error(), "in use") == NULL) { printf("FAIL: busy message: %s\n", ts_last_error()); failures++; }
    ts_session_free(c->s); /* refused while in use: the generate on the main thread goes on */
    return NULL;
}

static int intrude_once(void *user, int32_t token, const char *piece, size_t len) {
    (void)token, (void)piece, (void)len;
    struct busy_ctx *c = user;
    if (!c->checked) {
        c->checked = 1;
        pthread_t th;
        pthread_create(&th, NULL, intrude, c);
        pthread_join(th, NULL);
        /* re-entering from the callback is refused too */
        int32_t t = 0;
        EXPECT(ts_session_decode_step(c->s, c->own, &t), TS_ERR_BUSY);
    }
    return 0;
}

/* Two threads generating on one session at once: every call is OK or BUSY, none crashes. */
struct race_ctx {
    ts_session *s;
    ts_sampler *sm;
    const int32_t *toks;
    size_t n;
    int ok, busy, other;
};

static void *race(void *p) {
    struct race_ctx *c = p;
    for (int i = 0; i < 40; i++) {
        size_t n_gen = 0;
        ts_session_reset(c->s); /* may be BUSY itself; the generate below continues then */
        ts_status st = ts_session_generate(c->s, c->sm, c->toks, c->n, 6, NULL, NULL, &n_gen);
        if (st == TS_OK) c->ok++;
        else if (st == TS_ERR_BUSY) c->busy++;
        else if (st != TS_ERR_CONTEXT_FULL) c->other++;
    }
    return NULL;
}

/* A prefill on a thread with a 64 KiB stack: refused with TS_ERR_SYSTEM, not a stack overflow. */
static void *small_stack_prefill(void *p) {
    struct busy_ctx *c = p;
    EXPECT(ts_session_prefill(c->s, c->toks, c->n), TS_ERR_SYSTEM);
    if (strstr(ts_last_error(), "stack") == NULL) { printf("FAIL: stack message: %s\n", ts_last_error()); failures++; }
    return NULL;
}

/* Appends each piece to a 256-byte buffer. */
static int collect_text(void *user, int32_t token, const char *piece, size_t len) {
    struct { char *buf; size_t len; } *a = user;
    (void)token;
    if (a->len + len < 255) { memcpy(a->buf + a->len, piece, len); a->len += len; }
    return 0;
}

static int count_tokens(void *user, int32_t token, const char *piece, size_t len) {
    (void)token, (void)piece, (void)len;
    ++*(size_t *)user;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    /* the board profile: the caller sets struct_size; a wrong one is refused, nothing written */
    ts_board_info bi;
    memset(&bi, 0x5a, sizeof bi);
    EXPECT(ts_board_profile(NULL), TS_ERR_INVALID_ARG);
    bi.struct_size = sizeof bi - 8;
    EXPECT(ts_board_profile(&bi), TS_ERR_INVALID_ARG);
    if (bi.n_threads != 0x5a5a5a5au) { printf("FAIL: board info written despite a wrong size\n"); failures++; }
    bi.struct_size = sizeof bi;
    EXPECT(ts_board_profile(&bi), TS_OK);
    if (bi.n_threads < 1 || bi.n_ctx < 512 || bi.id[0] == 0 || bi.tier[0] == 0 || bi.kv_type > 2 ||
        bi.n_cpus > TS_BOARD_MAX_CPUS || memchr(bi.id, 0, sizeof bi.id) == NULL ||
        memchr(bi.name, 0, sizeof bi.name) == NULL || memchr(bi.tier, 0, sizeof bi.tier) == NULL) {
        printf("FAIL: board info %u threads, ctx %u, kv %u, id %.32s, tier %.16s\n", bi.n_threads, bi.n_ctx,
               bi.kv_type, bi.id, bi.tier);
        failures++;
    }
    printf("board: %s (%s), %u threads, tier %s, ctx %u, budget %llu\n", bi.id, bi.name, bi.n_threads, bi.tier,
           bi.n_ctx, (unsigned long long)bi.ram_budget);
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
    /* weights streamed under a RAM budget: refused with the mapping and below the minimum; at
     * half the file, greedy generation gives the resident model's tokens */
    ts_model_params_default(&mp);
    mp.flags = TS_MODEL_MMAP;
    mp.weights_ram_budget = 1u << 20;
    EXPECT(ts_model_load(argv[1], &mp, &m), TS_ERR_INVALID_ARG);
    ts_model_params_default(&mp);
    mp.weights_ram_budget = 4096;
    EXPECT(ts_model_load(argv[1], &mp, &m), TS_ERR_OVER_BUDGET);
    {
        FILE *f = fopen(argv[1], "rb");
        fseek(f, 0, SEEK_END);
        mp.weights_ram_budget = (uint64_t)ftell(f) / 2;
        fclose(f);
        int32_t want[8], got[8], ptoks[16];
        size_t np = 0;
        for (int pass = 0; pass < 2; pass++) {
            ts_model *mm = NULL;
            EXPECT(ts_model_load(argv[1], pass ? &mp : NULL, &mm), TS_OK);
            if (!mm) break;
            EXPECT(ts_tokenize(mm, "The robot arm", 13, 1, 1, ptoks, 16, &np), TS_OK);
            ts_session_params ssp;
            ts_session_params_default(&ssp);
            ssp.n_ctx = 128;
            ssp.n_threads = 2;
            ts_session *ss = NULL;
            ts_sampler *greedy = NULL;
            ts_sampler_params gp;
            ts_sampler_params_default(&gp);
            gp.temperature = 0.0f;
            EXPECT(ts_session_create(mm, &ssp, &ss), TS_OK);
            EXPECT(ts_sampler_create(mm, &gp, &greedy), TS_OK);
            EXPECT(ts_session_prefill(ss, ptoks, np), TS_OK);
            for (int i = 0; i < 8; i++) EXPECT(ts_session_decode_step(ss, greedy, pass ? &got[i] : &want[i]), TS_OK);
            ts_sampler_free(greedy);
            ts_session_free(ss);
            ts_model_free(mm);
        }
        if (memcmp(want, got, sizeof want) != 0) { printf("FAIL: streamed weights gave other tokens\n"); failures++; }
        else printf("streamed weights (%llu bytes in RAM): the resident model's 8 greedy tokens\n",
                    (unsigned long long)mp.weights_ram_budget);
    }
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

    /* chat template: the model's own, too small a buffer, malformed conversations, bad names */
    const char *conv = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}]}";
    const char *want_chat = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                            "Face<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n";
    char chat[512];
    size_t clen = 0;
    EXPECT(ts_chat_apply_template(m, conv, NULL, chat, 8, &clen), TS_ERR_BUFFER_TOO_SMALL);
    if (clen != strlen(want_chat)) { printf("FAIL: chat needs %zu, reported %zu\n", strlen(want_chat), clen); failures++; }
    EXPECT(ts_chat_apply_template(m, conv, NULL, chat, sizeof chat, &clen), TS_OK);
    if (clen != strlen(want_chat) || memcmp(chat, want_chat, clen) != 0) { printf("FAIL: chat %.*s\n", (int)clen, chat); failures++; }
    EXPECT(ts_chat_apply_template(m, conv, "gemma", chat, sizeof chat, &clen), TS_OK);
    if (clen < 14 || memcmp(chat, "<start_of_turn>", 15) != 0) { printf("FAIL: gemma built-in %.*s\n", (int)clen, chat); failures++; }
    EXPECT(ts_chat_apply_template(m, "{\"messages\": 5}", NULL, chat, sizeof chat, &clen), TS_ERR_INVALID_ARG);
    EXPECT(ts_chat_apply_template(m, "not json", NULL, chat, sizeof chat, &clen), TS_ERR_INVALID_ARG);
    EXPECT(ts_chat_apply_template(m, conv, "no-such-template", chat, sizeof chat, &clen), TS_ERR_INVALID_ARG);
    EXPECT(ts_chat_apply_template(m, NULL, NULL, chat, sizeof chat, &clen), TS_ERR_INVALID_ARG);
    EXPECT(ts_chat_apply_template(NULL, conv, NULL, chat, sizeof chat, &clen), TS_ERR_INVALID_ARG);
    EXPECT(ts_chat_apply_template(m, conv, NULL, NULL, 5, &clen), TS_ERR_INVALID_ARG);
    EXPECT(ts_chat_apply_template(m, conv, NULL, chat, sizeof chat, NULL), TS_ERR_INVALID_ARG);

    /* structured output: a schema constrains the sampler; bad ones are refused */
    {
        ts_sampler *js = NULL;
        EXPECT(ts_sampler_create(m, NULL, &js), TS_OK);
        EXPECT(ts_sampler_set_constraint(js, m, TS_CONSTRAINT_JSON_SCHEMA,
                                         "{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"}}, "
                                         "\"required\": [\"ok\"], \"additionalProperties\": false}"),
               TS_OK);
        EXPECT(ts_session_reset(s), TS_OK);
        char out[256];
        size_t olen = 0;
        struct { char *buf; size_t len; } acc = {out, 0};
        EXPECT(ts_session_generate(s, js, toks, n, 40, collect_text, &acc, NULL), TS_OK);
        out[acc.len] = 0;
        if (strcmp(out, "{\"ok\": true}") != 0 && strcmp(out, "{\"ok\": false}") != 0) {
            printf("FAIL: constrained output %s\n", out);
            failures++;
        }
        (void)olen;
        EXPECT(ts_sampler_set_constraint(js, m, TS_CONSTRAINT_JSON_SCHEMA, "not json"), TS_ERR_INVALID_ARG);
        EXPECT(ts_sampler_set_constraint(js, m, TS_CONSTRAINT_GRAMMAR, "root ::= undefined"), TS_ERR_INVALID_ARG);
        EXPECT(ts_sampler_set_constraint(js, m, 7, "x"), TS_ERR_INVALID_ARG);
        EXPECT(ts_sampler_set_constraint(js, m, TS_CONSTRAINT_GRAMMAR, NULL), TS_ERR_INVALID_ARG);
        EXPECT(ts_sampler_set_constraint(js, NULL, TS_CONSTRAINT_GRAMMAR, "root ::= \"a\""), TS_ERR_INVALID_ARG);
        EXPECT(ts_sampler_set_constraint(js, m, TS_CONSTRAINT_NONE, NULL), TS_OK);
        ts_sampler_free(js);
    }

    /* state files (prompt caches) and prefix reuse */
    char path[256];
    snprintf(path, sizeof path, "/tmp/tsharp-abuse-%d.state", (int)getpid());
    size_t npos = 0, kept = 0;
    EXPECT(ts_session_reset(s), TS_OK);
    EXPECT(ts_session_prefill(s, toks, n), TS_OK);
    EXPECT(ts_session_state_save_file(s, path), TS_OK);
    EXPECT(ts_session_reset(s), TS_OK);
    EXPECT(ts_session_state_load_file(s, path, &npos), TS_OK);
    if (npos != n || ts_session_n_past(s) != n) { printf("FAIL: state file restored %zu of %zu\n", npos, n); failures++; }
    EXPECT(ts_session_keep_prefix(s, toks, n, &kept), TS_OK);
    if (kept != n - 1 || ts_session_n_past(s) != n - 1) { printf("FAIL: keep_prefix kept %zu\n", kept); failures++; }
    EXPECT(ts_session_keep_prefix(s, toks, 0, &kept), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_keep_prefix(s, NULL, n, &kept), TS_ERR_INVALID_ARG);
    FILE *f = fopen(path, "r+b");
    if (f) { fseek(f, 100, SEEK_SET); fputc(0x5a, f); fclose(f); }
    EXPECT(ts_session_reset(s), TS_OK);
    EXPECT(ts_session_state_load_file(s, path, &npos), TS_ERR_INVALID_ARG);
    if (ts_session_n_past(s) != 0) { printf("FAIL: a damaged state file changed the session\n"); failures++; }
    unlink(path);
    EXPECT(ts_session_state_load_file(s, path, NULL), TS_ERR_IO);
    EXPECT(ts_session_state_load_file(s, NULL, NULL), TS_ERR_INVALID_ARG);
    EXPECT(ts_session_state_save_file(s, "/nonexistent-dir/x.state"), TS_ERR_IO);
    EXPECT(ts_session_state_save_file(NULL, path), TS_ERR_INVALID_ARG);

    /* a second thread (and a re-entrant callback) on a session in use: TS_ERR_BUSY */
    ts_sampler *own = NULL;
    EXPECT(ts_sampler_create(m, NULL, &own), TS_OK);
    EXPECT(ts_session_reset(s), TS_OK);
    struct busy_ctx bc = {s, sm, own, toks, n, 0};
    size_t n_busy_gen = 0;
    EXPECT(ts_session_generate(s, sm, toks, n, 3, intrude_once, &bc, &n_busy_gen), TS_OK);
    if (!bc.checked || n_busy_gen != 3) { printf("FAIL: busy check did not run (%zu tokens)\n", n_busy_gen); failures++; }
    EXPECT(ts_session_reset(s), TS_OK); /* free again after the call */
    /* two threads racing on one session, each with its own sampler */
    struct race_ctx r1 = {s, sm, toks, n, 0, 0, 0}, r2 = {s, own, toks, n, 0, 0, 0};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, race, &r1);
    pthread_create(&t2, NULL, race, &r2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    if (r1.other + r2.other != 0 || r1.ok + r2.ok == 0) {
        printf("FAIL: race: ok %d+%d busy %d+%d other %d+%d\n", r1.ok, r2.ok, r1.busy, r2.busy, r1.other, r2.other);
        failures++;
    }
    printf("race: ok %d busy %d\n", r1.ok + r2.ok, r1.busy + r2.busy);
    ts_sampler_free(own);

    /* a caller thread with a small stack */
    EXPECT(ts_session_reset(s), TS_OK);
    /* The stack is ours (pthread_attr_setstack): a size-only request may be served from the C
     * library's cache of freed thread stacks with a larger one (glibc reuses up to 4x the size). */
    pthread_attr_t small;
    pthread_attr_init(&small);
    void *small_stack = aligned_alloc(4096, 64 << 10);
    pthread_attr_setstack(&small, small_stack, 64 << 10);
    pthread_t st;
    if (pthread_create(&st, &small, small_stack_prefill, &bc) != 0) { printf("FAIL: pthread_create\n"); failures++; }
    else pthread_join(st, NULL);
    pthread_attr_destroy(&small);
    free(small_stack);
    if (ts_session_n_past(s) != 0) { printf("FAIL: the refused prefill changed the session\n"); failures++; }

    /* status strings and frees of NULL */
    for (int st = 0; st <= 12; st++)
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
