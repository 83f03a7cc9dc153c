//! Links the binary's unwinder statically on glibc Linux instead of loading
//! `libgcc_s.so.1` at every start (docs/PERFORMANCE.md, "Where a `get` spent its time").
//!
//! Every helper call is a new process, so what the dynamic loader does before `main`
//! is paid on every `get`. `libgcc_s.so.1` costs one more library to open and map and,
//! above all, its constructor (`__cpu_indicator_init`) runs CPUID about a dozen times,
//! which traps to the hypervisor in a VM (5–14 µs each on the machine measured). The
//! static unwinder `libgcc_eh.a` (the one the static `crt-static` build links) has no
//! such constructor, and nothing else in the process needs `libgcc_s`.
//!
//! How: rustc passes `-lgcc_s` itself, so a linker script named `libgcc_s.so` that
//! names `libgcc_eh.a` is put first on the binaries' library path (`INPUT(path)`, which
//! GNU ld and lld both read). Only for the binaries (tests link as before), only when
//! building on glibc Linux for this host without `crt-static` (the static build already
//! links `libgcc_eh`), and only when the C compiler knows where `libgcc_eh.a` is; in
//! every other case nothing changes. PIE, full RELRO and BIND_NOW are untouched.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let static_crt = env("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    if env("CARGO_CFG_TARGET_OS") != "linux"
        || env("CARGO_CFG_TARGET_ENV") != "gnu"
        || static_crt
        || env("HOST") != env("TARGET")
    {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let Ok(out) = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let found = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Without the library, the compiler prints the bare name back.
    if !out.status.success() || !found.is_absolute() || !found.is_file() {
        return;
    }
    let Some(path) = found.to_str().filter(|p| !p.contains(['"', ')'])) else {
        return;
    };
    let dir = PathBuf::from(env("OUT_DIR")).join("static-unwinder");
    if std::fs::create_dir_all(&dir).is_err()
        || std::fs::write(dir.join("libgcc_s.so"), format!("INPUT(\"{path}\")\n")).is_err()
    {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
}
