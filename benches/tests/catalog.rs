//! The shipped demo catalog, `pipelines/catalog.jsonl`, is what `gen-catalog`
//! writes, and `kairos-recommend` accepts every line of it.
//!
//! After changing the generator, regenerate the file:
//!
//! ```text
//! cargo run -p kairos-benches --bin gen-catalog -- --out pipelines/catalog.jsonl
//! ```

use kairos_benches::catalog::retail_catalog_lines;
use kairos_recommend::{parse_item, read_catalog};
use std::path::PathBuf;

fn shipped_catalog() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipelines/catalog.jsonl")
}

#[test]
fn shipped_catalog_is_the_generators_output() {
    let path = shipped_catalog();
    let shipped = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let mut generated = String::new();
    for line in retail_catalog_lines() {
        generated.push_str(&line);
        generated.push('\n');
    }
    if shipped != generated {
        let first_difference = shipped
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || "in length".to_owned(),
                |line| format!("at line {}", line + 1),
            );
        panic!(
            "{} differs from gen-catalog's output {first_difference}; regenerate it with \
             `cargo run -p kairos-benches --bin gen-catalog -- --out pipelines/catalog.jsonl`",
            path.display()
        );
    }
}

#[test]
fn every_shipped_line_is_a_valid_item() {
    let path = shipped_catalog();
    let shipped = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let mut count = 0;
    for (number, line) in shipped.lines().enumerate() {
        if let Err(error) = parse_item(line.as_bytes()) {
            panic!("{}:{}: {error}", path.display(), number + 1);
        }
        count += 1;
    }
    assert_eq!(count, 5_005);
    // The file reader agrees: no duplicate ids, nothing refused.
    let items = read_catalog(&path).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(items.len(), 5_005);
}
