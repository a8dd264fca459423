//! Writes the demo item catalog (`kairos_benches::catalog::retail_items`) as
//! JSON lines: the products of the synthetic events and of `kairos demo`.
//!
//! ```text
//! cargo run -p kairos-benches --bin gen-catalog -- [--out FILE]
//! cargo run -p kairos-benches --bin gen-catalog -- --out pipelines/catalog.jsonl
//! ```
//!
//! Without `--out` the catalog goes to stdout. `pipelines/catalog.jsonl` is
//! this output; `benches/tests/catalog.rs` checks that it still is.

use kairos_benches::catalog::retail_catalog_lines;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: gen-catalog [--out FILE]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gen-catalog: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut out_path: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--out" => {
                out_path = Some(args.next().ok_or("--out needs a value")?.into());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let out: Box<dyn Write> = match &out_path {
        Some(path) => Box::new(
            File::create(path)
                .map_err(|error| format!("cannot create {}: {error}", path.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let write_error = |error: io::Error| format!("cannot write: {error}");
    for line in retail_catalog_lines() {
        out.write_all(line.as_bytes()).map_err(write_error)?;
        out.write_all(b"\n").map_err(write_error)?;
    }
    out.flush().map_err(write_error)
}
