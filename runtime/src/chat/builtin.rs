//! Named chat templates for models whose GGUF carries none (`--chat-template NAME`), written as
//! Jinja so they render through the same engine, each producing exactly what llama.cpp's
//! `llama_chat_apply_template` writes for that name (checked against llama.cpp's own code by
//! `tests/tools/make_chat_cases.py`). `ctrim` is llama.cpp's `trim` (C `isspace`).

/// `<|im_start|>role\ncontent<|im_end|>\n` per message (Qwen, SmolLM, OpenHermes, …);
/// llama.cpp's fallback for an unknown template.
pub const CHATML: &str = "{%- for m in messages -%}
{{- '<|im_start|>' ~ m.role ~ '\\n' ~ (m.content if m.content is string else '') ~ '<|im_end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";

/// Llama 3: header ids around the role, the trimmed content, `<|eot_id|>` (the tokenizer adds
/// `<|begin_of_text|>`).
pub const LLAMA3: &str = "{%- for m in messages -%}
{{- '<|start_header_id|>' ~ m.role ~ '<|end_header_id|>\\n\\n' ~ ((m.content if m.content is string else '') | ctrim) ~ '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}";

/// Gemma: no system role — the system text (trimmed; several system messages are joined) opens
/// the next user turn, followed by a blank line; `assistant` is `model`.
pub const GEMMA: &str = "{%- set ns = namespace(system='') -%}
{%- for m in messages -%}
{%- set content = (m.content if m.content is string else '') | ctrim -%}
{%- if m.role == 'system' -%}
{%- set ns.system = ns.system ~ content -%}
{%- else -%}
{%- set role = 'model' if m.role == 'assistant' else m.role -%}
{{- '<start_of_turn>' ~ role ~ '\\n' -}}
{%- if ns.system and role != 'model' -%}{{- ns.system ~ '\\n\\n' -}}{%- set ns.system = '' -%}{%- endif -%}
{{- content ~ '<end_of_turn>\\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}";

/// Phi-3: `<|role|>\ncontent<|end|>\n`.
pub const PHI3: &str = "{%- for m in messages -%}
{{- '<|' ~ m.role ~ '|>\\n' ~ (m.content if m.content is string else '') ~ '<|end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}";

/// The built-ins by name.
pub const BUILTINS: &[(&str, &str)] = &[("chatml", CHATML), ("llama3", LLAMA3), ("gemma", GEMMA), ("phi3", PHI3)];

/// The built-in for a model without a template: by architecture, and for Llama by its
/// vocabulary (Llama 3 has `<|start_header_id|>`); ChatML otherwise, as llama.cpp.
pub fn for_architecture(arch: &str, has_token: impl Fn(&str) -> bool) -> &'static str {
    match arch {
        a if a.starts_with("gemma") => "gemma",
        "phi3" => "phi3",
        "llama" if has_token("<|start_header_id|>") => "llama3",
        _ => "chatml",
    }
}
