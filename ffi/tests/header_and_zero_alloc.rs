//! `include/tensorsharp.h` does not drift from the library: every function it declares is
//! exported by libtensorsharp and every exported `ts_*` function is declared; the params
//! structs have the same size in C as in Rust. And the step-wise decode loop through the C ABI
//! allocates nothing after the session is created (counting global allocator).

mod common;

use std::ffi::CString;

use tensorsharp::*;
use tensorsharp_testkit::alloc::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::new();

/// The allocator counts every thread: the tests of this file run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn header() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/tensorsharp.h")).unwrap()
}

#[test]
fn header_declares_exactly_the_exported_functions() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = header();
    // Every `ts_name(` in the header is a declared function (typedef'd callbacks read `(*ts_x)(`).
    let mut declared: Vec<String> = Vec::new();
    let bytes = h.as_bytes();
    let mut i = 0;
    while let Some(at) = h[i..].find("ts_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let word_start = start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if word_start && bytes.get(end) == Some(&b'(') {
            declared.push(h[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    declared.sort();
    declared.dedup();
    // The exports are spread over ffi/src/*.rs, one module per object.
    let mut src = String::new();
    for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src")).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            src += &std::fs::read_to_string(&path).unwrap();
        }
    }
    let mut exported: Vec<String> = src
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub extern \"C\" fn "))
        .map(|l| l.split('(').next().unwrap().to_string())
        .collect();
    exported.sort();
    assert_eq!(declared, exported, "tensorsharp.h and ffi/src/*.rs disagree");
    // Status codes.
    for (name, v) in [
        ("TS_OK", TS_OK),
        ("TS_ERR_INVALID_ARG", TS_ERR_INVALID_ARG),
        ("TS_ERR_IO", TS_ERR_IO),
        ("TS_ERR_BAD_MODEL", TS_ERR_BAD_MODEL),
        ("TS_ERR_UNSUPPORTED", TS_ERR_UNSUPPORTED),
        ("TS_ERR_OVER_BUDGET", TS_ERR_OVER_BUDGET),
        ("TS_ERR_CONTEXT_FULL", TS_ERR_CONTEXT_FULL),
        ("TS_ERR_CANCELLED", TS_ERR_CANCELLED),
        ("TS_ERR_BUFFER_TOO_SMALL", TS_ERR_BUFFER_TOO_SMALL),
        ("TS_ERR_INTERNAL", TS_ERR_INTERNAL),
        ("TS_ERR_SYSTEM", TS_ERR_SYSTEM),
    ] {
        assert!(
            h.contains(&format!("#define {name} {v}")),
            "{name} = {v} missing from the header"
        );
    }
    assert!(h.contains(&format!("#define TS_ABI_VERSION {TS_ABI_VERSION}")));
    assert!(h.contains(&format!("#define TS_MODEL_MMAP {TS_MODEL_MMAP}u")));
}

#[test]
fn struct_sizes_agree_with_c() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("tsharp-ffi-sizes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join("sizes.c");
    std::fs::write(
        &c,
        "#include <stdio.h>\n#include \"tensorsharp.h\"\nint main(void) { printf(\"%zu %zu %zu %zu\\n\", \
         sizeof(ts_model_params), sizeof(ts_session_params), sizeof(ts_sampler_params), sizeof(ts_board_info)); \
         return 0; }\n",
    )
    .unwrap();
    let exe = dir.join("sizes");
    let st = std::process::Command::new("cc")
        .arg("-I")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/include"))
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(st.success());
    let out = String::from_utf8(std::process::Command::new(&exe).output().unwrap().stdout).unwrap();
    let want = format!(
        "{} {} {} {}",
        std::mem::size_of::<ts_model_params>(),
        std::mem::size_of::<ts_session_params>(),
        std::mem::size_of::<ts_sampler_params>(),
        std::mem::size_of::<ts_board_info>()
    );
    assert_eq!(out.trim(), want);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn step_wise_decode_through_the_c_abi_allocates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = CString::new(common::model_path().to_str().unwrap()).unwrap();
    let mut m = std::ptr::null_mut();
    assert_eq!(ts_model_load(path.as_ptr(), std::ptr::null(), &mut m), TS_OK);
    let mut sp: ts_session_params = unsafe { std::mem::zeroed() };
    ts_session_params_default(&mut sp);
    sp.n_ctx = 512;
    sp.n_threads = 2;
    let mut s = std::ptr::null_mut();
    assert_eq!(ts_session_create(m, &sp, &mut s), TS_OK);
    let mut pp: ts_sampler_params = unsafe { std::mem::zeroed() };
    ts_sampler_params_default(&mut pp);
    pp.temperature = 0.8;
    pp.top_k = 40;
    pp.top_p = 0.95;
    pp.min_p = 0.05;
    pp.repeat_penalty = 1.1;
    pp.penalty_last_n = 64;
    let mut sm = std::ptr::null_mut();
    assert_eq!(ts_sampler_create(m, &pp, &mut sm), TS_OK);
    let text = "Once upon a time";
    let mut toks = [0i32; 64];
    let mut n = 0usize;
    assert_eq!(
        ts_tokenize(m, text.as_ptr().cast(), text.len(), 1, 1, toks.as_mut_ptr(), 64, &mut n),
        TS_OK
    );
    let mut buf = [0u8; 256];
    // Warm-up, then the measured loop: prefill, 128 decode steps, detokenize each into a buffer.
    assert_eq!(ts_session_prefill(s, toks.as_ptr(), n), TS_OK);
    ts_session_reset(s);
    ALLOC.start();
    assert_eq!(ts_session_prefill(s, toks.as_ptr(), n), TS_OK);
    let mut steps = 0;
    while steps < 128 {
        let mut t = 0i32;
        assert_eq!(ts_session_decode_step(s, sm, &mut t), TS_OK);
        let mut len = 0usize;
        assert_eq!(
            ts_detokenize(m, &t, 1, buf.as_mut_ptr().cast(), buf.len(), &mut len),
            TS_OK
        );
        steps += 1;
        if ts_model_token_is_eog(m, t) != 0 {
            assert_eq!(ts_session_reset(s), TS_OK);
            assert_eq!(ts_session_prefill(s, toks.as_ptr(), n), TS_OK);
        }
    }
    let heap = ALLOC.stop();
    assert!(heap.is_zero(), "heap activity in the C-ABI decode loop: {heap:?}");
    ts_sampler_free(sm);
    ts_session_free(s);
    ts_model_free(m);
}
