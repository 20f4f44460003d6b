// Renders a conversation with llama.cpp's own built-in chat templates (llm_chat_apply_template of
// src/llama-chat.cpp, compiled from the llama.cpp of shared/reference) for make_chat_cases.py.
// Usage: llama_chat_builtin NAME ADD_ASSISTANT ROLE CONTENT [ROLE CONTENT ...]; prints the text.
#include <cstdio>
#include <string>
#include <vector>

#include "llama-chat.h"
#include "llama.h"

int main(int argc, char **argv) {
    if (argc < 3 || (argc - 3) % 2 != 0) {
        std::fprintf(stderr, "usage: %s NAME ADD_ASSISTANT [ROLE CONTENT]...\n", argv[0]);
        return 2;
    }
    std::vector<llama_chat_message> msgs;
    for (int i = 3; i + 1 < argc; i += 2) msgs.push_back({argv[i], argv[i + 1]});
    std::vector<const llama_chat_message *> ptrs;
    for (auto &m : msgs) ptrs.push_back(&m);
    std::string out;
    int32_t n = llm_chat_apply_template(llm_chat_template_from_str(argv[1]), ptrs, out, argv[2][0] == '1');
    if (n < 0) {
        std::fprintf(stderr, "llm_chat_apply_template failed (%d)\n", n);
        return 1;
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}
