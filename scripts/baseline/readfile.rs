//! The design's baseline for one helper call (docs/PERFORMANCE.md): a minimal Rust
//! program that reads the vault file and prints it. `get` should cost close to this.
//! Built by scripts/bench.sh with `rustc -O`.
use std::io::Write;

fn main() {
    let path = std::env::args_os().nth(1).expect("usage: readfile FILE");
    let bytes = std::fs::read(path).expect("read");
    std::io::stdout().lock().write_all(&bytes).expect("write");
}
