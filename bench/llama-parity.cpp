// The parity measurement of tests/parity.rs, run on llama.cpp itself: how close llama.cpp's own
// build for another CPU (e.g. aarch64 under qemu) comes to the reference outputs in
// shared/reference (made by llama.cpp's x86 build). It calibrates what "correct" can mean on a
// tier that does not sum in the x86 orders. Built and run by bench/arm-parity.
//
//   llama-parity MODEL.gguf REFERENCE.json REFERENCE.logits.f32
//
// Prints, per model: cosine and top-8 agreement of the last-prompt-position logits of the first
// two prompts, and the teacher-forced argmax mismatches over every greedy step whose reference
// margin (top-1 minus top-2 logit) is at least 0.05. Flash attention is off, as in the reference.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <vector>

#include "llama.h"
#include "nlohmann/json.hpp"

static std::vector<int> top8(const float *v, int n) {
    std::vector<int> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + 8, idx.end(), [&](int a, int b) { return v[a] > v[b]; });
    idx.resize(8);
    std::sort(idx.begin(), idx.end());
    return idx;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf REFERENCE.json REFERENCE.logits.f32\n", argv[0]);
        return 2;
    }
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 256;
    cp.n_ubatch = 256;
    cp.n_threads = cp.n_threads_batch = 1;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context *ctx = llama_init_from_model(model, cp);
    const nlohmann::json ref = nlohmann::json::parse(std::ifstream(argv[2]));
    const int n_vocab = ref["n_vocab"].get<int>();
    std::vector<float> ref_logits;
    {
        std::ifstream f(argv[3], std::ios::binary);
        f.seekg(0, std::ios::end);
        ref_logits.resize(f.tellg() / sizeof(float));
        f.seekg(0);
        f.read(reinterpret_cast<char *>(ref_logits.data()), ref_logits.size() * sizeof(float));
    }
    int checked = 0, skipped = 0, mismatches = 0;
    std::string where;
    for (size_t ci = 0; ci < ref["greedy"].size(); ci++) {
        const auto &c = ref["greedy"][ci];
        std::vector<llama_token> prompt = c["prompt_tokens"].get<std::vector<llama_token>>();
        const std::vector<llama_token> want = c["tokens"].get<std::vector<llama_token>>();
        llama_memory_clear(llama_get_memory(ctx), true);
        if (llama_decode(ctx, llama_batch_get_one(prompt.data(), (int)prompt.size())) != 0) return 1;
        const float *lg = llama_get_logits_ith(ctx, -1);
        if (ci < 2 && ref_logits.size() >= (ci + 1) * (size_t)n_vocab) {
            const float *rl = ref_logits.data() + ci * n_vocab;
            double dot = 0, na = 0, nb = 0, mx = 0;
            for (int i = 0; i < n_vocab; i++) {
                dot += (double)lg[i] * rl[i];
                na += (double)lg[i] * lg[i];
                nb += (double)rl[i] * rl[i];
                mx = std::max(mx, (double)std::fabs(lg[i] - rl[i]));
            }
            printf("prompt %zu: cosine %.6f, max abs err %.3f, top-8 %s\n", ci, dot / std::sqrt(na * nb), mx,
                   top8(lg, n_vocab) == top8(rl, n_vocab) ? "equal" : "differ");
        }
        for (size_t i = 0; i < want.size(); i++) {
            const double margin = c["steps"][i]["margin"].get<double>();
            if (margin >= 0.05) {
                checked++;
                const int am = (int)(std::max_element(lg, lg + n_vocab) - lg);
                if (am != want[i]) {
                    mismatches++;
                    char b[96];
                    snprintf(b, sizeof b, " case %zu step %zu (margin %.3f)", ci, i, margin);
                    where += b;
                }
            } else {
                skipped++;
            }
            if (i + 1 < want.size()) {
                llama_token t = want[i];
                if (llama_decode(ctx, llama_batch_get_one(&t, 1)) != 0) return 1;
                lg = llama_get_logits_ith(ctx, -1);
            }
        }
    }
    printf("teacher forcing: %d steps checked, %d near-tie steps skipped, %d mismatches:%s\n", checked, skipped,
           mismatches, where.c_str());
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
