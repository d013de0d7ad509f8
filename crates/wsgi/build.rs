//! Embeds the directory of the libpython we link against as the rpath of our test binaries, and
//! hands it (with the interpreter's executable and version) to the code and to dependents.
//!
//! `cargo:rustc-link-arg` from a library's build script reaches only that package's own tests,
//! examples and benches, never the final `gatehouse` binary: the root build script reads
//! `DEP_GATEHOUSE_PYTHON_LIBDIR` (from our `links` key) and emits the same argument for its
//! binaries. Without the rpath the binary fails to start where libpython is not on the loader's
//! path, or silently loads another one (a distro libpython under /usr) where one is.

fn main() {
    let config = pyo3_build_config::get();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-env-changed=PYO3_CONFIG_FILE");
    let version = config.version.to_string();
    println!("cargo:rustc-env=GATEHOUSE_PYTHON_VERSION={version}");
    let executable = config.executable.clone().unwrap_or_default();
    println!("cargo:rustc-env=GATEHOUSE_PYTHON_EXECUTABLE={executable}");
    println!("cargo:executable={executable}");
    let shared = if config.shared { "1" } else { "0" };
    println!("cargo:rustc-env=GATEHOUSE_PYTHON_SHARED={shared}");
    let lib_dir = match (&config.lib_dir, config.shared) {
        (Some(dir), true) => dir.clone(),
        _ => String::new(),
    };
    println!("cargo:rustc-env=GATEHOUSE_PYTHON_LIBDIR={lib_dir}");
    if !lib_dir.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
        println!("cargo:libdir={lib_dir}");
    }
}
