/* generate MODEL.gguf PROMPT [N] — prints the greedy continuation of PROMPT through the C ABI,
 * then one line "tokens: id id ..." on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorsharp.h"

static int on_token(void *user, int32_t token, const char *piece, size_t len) {
    FILE *ids = user;
    fprintf(ids, " %d", token);
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int die(const char *what, ts_status s) {
    fprintf(stderr, "generate: %s: %s (%s)\n", what, ts_status_str(s), ts_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: generate MODEL.gguf PROMPT [N]\n");
        return 2;
    }
    const size_t n_predict = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 32;
    if (ts_abi_version() != TS_ABI_VERSION) {
        fprintf(stderr, "generate: library ABI %u, header %d\n", ts_abi_version(), TS_ABI_VERSION);
        return 1;
    }
    ts_model *model = NULL;
    ts_status s = ts_model_load(argv[1], NULL, &model);
    if (s != TS_OK) return die("load", s);

    size_t n_prompt = 0;
    s = ts_tokenize(model, argv[2], strlen(argv[2]), 1, 1, NULL, 0, &n_prompt);
    if (s != TS_ERR_BUFFER_TOO_SMALL && s != TS_OK) return die("tokenize (size)", s);
    int32_t *prompt = malloc(n_prompt * sizeof *prompt);
    s = ts_tokenize(model, argv[2], strlen(argv[2]), 1, 1, prompt, n_prompt, &n_prompt);
    if (s != TS_OK) return die("tokenize", s);

    ts_session_params sp;
    ts_session_params_default(&sp);
    sp.n_ctx = 512;
    sp.n_threads = 2;
    ts_session *session = NULL;
    s = ts_session_create(model, &sp, &session);
    if (s != TS_OK) return die("session", s);
    ts_sampler *sampler = NULL;
    s = ts_sampler_create(model, NULL, &sampler); /* greedy */
    if (s != TS_OK) return die("sampler", s);

    fprintf(stderr, "tokens:");
    size_t n_gen = 0;
    s = ts_session_generate(session, sampler, prompt, n_prompt, n_predict, on_token, stderr, &n_gen);
    fprintf(stderr, "\n");
    printf("\n");
    if (s != TS_OK) return die("generate", s);

    ts_sampler_free(sampler);
    ts_session_free(session);
    ts_model_free(model);
    free(prompt);
    return 0;
}
