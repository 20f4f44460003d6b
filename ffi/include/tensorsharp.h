/* tensorsharp.h — C ABI of TensorSharp, an on-device LLM runtime (libtensorsharp).
 *
 * Conventions
 *   - Opaque handles with create/free pairs: ts_model (read-only after load; may be shared by
 *     any number of threads and sessions), ts_session (one conversation: KV cache and buffers;
 *     one call at a time, except ts_session_cancel), ts_sampler (one call at a time). A call on
 *     a session or sampler that a call on another thread is using returns TS_ERR_BUSY and does
 *     nothing (checked with an atomic flag; nothing waits); use one session per thread.
 *   - Params structs start with `struct_size`; fill them with ts_*_params_default() and then
 *     change fields. A struct_size this library does not know gives TS_ERR_INVALID_ARG.
 *   - Every call returns a ts_status. ts_last_error() is the calling thread's message for the
 *     last failed call. NULL handles, NULL buffers with non-zero sizes and out-of-range values
 *     give TS_ERR_INVALID_ARG; no call aborts the process (panics are caught at the boundary and
 *     reported as TS_ERR_INTERNAL).
 *   - Ownership: handles returned through `out` parameters belong to the caller until freed
 *     with their free function (free of NULL is a no-op). Every other pointer argument is
 *     borrowed for the duration of the call only. Output buffers are caller-owned; when one is
 *     too small the call returns TS_ERR_BUFFER_TOO_SMALL and writes the needed size.
 *   - Stack: the calling thread computes a share of every prefill and decode step (n_threads
 *     counts it), in kernels that keep up to ~50 KiB of tiles and tables on the stack: give it at
 *     least 128 KiB free below the call. Each prefill/decode/generate checks this and returns
 *     TS_ERR_SYSTEM ("stack left ... kernels need ...") instead of overflowing; the kernels are
 *     built with -fstack-clash-protection. The library's own worker threads get 256 KiB.
 *   - Mapped models (TS_MODEL_MMAP): a model file truncated or rewritten in place while mapped
 *     makes the call in flight and every later one on that model return TS_ERR_IO (the process
 *     does not die of SIGBUS); free the model and load it again. Replace model files by rename.
 *   - Allocation: only ts_model_load, ts_session_create and ts_sampler_create allocate. The
 *     step-wise calls (ts_session_prefill, ts_session_decode_step) and ts_session_generate
 *     allocate nothing.
 *   - State after an error: the handle stays valid. A failed prefill/decode leaves the session's
 *     cache holding the chunks that completed (ts_session_n_past); ts_session_reset starts over.
 */
#ifndef TENSORSHARP_H
#define TENSORSHARP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_ABI_VERSION 1

typedef int ts_status;
#define TS_OK 0
#define TS_ERR_INVALID_ARG 1      /* NULL handle, bad size, out-of-range parameter */
#define TS_ERR_IO 2               /* a file (model, state) could not be read or written, or the model changed while mapped */
#define TS_ERR_BAD_MODEL 3        /* the model file is malformed */
#define TS_ERR_UNSUPPORTED 4      /* architecture, tokenizer or tensor type not supported */
#define TS_ERR_OVER_BUDGET 5      /* the memory plan exceeds the budget, or an allocation failed */
#define TS_ERR_CONTEXT_FULL 6     /* the tokens do not fit in the context */
#define TS_ERR_CANCELLED 7        /* ts_session_cancel was called */
#define TS_ERR_BUFFER_TOO_SMALL 8 /* the needed size was written to the size out-parameter */
#define TS_ERR_INTERNAL 9         /* a bug (caught panic); free the handle */
#define TS_ERR_SYSTEM 10          /* a system call failed (memory locking, threads), or the stack is too small */
#define TS_ERR_BUSY 11            /* the session or sampler is in use by a call on another thread */

typedef struct ts_model ts_model;
typedef struct ts_session ts_session;
typedef struct ts_sampler ts_sampler;

/* ts_model_params.flags: map the model file instead of reading it into huge-page memory
 * (instant load, pages shared with other processes, slower decode). */
#define TS_MODEL_MMAP 1u

typedef struct {
    uint32_t struct_size; /* sizeof(ts_model_params) */
    uint32_t flags;       /* TS_MODEL_* bits; 0: weights read into resident huge-page memory */
    uint64_t weights_ram_budget; /* bytes of weights to hold in RAM (the resident matrices and a
                                  * two-slot staging ring); the rest is streamed from the file
                                  * by a prefetch thread while decoding, with the same output.
                                  * 0: every weight in RAM. Not with TS_MODEL_MMAP. */
} ts_model_params;

typedef struct {
    uint32_t struct_size; /* sizeof(ts_session_params) */
    uint32_t n_ctx;       /* context length; 0: the model's, at most the board profile's */
    uint32_t n_batch;     /* prompt tokens per prefill chunk (default 64) */
    uint32_t n_threads;   /* threads, the caller included; 0: the board profile's (one per big
                           * core, pinned to them on big.LITTLE unless cpus is set) */
    uint32_t kv_type;     /* 0 f16 (default), 1 f32, 2 q8_0 */
    uint32_t mlock;       /* 0 off, 1 lock (warn if not permitted), 2 lock or fail */
    uint64_t ram_budget;  /* bytes for the whole plan; 0: the board profile's share of the
                           * cgroup limit or MemAvailable */
    const int32_t *cpus;  /* pin thread i to cpus[i % n_cpus]; NULL/0: unpinned (borrowed) */
    uint32_t n_cpus;
    int32_t rt_priority;  /* SCHED_FIFO 1..99 (logged warning when not permitted); 0: normal */
} ts_session_params;

typedef struct {
    uint32_t struct_size;    /* sizeof(ts_sampler_params) */
    uint32_t top_k;          /* 0: off */
    float temperature;       /* 0: greedy (default) */
    float top_p;             /* 1: off */
    float min_p;             /* 0: off */
    float repeat_penalty;    /* 1: off */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    uint32_t penalty_last_n; /* tokens the penalties look back over */
    uint32_t reserved;       /* 0 */
    uint64_t seed;
} ts_sampler_params;

/* The board this library detected (device tree, cpuinfo, sysfs, cgroups) and its profile's
 * defaults: what n_threads = 0, n_ctx = 0 and ram_budget = 0 resolve to. Filled by
 * ts_board_profile; strings are NUL-terminated (truncated to fit). */
#define TS_BOARD_MAX_CPUS 64
typedef struct {
    uint32_t struct_size;        /* set by the caller: sizeof(ts_board_info) */
    uint32_t n_threads;          /* default threads */
    uint32_t n_ctx;              /* context cap */
    uint32_t kv_type;            /* 0 f16, 1 f32, 2 q8_0 */
    uint64_t ram_budget;         /* bytes, read now; 0: unknown */
    uint64_t mem_bandwidth_mbs;  /* peak memory bandwidth, MB/s; 0: unknown */
    uint32_t cuda_cc;            /* CUDA compute capability x10 (87); 0: none known */
    uint32_t cuda_present;       /* 1: a CUDA driver and a GPU device node are present */
    uint32_t n_cpus;             /* default pinning: cpus[0..n_cpus]; 0: unpinned */
    uint32_t reserved;
    int32_t cpus[TS_BOARD_MAX_CPUS];
    char id[32];                 /* profile id, e.g. "jetson-orin-nano-8gb", "generic-x86-64" */
    char name[64];               /* board name (device-tree model) or the profile's */
    char tier[16];               /* kernel tier this library runs: "dotprod", "avx512", ... */
} ts_board_info;

/* Token callback of ts_session_generate: `piece` holds `len` bytes of complete UTF-8 (not
 * NUL-terminated; len may be 0 while a character is split over tokens). Return non-zero to stop. */
typedef int (*ts_token_cb)(void *user, int32_t token, const char *piece, size_t len);

/* Receives error messages (level 3). May be called from any thread that calls the library. */
typedef void (*ts_log_cb)(void *user, int level, const char *msg);

/* ---- library ------------------------------------------------------------------------- */
uint32_t ts_version(void);     /* major*10000 + minor*100 + patch; thread-safe */
uint32_t ts_abi_version(void); /* compare with TS_ABI_VERSION; thread-safe */
const char *ts_status_str(ts_status status); /* static string; thread-safe */
const char *ts_last_error(void); /* this thread's last error; valid until its next call */
/* Fills *out (out->struct_size = sizeof(ts_board_info) first) with this machine's board
 * profile; `tsharp board` prints the same with the reason for each value. Thread-safe. */
ts_status ts_board_profile(ts_board_info *out);
void ts_set_log_callback(ts_log_cb cb, void *user); /* NULL clears; thread-safe */

ts_status ts_model_params_default(ts_model_params *p);
ts_status ts_session_params_default(ts_session_params *p);
ts_status ts_sampler_params_default(ts_sampler_params *p);

/* ---- model (thread-safe after load) --------------------------------------------------- */
ts_status ts_model_load(const char *path, const ts_model_params *params /* may be NULL */, ts_model **out);
void ts_model_free(ts_model *model); /* sessions keep the model alive until they are freed */
uint32_t ts_model_n_vocab(const ts_model *model);
uint32_t ts_model_n_ctx_train(const ts_model *model);
int ts_model_token_is_eog(const ts_model *model, int32_t token);
/* A metadata value as text ("general.architecture" -> "llama", numbers formatted, arrays as
 * "[len]"), NUL-terminated into buf; *len gets the length without the NUL. No allocation. */
ts_status ts_model_meta(const ts_model *model, const char *key, char *buf, size_t cap, size_t *len);
/* Text into ids in caller memory; *n_tokens gets the full count, TS_ERR_BUFFER_TOO_SMALL when it
 * exceeds cap (call again with a larger buffer). Allocates a temporary list (not for a hot loop). */
ts_status ts_tokenize(const ts_model *model, const char *text, size_t len, int add_special, int parse_special,
                      int32_t *tokens, size_t cap, size_t *n_tokens);
ts_status ts_detokenize(const ts_model *model, const int32_t *tokens, size_t n, char *buf, size_t cap, size_t *len);
/* A conversation, JSON {"messages": [{"role": ..., "content": ...}, ...], "tools": [...],
 * "add_generation_prompt": true}, rendered through a chat template into buf (not NUL-terminated;
 * *len = bytes, the needed size with TS_ERR_BUFFER_TOO_SMALL). template_name: NULL for the model's
 * own (or the built-in for its architecture), a built-in (chatml, llama3, gemma, phi3) or a Jinja
 * file. Tokenize the result with parse_special = 1. Allocates; thread-safe. */
ts_status ts_chat_apply_template(const ts_model *model, const char *conversation_json, const char *template_name,
                                 char *buf, size_t cap, size_t *len);

/* ---- session (one thread at a time) --------------------------------------------------- */
ts_status ts_session_create(const ts_model *model, const ts_session_params *params /* may be NULL */,
                            ts_session **out);
void ts_session_free(ts_session *session);
ts_status ts_session_reset(ts_session *session); /* forget the conversation, clear the cancel flag */
uint32_t ts_session_n_past(ts_session *session);
ts_status ts_session_prefill(ts_session *session, const int32_t *tokens, size_t n);
ts_status ts_session_decode_step(ts_session *session, ts_sampler *sampler, int32_t *token);
ts_status ts_session_generate(ts_session *session, ts_sampler *sampler, const int32_t *prompt, size_t n_prompt,
                              size_t max_tokens, ts_token_cb cb, void *user, size_t *n_generated);
/* Conversation state (cached positions, their token ids, last logits; a versioned format with a
 * CRC-32) into caller buffers; no allocation. Save: TS_ERR_BUFFER_TOO_SMALL when cap is below the
 * size (ts_session_state_size). Load requires the same model file contents, context size and KV
 * type: state from another model or shape, or a corrupt buffer, is refused with
 * TS_ERR_INVALID_ARG and a ts_last_error() naming what differs; on error the session is unchanged. */
ts_status ts_session_state_size(ts_session *session, size_t *size);
ts_status ts_session_state_save(ts_session *session, uint8_t *buf, size_t cap, size_t *written);
ts_status ts_session_state_load(ts_session *session, const uint8_t *buf, size_t len);
/* The state in a file (prompt caches): written atomically (temporary file + rename); loading gives
 * TS_ERR_IO for a missing file, TS_ERR_INVALID_ARG for another model / shape or a damaged file. */
ts_status ts_session_state_save_file(ts_session *session, const char *path);
ts_status ts_session_state_load_file(ts_session *session, const char *path, size_t *n_positions /* may be NULL */);
/* Prompt reuse: keeps the longest cached prefix equal to the start of tokens (short of the last
 * token) and drops the rest; prefill or generate from tokens + *kept next. */
ts_status ts_session_keep_prefix(ts_session *session, const int32_t *tokens, size_t n, size_t *kept);
/* Any thread, or a signal handler: the running or next call returns TS_ERR_CANCELLED at the next
 * layer boundary; stays raised until ts_session_reset. */
ts_status ts_session_cancel(const ts_session *session);

/* ---- sampler (one thread at a time) --------------------------------------------------- */
ts_status ts_sampler_create(const ts_model *model, const ts_sampler_params *params /* NULL: greedy */,
                            ts_sampler **out);
void ts_sampler_free(ts_sampler *sampler);
ts_status ts_sampler_reset(ts_sampler *sampler);
/* Structured output: kind TS_CONSTRAINT_JSON_SCHEMA (text = a JSON Schema: the output is JSON that
 * validates) or TS_CONSTRAINT_GRAMMAR (text = llama.cpp GBNF or Lark); TS_CONSTRAINT_NONE lifts it.
 * TS_ERR_INVALID_ARG when it does not compile. Constrained steps allocate. */
#define TS_CONSTRAINT_NONE 0
#define TS_CONSTRAINT_JSON_SCHEMA 1
#define TS_CONSTRAINT_GRAMMAR 2
ts_status ts_sampler_set_constraint(ts_sampler *sampler, const ts_model *model, int kind, const char *text);

#ifdef __cplusplus
}
#endif
#endif /* TENSORSHARP_H */
