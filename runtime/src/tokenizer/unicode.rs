//! Character classes of the pre-tokenizer rules (`\p{L}`, `\p{N}`, `\s`), and GPT-2's byte to
//! character map.

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// The classes the pre-tokenizers look at, as llama.cpp's unicode flags define them.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub(crate) struct Flags {
    pub letter: bool,
    pub number: bool,
    pub whitespace: bool,
    /// Assigned and not a non-whitespace control character (llama.cpp treats those as
    /// undefined, which matters for `[^\s\p{L}\p{N}]+` runs).
    pub defined: bool,
}

pub(crate) fn is_whitespace(c: char) -> bool {
    // The Unicode White_Space property, which Rust's `char::is_whitespace` implements.
    c.is_whitespace()
}

pub(crate) fn flags(c: char) -> Flags {
    let cat = get_general_category(c);
    let whitespace = is_whitespace(c);
    let letter = matches!(
        cat,
        G::UppercaseLetter | G::LowercaseLetter | G::TitlecaseLetter | G::ModifierLetter | G::OtherLetter
    );
    let number = matches!(cat, G::DecimalNumber | G::LetterNumber | G::OtherNumber);
    let defined = whitespace || !matches!(cat, G::Unassigned | G::Control);
    Flags {
        letter,
        number,
        whitespace,
        defined,
    }
}

/// GPT-2's reversible map from bytes to printable characters.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let keep = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        table[b as usize] = if keep {
            char::from(b)
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\u{FFFD}');
            n += 1;
            c
        };
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(flags('é').letter && flags('今').letter && flags('ж').letter);
        assert!(flags('7').number && flags('Ⅻ').number && !flags('7').letter);
        assert!(flags('\u{3000}').whitespace && flags('\n').whitespace);
        assert!(!flags('\u{FE0F}').letter && flags('\u{FE0F}').defined); // variation selector: a mark
        assert!(!flags('\u{0}').defined);
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
    }
}
