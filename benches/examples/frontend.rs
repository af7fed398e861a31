//! Writes the front-end benchmark inputs (`kiln_bench::frontend`) to a
//! directory, for `kiln check` under profilers (`perf record`,
//! `valgrind --tool=callgrind`), and prints the library path's figures.
//!
//! Run: `cargo run --release -p kiln-bench --example frontend -- DIR [--quick]`.

use kiln_bench::frontend::{inputs, ir_bytes, time_library, write_files};
use kiln_bench::measure::Budget;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: frontend DIR [--quick]");
        std::process::exit(2);
    };
    let quick = args.iter().any(|a| a == "--quick");
    for (k, input) in inputs(quick).iter().enumerate() {
        let sub = std::path::Path::new(dir).join(format!("frontend{k}"));
        if let Err(e) = write_files(input, &sub) {
            eprintln!("frontend: {e}");
            std::process::exit(1);
        }
        match time_library(input, Budget::FULL).and_then(|t| Ok((t, ir_bytes(input)?))) {
            Ok(((d, insts), (ir, srcmap))) => println!(
                "{}: {} bytes, {insts} insts, {:.1} MB/s, {:.1} ns/inst, IR {:.0} B/inst, \
                 srcmap {:.0} B/inst -> {}",
                input.name,
                input.bytes(),
                input.bytes() as f64 / 1e6 / d.as_secs_f64(),
                d.as_secs_f64() * 1e9 / insts as f64,
                ir as f64 / insts as f64,
                srcmap as f64 / insts as f64,
                sub.display()
            ),
            Err(e) => {
                eprintln!("frontend: {}: {e}", input.name);
                std::process::exit(1);
            }
        }
    }
}
