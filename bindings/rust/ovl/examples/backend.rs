//! Prints the backend a default port gets (honouring `OVL_BACKEND`) and why
//! the library's automatic choice is what it is. Exits with status 3 if the
//! requested backend is unavailable on this host (scripts use that to skip
//! it), 1 on any other error.
//!
//!     OVL_BACKEND=threads cargo run -q --example backend
fn main() {
    let (auto, why) = ovl::Backend::auto_choice();
    match ovl::Port::new() {
        Ok(port) => {
            println!(
                "{} (auto would pick {:?}: {})",
                port.backend_name(),
                auto,
                why
            );
        }
        Err(e) if e.code() == ovl::sys::OVL_EUNAVAIL => {
            eprintln!("unavailable: {} (auto would pick {:?}: {})", e, auto, why);
            std::process::exit(3);
        }
        Err(e) => {
            eprintln!("cannot create a port: {}", e);
            std::process::exit(1);
        }
    }
}
