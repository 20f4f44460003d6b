//! `tojson` as Hugging Face chat templates expect it: Python's `json.dumps` (what transformers
//! registers as the filter), not Jinja2's HTML-safe one. Same separators (`", "`, `": "`), keys
//! in insertion order, non-ASCII text kept (`ensure_ascii=False`), Python's float repr (`1.0`,
//! `1e+16`), and the `indent`, `separators`, `sort_keys` and `ensure_ascii` arguments.

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, ErrorKind, Value};

/// The options of one `tojson` call.
struct Options {
    ensure_ascii: bool,
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// The filter: `value | tojson`, `tojson(indent=2)`, positional arguments in the order of
/// transformers' signature (`ensure_ascii, indent, separators, sort_keys`).
pub fn tojson(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let arg = |i: usize, name: &str| -> Result<Option<Value>, Error> {
        let kw: Option<Value> = kwargs.get(name)?;
        Ok(kw
            .or_else(|| args.get(i).cloned())
            .filter(|v| !v.is_none() && !v.is_undefined()))
    };
    if args.len() > 4 {
        return Err(bad("tojson takes at most 4 positional arguments"));
    }
    let ensure_ascii = arg(0, "ensure_ascii")?.is_some_and(|v| v.is_true());
    let indent = match arg(1, "indent")? {
        None => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or_default().to_string()),
        Some(v) => {
            let n = i64::try_from(v).map_err(|_| bad("tojson: indent must be an integer or a string"))?;
            Some(" ".repeat(n.clamp(0, 64) as usize))
        }
    };
    let (mut item_sep, mut key_sep) = if indent.is_some() { (",", ": ") } else { (", ", ": ") };
    let seps = arg(2, "separators")?;
    let sep_strings: Vec<String>;
    if let Some(s) = seps {
        sep_strings = s
            .try_iter()
            .map_err(|_| bad("tojson: separators must be a pair of strings"))?
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .filter(|v| v.len() == 2)
            .ok_or_else(|| bad("tojson: separators must be a pair of strings"))?;
        item_sep = &sep_strings[0];
        key_sep = &sep_strings[1];
    }
    let sort_keys = arg(3, "sort_keys")?.is_some_and(|v| v.is_true());
    kwargs.assert_all_used()?;
    let opts = Options {
        ensure_ascii,
        indent,
        item_sep: item_sep.to_string(),
        key_sep: key_sep.to_string(),
        sort_keys,
    };
    let mut out = String::new();
    write_value(&mut out, value, &opts, 0)?;
    Ok(Value::from(out))
}

fn newline(out: &mut String, opts: &Options, level: usize) {
    if let Some(ind) = &opts.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(ind);
        }
    }
}

fn write_value(out: &mut String, v: &Value, opts: &Options, level: usize) -> Result<(), Error> {
    if level > 256 {
        return Err(bad("tojson: nesting deeper than 256 levels"));
    }
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(out, v),
        ValueKind::String => write_str(out, v.as_str().unwrap_or_default(), opts.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline(out, opts, level + 1);
                write_value(out, item, opts, level + 1)?;
            }
            newline(out, opts, level);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            if opts.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&opts.item_sep);
                }
                newline(out, opts, level + 1);
                // Python turns int, float, bool and None keys into strings.
                let key = match k.kind() {
                    ValueKind::String => k.as_str().unwrap_or_default().to_string(),
                    ValueKind::None => "null".into(),
                    ValueKind::Bool => (if k.is_true() { "true" } else { "false" }).into(),
                    ValueKind::Number => {
                        let mut s = String::new();
                        write_number(&mut s, k);
                        s
                    }
                    _ => {
                        return Err(bad(format!(
                            "tojson: keys must be str, int, float, bool or None, not {}",
                            k.kind()
                        )))
                    }
                };
                write_str(out, &key, opts.ensure_ascii);
                out.push_str(&opts.key_sep);
                write_value(out, &v.get_item(k)?, opts, level + 1)?;
            }
            newline(out, opts, level);
            out.push('}');
        }
        other => return Err(bad(format!("tojson: a {other} is not JSON serializable"))),
    }
    Ok(())
}

fn write_number(out: &mut String, v: &Value) {
    if v.is_integer() {
        out.push_str(&v.to_string());
    } else {
        out.push_str(&py_float(f64::try_from(v.clone()).unwrap_or(f64::NAN)));
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, fixed notation for decimal
/// exponents -4..16, otherwise `d.ddde±XX`; `NaN`, `Infinity` as json.dumps writes them.
pub fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e3", "1e-7", "0e0".
    let s = format!("{x:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mant) = match mant.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else if point as usize >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs()));
    }
    out
}

/// A JSON string literal as Python writes it.
fn write_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        for (x, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.0, "0.0"),
            (123.456, "123.456"),
            (f64::INFINITY, "Infinity"),
        ] {
            assert_eq!(py_float(x), want, "{x}");
        }
    }

    #[test]
    fn strings_escape_as_python_json() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\nd\u{1}é😀", false);
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é😀\"");
        s.clear();
        write_str(&mut s, "é😀\u{7f}", true);
        assert_eq!(s, "\"\\u00e9\\ud83d\\ude00\\u007f\"");
    }
}
