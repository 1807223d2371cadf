// Give this crate's tests, examples and doctests an rpath to the libovl that
// ovl-sys linked (cargo passes it here as DEP_OVL_LIB_DIR), so that they run
// without LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_OVL_LIB_DIR");
    let windows = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows");
    if let Ok(dir) = std::env::var("DEP_OVL_LIB_DIR") {
        if !windows {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir);
        }
    }
}
