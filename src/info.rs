//! `tsharp info` and `tsharp kernels`.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use tensorsharp_kernels::Tier;
use tensorsharp_models::gguf::{MetaArray, MetaValue};
use tensorsharp_models::{GgufFile, ModelSummary};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub fn run(path: &Path, as_json: bool, max_items: usize) -> Result<()> {
    let f = GgufFile::open(path)?;
    let s = ModelSummary::from_gguf(&f)?;
    let out = &mut std::io::stdout().lock();
    // A closed pipe (`tsharp info m.gguf | head`) ends quietly: `main` treats it so for every
    // command.
    if as_json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&to_json(path, &f, &s, max_items))?
        )?;
    } else {
        print_text(out, path, &f, &s, max_items)?;
    }
    Ok(())
}

pub fn kernels() -> Result<()> {
    let chosen = tensorsharp_runtime::board::tier();
    for t in Tier::ALL {
        let state = if t.is_supported() {
            "supported"
        } else if t.is_compiled() {
            "compiled, not supported by this CPU"
        } else {
            "not compiled for this architecture"
        };
        outln!("{:8} {state}", t.name())?;
    }
    match chosen {
        Ok(t) => outln!(
            "selected: {t} (board profile {}; override with {}=...)",
            tensorsharp_runtime::board::host().defaults.profile.id,
            tensorsharp_kernels::TIER_ENV
        )?,
        Err(e) => outln!("selected: none: {e}")?,
    }
    Ok(())
}

fn shape(dims: &[u64]) -> String {
    dims.iter().map(u64::to_string).collect::<Vec<_>>().join(" x ")
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / 1024f64.powi(3))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / 1024f64.powi(2))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn hparam_rows(s: &ModelSummary) -> Vec<(&'static str, Value)> {
    let h = &s.hparams;
    vec![
        ("n_layers", json!(h.n_layers)),
        ("n_ctx_train", json!(h.n_ctx_train)),
        ("n_embd", json!(h.n_embd)),
        ("n_ff", json!(h.n_ff)),
        ("n_head", json!(h.n_head)),
        ("n_head_kv", json!(h.n_head_kv)),
        ("head_dim", json!(h.head_dim)),
        ("rope_freq_base", json!(h.rope_freq_base)),
        ("rms_eps", json!(h.rms_eps)),
        ("sliding_window", json!(h.sliding_window)),
        ("vocab_size", json!(h.vocab_size)),
    ]
}

fn print_text(
    out: &mut impl Write,
    path: &Path,
    f: &GgufFile,
    s: &ModelSummary,
    max_items: usize,
) -> std::io::Result<()> {
    writeln!(out, "file:          {}", path.display())?;
    writeln!(
        out,
        "gguf version:  {} (alignment {}, data at offset {})",
        f.version(),
        f.alignment(),
        f.data_offset()
    )?;
    writeln!(out, "architecture:  {}", s.architecture.as_deref().unwrap_or("(none)"))?;
    if let Some(n) = &s.name {
        writeln!(out, "name:          {n}")?;
    }
    writeln!(out, "parameters:    {} ({:.1} M)", s.n_params, s.n_params as f64 / 1e6)?;
    writeln!(out, "tensor data:   {} ({} bytes)", human(s.n_bytes), s.n_bytes)?;
    writeln!(out, "\nhyperparameters:")?;
    for (k, v) in hparam_rows(s) {
        if !v.is_null() {
            writeln!(out, "  {k:16} {v}")?;
        }
    }
    writeln!(out, "\ntensor types:")?;
    for (t, tot) in &s.by_type {
        writeln!(
            out,
            "  {:8} {:4} tensors {:>12} elements {:>12}",
            t.name(),
            tot.tensors,
            tot.elements,
            human(tot.bytes)
        )?;
    }
    writeln!(out, "\nmetadata ({} keys):", f.metadata().len())?;
    for (k, v) in f.metadata() {
        writeln!(out, "  {k:48} {:6} {}", type_label(v), v.display(max_items))?;
    }
    writeln!(out, "\ntensors ({}):", f.tensors().len())?;
    writeln!(
        out,
        "  {:40} {:7} {:>20} {:>12} {:>12}",
        "name", "type", "shape", "bytes", "offset"
    )?;
    for t in f.tensors() {
        writeln!(
            out,
            "  {:40} {:7} {:>20} {:>12} {:>12}",
            t.name,
            t.ggml_type.name(),
            shape(&t.dims),
            t.n_bytes,
            t.file_offset
        )?;
    }
    Ok(())
}

fn type_label(v: &MetaValue) -> String {
    match v {
        MetaValue::Array(a) => format!("{}[{}]", a.elem_type().name(), a.len()),
        _ => v.value_type().name().to_owned(),
    }
}

fn value_json(v: &MetaValue, max_items: usize) -> Value {
    match v {
        MetaValue::String(s) => json!(s),
        MetaValue::Bool(b) => json!(b),
        MetaValue::F32(x) => json!(x),
        MetaValue::F64(x) => json!(x),
        MetaValue::Array(a) => array_json(a, max_items),
        other => other
            .as_i64()
            .map(|i| json!(i))
            .or_else(|| other.as_u64().map(|u| json!(u)))
            .unwrap_or(Value::Null),
    }
}

/// Arrays are summarised: element type, length, and the first `max_items` items.
fn array_json(a: &MetaArray, max_items: usize) -> Value {
    fn head<T: Clone + Into<Value>>(v: &[T], n: usize) -> Value {
        Value::Array(v.iter().take(n).cloned().map(Into::into).collect())
    }
    let items = match a {
        MetaArray::U8(v) => head(v, max_items),
        MetaArray::I8(v) => head(v, max_items),
        MetaArray::U16(v) => head(v, max_items),
        MetaArray::I16(v) => head(v, max_items),
        MetaArray::U32(v) => head(v, max_items),
        MetaArray::I32(v) => head(v, max_items),
        MetaArray::F32(v) => head(v, max_items),
        MetaArray::Bool(v) => head(v, max_items),
        MetaArray::String(v) => head(v, max_items),
        MetaArray::U64(v) => head(v, max_items),
        MetaArray::I64(v) => head(v, max_items),
        MetaArray::F64(v) => head(v, max_items),
        MetaArray::Array(v) => Value::Array(v.iter().take(max_items).map(|x| array_json(x, max_items)).collect()),
    };
    json!({ "elem_type": a.elem_type().name(), "len": a.len(), "head": items })
}

fn to_json(path: &Path, f: &GgufFile, s: &ModelSummary, max_items: usize) -> Value {
    let hparams: serde_json::Map<String, Value> = hparam_rows(s).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let by_type: serde_json::Map<String, Value> = s
        .by_type
        .iter()
        .map(|(t, tot)| {
            (
                t.name().to_owned(),
                json!({"tensors": tot.tensors, "elements": tot.elements, "bytes": tot.bytes}),
            )
        })
        .collect();
    json!({
        "file": path.display().to_string(),
        "file_bytes": f.len(),
        "gguf_version": f.version(),
        "alignment": f.alignment(),
        "data_offset": f.data_offset(),
        "architecture": s.architecture,
        "name": s.name,
        "n_params": s.n_params,
        "tensor_bytes": s.n_bytes,
        "hyperparameters": hparams,
        "types": by_type,
        "metadata": f.metadata().iter().map(|(k, v)| json!({"key": k, "type": type_label(v), "value": value_json(v, max_items)})).collect::<Vec<_>>(),
        "tensors": f.tensors().iter().map(|t| json!({
            "name": t.name, "type": t.ggml_type.name(), "type_id": t.ggml_type.id(), "shape": t.dims,
            "elements": t.n_elements, "bytes": t.n_bytes, "offset": t.file_offset,
        })).collect::<Vec<_>>(),
    })
}
