//! Gives the shared library a soname carrying the ABI major version (libtensorsharp.so.1).
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtensorsharp.so.1");
    println!("cargo:rerun-if-changed=build.rs");
}
