//! llama.cpp's GBNF grammar syntax, translated to llguidance's Lark syntax.
//!
//! GBNF (llama.cpp `grammars/README.md`): `name ::= alternatives` rules, `root` the start;
//! names of letters, digits and dashes; `"literal"` strings and `[a-z]` / `[^"\\]` character
//! classes with the escapes `\n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH`; `.` any character;
//! groups `( )`, `|`, `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`; `#` comments. A rule ends at the end
//! of its line unless a group is open or the line ends after `|`. Lark: `start` is the root,
//! names are `[a-z_][a-z0-9_]*` (dashes become underscores; collisions are numbered), strings
//! are JSON strings, character classes become `/[...]/` regexes with every character written
//! `\x{HEX}`, `.` becomes `/(?s:.)/`.

use std::collections::HashMap;

/// Whether `text` reads as GBNF (a `::=` rule) rather than Lark.
pub fn looks_like_gbnf(text: &str) -> bool {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .any(|l| l.contains("::="))
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

type Res<T> = std::result::Result<T, String>;

impl Parser<'_> {
    fn line(&self) -> usize {
        1 + self.s[..self.pos.min(self.s.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    fn err<T>(&self, msg: impl Into<String>) -> Res<T> {
        Err(format!("line {}: {}", self.line(), msg.into()))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Skips spaces, tabs and comments; newlines too when `newlines`.
    fn space(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' => self.pos += 1,
                b'\r' | b'\n' if newlines => self.pos += 1,
                b'#' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn name(&mut self) -> Res<String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            self.pos += 1;
        }
        if start == self.pos {
            return self.err("expected a rule name");
        }
        Ok(self.text[start..self.pos].to_string())
    }

    /// One character of a literal or class, with its escapes.
    fn char(&mut self) -> Res<char> {
        let rest = &self.text[self.pos..];
        let mut it = rest.chars();
        let Some(c) = it.next() else {
            return self.err("unexpected end of grammar");
        };
        if c != '\\' {
            self.pos += c.len_utf8();
            return Ok(c);
        }
        let Some(e) = it.next() else {
            return self.err("unexpected end of grammar after \\");
        };
        self.pos += 2;
        let hex = |p: &mut Self, n: usize| -> Res<char> {
            let h = p
                .text
                .get(p.pos..p.pos + n)
                .ok_or_else(|| format!("line {}: short escape", p.line()))?;
            let v = u32::from_str_radix(h, 16).map_err(|_| format!("line {}: bad escape \\{e}{h}", p.line()))?;
            p.pos += n;
            char::from_u32(v).ok_or_else(|| format!("line {}: escape {v:#x} is not a character", p.line()))
        };
        match e {
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'x' => hex(self, 2),
            'u' => hex(self, 4),
            'U' => hex(self, 8),
            '\\' | '"' | '[' | ']' | '-' | '^' | '/' => Ok(e),
            _ => self.err(format!("unknown escape \\{e}")),
        }
    }

    fn literal(&mut self) -> Res<String> {
        self.pos += 1; // "
        let mut s = String::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => return self.err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(serde_json::to_string(&s).unwrap_or_default());
                }
                _ => s.push(self.char()?),
            }
        }
    }

    fn class(&mut self) -> Res<String> {
        self.pos += 1; // [
        let mut out = String::from("/[");
        if self.peek() == Some(b'^') {
            self.pos += 1;
            out.push('^');
        }
        let mut any = false;
        loop {
            match self.peek() {
                None | Some(b'\n') => return self.err("unterminated character class"),
                Some(b']') => {
                    self.pos += 1;
                    if !any {
                        return self.err("empty character class");
                    }
                    out.push_str("]/");
                    return Ok(out);
                }
                _ => {
                    let lo = self.char()?;
                    out.push_str(&format!("\\x{{{:x}}}", lo as u32));
                    if self.peek() == Some(b'-') && self.s.get(self.pos + 1) != Some(&b']') {
                        self.pos += 1;
                        let hi = self.char()?;
                        if hi < lo {
                            return self.err(format!("range {lo:?}-{hi:?} is reversed"));
                        }
                        out.push_str(&format!("-\\x{{{:x}}}", hi as u32));
                    }
                    any = true;
                }
            }
        }
    }

    fn repeat(&mut self) -> Res<String> {
        let start = self.pos;
        self.pos += 1; // {
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || c == b',' || c == b' ')
        {
            self.pos += 1;
        }
        if self.peek() != Some(b'}') {
            return self.err("expected } after a repetition count");
        }
        self.pos += 1;
        let body: String = self.text[start..self.pos].chars().filter(|c| *c != ' ').collect();
        if body == "{}" || body == "{,}" || body.starts_with("{,") {
            return self.err(format!("repetition {body} needs a minimum"));
        }
        Ok(body)
    }

    /// Alternatives up to the end of the rule (`nested`: inside a group, up to its `)`).
    fn alternates(&mut self, names: &HashMap<String, String>, nested: bool) -> Res<String> {
        let mut alts = vec![self.sequence(names, nested)?];
        while self.peek() == Some(b'|') {
            self.pos += 1;
            self.space(true);
            alts.push(self.sequence(names, nested)?);
        }
        Ok(alts.join(" | "))
    }

    fn sequence(&mut self, names: &HashMap<String, String>, nested: bool) -> Res<String> {
        let mut items: Vec<String> = Vec::new();
        loop {
            self.space(nested);
            let item = match self.peek() {
                Some(b'"') => self.literal()?,
                Some(b'[') => self.class()?,
                Some(b'.') => {
                    self.pos += 1;
                    "/(?s:.)/".to_string()
                }
                Some(b'(') => {
                    self.pos += 1;
                    self.space(true);
                    let inner = self.alternates(names, true)?;
                    self.space(true);
                    if self.peek() != Some(b')') {
                        return self.err("expected )");
                    }
                    self.pos += 1;
                    format!("({inner})")
                }
                Some(c) if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' => {
                    let save = self.pos;
                    let n = self.name()?;
                    // The next rule's `name ::=` ends this one.
                    let after = self.pos;
                    self.space(false);
                    if self.text[self.pos..].starts_with("::=") {
                        self.pos = save;
                        break;
                    }
                    self.pos = after;
                    match names.get(&n) {
                        Some(l) => l.clone(),
                        None => return self.err(format!("rule '{n}' is used but not defined")),
                    }
                }
                Some(b'*') | Some(b'+') | Some(b'?') | Some(b'{') => {
                    let Some(last) = items.last_mut() else {
                        return self.err("a repetition operator with nothing before it");
                    };
                    let op = if self.peek() == Some(b'{') {
                        self.repeat()?
                    } else {
                        self.pos += 1;
                        (self.s[self.pos - 1] as char).to_string()
                    };
                    *last = format!("({last}){op}");
                    continue;
                }
                Some(b'<') => return self.err("token references (<...>) are not supported"),
                _ => break,
            };
            items.push(item);
        }
        if items.is_empty() {
            items.push("\"\"".into());
        }
        Ok(items.join(" "))
    }
}

/// Translates a GBNF grammar to Lark; the error names the line.
pub fn to_lark(text: &str) -> std::result::Result<String, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
    };
    // First pass: the rule names, mapped to Lark names.
    let mut names: HashMap<String, String> = HashMap::new();
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut order = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        if let Some((lhs, _)) = code.split_once("::=") {
            let n = lhs.trim();
            if n.is_empty() || !n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
                return Err(format!("line {}: bad rule name '{n}'", i + 1));
            }
            if names.contains_key(n) {
                return Err(format!("line {}: rule '{n}' is defined twice", i + 1));
            }
            let mut l = if n == "root" {
                "start".to_string()
            } else {
                let mut l: String = n.to_ascii_lowercase().replace('-', "_");
                if l.starts_with(|c: char| c.is_ascii_digit()) || l == "start" {
                    l.insert_str(0, "r_");
                }
                l
            };
            let k = used.entry(l.clone()).or_insert(0);
            *k += 1;
            if *k > 1 {
                l = format!("{l}_{k}");
            }
            names.insert(n.to_string(), l);
            order.push(n.to_string());
        }
    }
    if !names.contains_key("root") {
        return Err("no 'root' rule".into());
    }
    // Second pass: each rule's body.
    let mut out = String::new();
    loop {
        p.space(true);
        if p.pos >= p.s.len() {
            break;
        }
        let n = p.name()?;
        p.space(false);
        if !p.text[p.pos..].starts_with("::=") {
            return p.err(format!("expected ::= after '{n}'"));
        }
        p.pos += 3;
        p.space(true);
        let body = p.alternates(&names, false)?;
        p.space(false);
        if !matches!(p.peek(), None | Some(b'\n') | Some(b'\r')) && !p.text[p.pos..].trim_start().is_empty() {
            // The next rule may start on the same logical line only after a newline.
            let save = p.pos;
            if p.name().is_err() {
                p.pos = save;
                return p.err(format!("unexpected '{}'", p.peek().map(|c| c as char).unwrap_or(' ')));
            }
            p.pos = save;
        }
        out.push_str(&format!("{}: {body}\n", names[&n]));
    }
    let _ = order;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_rules_literals_classes_and_repetitions() {
        let g = r#"
# a robot command
root ::= "move " joint " " angle | "stop"
joint ::= "base" | "elbow" # comment
angle ::= "-"? [0-9]{1,2} ("." [0-9])?
ws-x ::= [ \t\n]* [^"\\] .
"#;
        assert!(looks_like_gbnf(g));
        let l = to_lark(g).unwrap();
        assert_eq!(
            l,
            "start: \"move \" joint \" \" angle | \"stop\"\n\
             joint: \"base\" | \"elbow\"\n\
             angle: (\"-\")? (/[\\x{30}-\\x{39}]/){1,2} ((\".\" /[\\x{30}-\\x{39}]/))?\n\
             ws_x: (/[\\x{20}\\x{9}\\x{a}]/)* /[^\\x{22}\\x{5c}]/ /(?s:.)/\n"
        );
    }

    #[test]
    fn continuation_lines_and_errors() {
        let g = "root ::= a |\n  b\na ::= (\n \"x\"\n | \"y\" )\nb ::= \"\\u00e9\\x41\"\n";
        assert_eq!(to_lark(g).unwrap(), "start: a | b\na: (\"x\" | \"y\")\nb: \"éA\"\n");
        for (bad, want) in [
            ("root ::= missing", "not defined"),
            ("x ::= \"a\"", "no 'root'"),
            ("root ::= \"abc", "unterminated string"),
            ("root ::= [a-", "unexpected end"),
            ("root ::= [z-a]", "reversed"),
            ("root ::= * \"a\"", "nothing before"),
            ("root ::= \"a\"\nroot ::= \"b\"", "defined twice"),
            ("root ::= \"\\q\"", "unknown escape"),
            ("root ::= (\"a\"", "expected )"),
        ] {
            let e = to_lark(bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        assert!(!looks_like_gbnf("start: \"a\" # x ::= y"));
    }
}
