//! Any bytes, split into pieces of any sizes, through the streaming UTF-8 decoder of the
//! generation loop: the text equals `String::from_utf8_lossy` of the whole stream, whatever the
//! split (the first input byte seeds the piece sizes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tensorsharp_runtime::StreamDecoder;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, bytes)) = data.split_first() else {
        return;
    };
    let want = String::from_utf8_lossy(bytes);
    let mut d = StreamDecoder::new();
    let mut got = String::new();
    let mut rest = bytes;
    let mut s = seed as usize | 1;
    while !rest.is_empty() {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = (s >> 8) % 6 + 1;
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        d.push(piece, &mut |t| got.push_str(t));
        rest = tail;
    }
    d.flush(&mut |t| got.push_str(t));
    assert_eq!(got, want);
});
