//! Embeds the directory of the libpython that `gatehouse-wsgi` links against as the rpath of the
//! `gatehouse` binary (and of this package's tests and examples).
//!
//! `gatehouse-wsgi` declares `links = "gatehouse_python"`, so its build script's `libdir` output
//! reaches us as `DEP_GATEHOUSE_PYTHON_LIBDIR` (only when the `wsgi` feature pulls it in). Link
//! arguments of a library never reach a final binary, hence this script: without the rpath the
//! binary fails to start where that libpython is not on the loader's path, or silently embeds
//! another one (a distro libpython under /usr) where one is. Check with
//! `readelf -d target/debug/gatehouse | grep -i runpath`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DEP_GATEHOUSE_PYTHON_LIBDIR");
    if let Ok(dir) = std::env::var("DEP_GATEHOUSE_PYTHON_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
