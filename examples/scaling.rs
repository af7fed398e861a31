//! Measures the cost of adding and finalizing the N-th module as N grows
//! (the registry must not scan all modules). Each module calls the previous
//! one through an `extern`, and is finalized on its own.
//!
//! Run with `cargo run --release --example scaling`.

use kiln::{Engine, Val};
use std::time::Instant;

fn module(k: usize) -> String {
    if k == 0 {
        "func @f0() -> i64 {\nentry:\n    ret 0\n}\n".to_string()
    } else {
        format!(
            "extern func @f{p}() -> i64\nfunc @f{k}() -> i64 {{\nentry:\n    %x = call.i64 @f{p}()\n    %y = add.i64 %x, 1\n    ret %y\n}}\n",
            p = k - 1
        )
    }
}

fn main() -> kiln::Result<()> {
    println!(
        "{:>7} {:>14} {:>18} {:>14}",
        "N", "µs/module", "µs/module (last10%)", "touched/final"
    );
    let mut ns: Vec<usize> = match std::env::var("NS") {
        Ok(v) => v.split(',').filter_map(|x| x.parse().ok()).collect(),
        Err(_) => vec![10, 100, 1_000, 10_000],
    };
    if std::env::var_os("REVERSE").is_some() {
        ns.reverse();
    }
    for n in ns {
        let texts: Vec<String> = (0..n).map(module).collect();
        let engine = Engine::default();
        let start = Instant::now();
        let mut tail = Instant::now();
        let mut touched_max = 0;
        let mut deciles = Vec::new();
        let mut dstart = Instant::now();
        for (k, t) in texts.iter().enumerate() {
            if n >= 10 && k % (n / 10) == 0 && k > 0 {
                deciles.push(dstart.elapsed().as_secs_f64() * 1e6 / (n / 10) as f64);
                dstart = Instant::now();
            }
            if k == n - n / 10 {
                tail = Instant::now();
            }
            let id = engine.add_module_text("m.kir", t)?;
            engine.finalize_module(id)?;
            touched_max = touched_max.max(engine.stats()?.last_touched);
        }
        let all = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        let last = tail.elapsed().as_secs_f64() * 1e6 / (n / 10).max(1) as f64;
        assert_eq!(
            engine.call(&format!("f{}", n - 1), &[])?,
            Some(Val::I64(n as i64 - 1))
        );
        println!("{n:>7} {all:>14.1} {last:>18.1} {touched_max:>14}");
        if std::env::var_os("DECILES").is_some() {
            println!("        per decile (µs/module): {deciles:.1?}");
        }
    }
    Ok(())
}
