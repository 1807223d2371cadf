// Finds libovl for linking: OVL_LIB_DIR, else the in-tree CMake build
// (<repo>/build), else `pkg-config ovl`, else the linker's default path.
// Zero dependencies: pkg-config is run as a program, not through a crate.
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn lib_names(target_os: &str) -> &'static [&'static str] {
    if target_os == "windows" {
        // mingw import library first, then MSVC-style names, then the DLL
        // itself (GNU ld can link against a DLL directly).
        &[
            "libovl.dll.a",
            "ovl.dll.a",
            "ovl.lib",
            "libovl.a",
            "ovl.dll",
            "libovl.dll",
        ]
    } else if target_os == "macos" {
        &["libovl.dylib"]
    } else {
        &["libovl.so"]
    }
}

fn has_lib(dir: &Path, target_os: &str) -> bool {
    lib_names(target_os).iter().any(|n| dir.join(n).exists())
}

/// `-L` directories from `pkg-config --libs-only-L ovl`, or None if
/// pkg-config or the package is missing.
fn pkg_config(args: &[&str]) -> Option<std::process::Output> {
    let pc = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    Command::new(pc).args(args).output().ok()
}

fn pkg_config_dirs() -> Option<Vec<PathBuf>> {
    let out = pkg_config(&["--libs-only-L", "ovl"])?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut dirs: Vec<PathBuf> = text
        .split_whitespace()
        .filter_map(|t| t.strip_prefix("-L"))
        .map(PathBuf::from)
        .collect();
    if dirs.is_empty() {
        // Installed in a default linker directory: pkg-config omits -L.
        // Ask for libdir so that the rpath still names it.
        if let Some(o) = pkg_config(&["--variable=libdir", "ovl"]) {
            let d = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if o.status.success() && !d.is_empty() {
                dirs.push(PathBuf::from(d));
            }
        }
    }
    Some(dirs)
}

/// The host's pkg-config describes host libraries: use it for a cross build
/// only when asked (PKG_CONFIG_ALLOW_CROSS=1, the pkg-config crate's rule).
fn cross_ok() -> bool {
    env::var("TARGET").ok() == env::var("HOST").ok()
        || env::var("PKG_CONFIG_ALLOW_CROSS").as_deref() == Ok("1")
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=OVL_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_ALLOW_CROSS");

    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    // bindings/rust/ovl-sys -> repository root.
    let in_tree = manifest.join("../../../build");

    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut how = "default linker search path";
    if let Some(d) = env::var_os("OVL_LIB_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
        how = "OVL_LIB_DIR";
    } else if has_lib(&in_tree, &target_os) {
        dirs.push(in_tree.canonicalize().unwrap_or(in_tree.clone()));
        how = "in-tree build";
    } else if let Some(d) = cross_ok().then(pkg_config_dirs).flatten() {
        dirs = d;
        how = "pkg-config";
    } else {
        println!(
            "cargo:warning=ovl-sys: libovl not found in OVL_LIB_DIR, {} or pkg-config; \
             relying on the linker's default search path",
            in_tree.display()
        );
    }
    if how != "OVL_LIB_DIR" {
        // Until the in-tree library exists, re-run so that it is picked up as
        // soon as CMake has built it (a missing path always counts as changed).
        println!(
            "cargo:rerun-if-changed={}",
            in_tree.join(lib_names(&target_os)[0]).display()
        );
    }

    for d in &dirs {
        println!("cargo:rustc-link-search=native={}", d.display());
    }
    println!("cargo:rustc-link-lib=dylib=ovl");

    if let Some(d) = dirs.first() {
        // Exported to dependents' build scripts as DEP_OVL_LIB_DIR.
        println!("cargo:lib_dir={}", d.display());
        // rustc-link-arg only reaches this package's own tests, examples
        // and benches; dependents add their own rpath from DEP_OVL_LIB_DIR.
        if target_os != "windows" {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", d.display());
        }
    }
    println!("cargo:how={}", how);
}
