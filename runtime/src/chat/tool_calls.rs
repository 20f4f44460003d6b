//! Tool calls in a reply, parsed into `{"name": ..., "arguments": {...}}` objects: Qwen2.5's
//! (and Hermes') `<tool_call>{...}</tool_call>` blocks, or else a reply that is itself a call in
//! the generic JSON form — one object with `name` and `arguments` (or `parameters`), or an
//! array of them, bare or in Markdown code fences. Arguments given as a JSON string are parsed
//! when they hold JSON.

use serde_json::{json, Value};

/// The calls in `text` (empty when there are none or they do not parse).
pub fn parse(text: &str) -> Vec<Value> {
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<tool_call>") {
        let after = &rest[start + "<tool_call>".len()..];
        let (body, next) = match after.find("</tool_call>") {
            Some(end) => (&after[..end], &after[end + "</tool_call>".len()..]),
            None => (after, ""),
        };
        if let Some(c) = serde_json::from_str::<Value>(body.trim()).ok().and_then(call) {
            calls.push(c);
        }
        rest = next;
    }
    if !calls.is_empty() || text.contains("<tool_call>") {
        return calls;
    }
    let whole = json_calls(text.trim());
    if !whole.is_empty() {
        return whole;
    }
    // Small models often fence the call: ```json {...} ```.
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let body = &rest[open + 3..];
        let body = body.strip_prefix("json").unwrap_or(body);
        let (block, next) = match body.find("```") {
            Some(end) => (&body[..end], &body[end + 3..]),
            None => (body, ""),
        };
        calls.extend(json_calls(block.trim()));
        rest = next;
    }
    calls
}

/// The calls of a text that is one call or an array of calls in the generic JSON form.
fn json_calls(text: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(items)) => items.into_iter().filter_map(call).collect(),
        Ok(v) => call(v).into_iter().collect(),
        Err(_) => Vec::new(),
    }
}

/// `{"name", "arguments"}` from one object (OpenAI's `{"function": {...}}` wrapper accepted).
fn call(v: Value) -> Option<Value> {
    let v = match v.get("function") {
        Some(f) if f.is_object() => f.clone(),
        _ => v,
    };
    let name = v.get("name")?.as_str()?.to_string();
    let args = v
        .get("arguments")
        .or_else(|| v.get("parameters"))
        .cloned()
        .unwrap_or(json!({}));
    let args = match args {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        a => a,
    };
    Some(json!({ "name": name, "arguments": args }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen_blocks_and_generic_json() {
        let t = "Sure.\n<tool_call>\n{\"name\": \"move_arm\", \"arguments\": {\"joint\": \"elbow\", \"angle\": 45}}\n</tool_call>\n<tool_call>\n{\"name\": \"stop\", \"arguments\": \"{}\"}\n</tool_call>";
        assert_eq!(
            parse(t),
            vec![
                json!({"name": "move_arm", "arguments": {"joint": "elbow", "angle": 45}}),
                json!({"name": "stop", "arguments": {}})
            ]
        );
        assert_eq!(
            parse("{\"name\": \"stop\", \"parameters\": {\"now\": true}}"),
            vec![json!({"name": "stop", "arguments": {"now": true}})]
        );
        assert_eq!(
            parse("[{\"function\": {\"name\": \"a\", \"arguments\": {}}}]"),
            vec![json!({"name": "a", "arguments": {}})]
        );
        assert_eq!(
            parse("Here:\n```json\n{\"name\": \"stop\", \"arguments\": {}}\n```\nDone."),
            vec![json!({"name": "stop", "arguments": {}})]
        );
        assert!(parse("just text").is_empty());
        assert!(parse("```\nnot json\n```").is_empty());
        assert!(parse("<tool_call>not json</tool_call>").is_empty());
        assert!(parse("{\"no\": \"name\"}").is_empty());
        // An unterminated block (the reply hit its token limit) still yields a complete call.
        assert_eq!(parse("<tool_call>{\"name\": \"x\", \"arguments\": {}}").len(), 1);
    }
}
