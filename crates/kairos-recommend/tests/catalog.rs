//! Parsing items, changes and catalog files: what is accepted, and errors
//! that name the field (and the line).

use kairos_recommend::catalog::{MAX_ITEM_BYTES, MAX_REPORTED_LINES};
use kairos_recommend::{
    parse_change, parse_item, read_catalog, CatalogChange, CatalogError, CatalogFileError,
};
use std::io::Write;

fn error(json: &str) -> String {
    match parse_item(json.as_bytes()) {
        Ok(item) => panic!("{json} parsed as {item:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_full_item_parses_and_extras_are_ignored() {
    let json = r#"{"id":"p31","title":"Ethiopia Yirgacheffe beans 250g","category":"coffee/beans",
        "brand":"Kairos Roasters","price":14.5,"stock":{"sh-nanjing-rd":4,"sh-xintiandi":0.0},
        "vector":[0.1,-0.2,0.3],"sku":"X-1","tags":["new"]}"#;
    let item = parse_item(json.as_bytes()).unwrap();
    assert_eq!(item.id, "p31");
    assert_eq!(item.category, "coffee/beans");
    assert_eq!(item.price, 14.5);
    let stock = item.stock.clone().unwrap();
    assert_eq!(stock["sh-nanjing-rd"], 4);
    assert_eq!(stock["sh-xintiandi"], 0);
    assert_eq!(item.vector, Some(vec![0.1, -0.2, 0.3]));
    assert!(item.in_stock(Some("sh-nanjing-rd")));
    assert!(!item.in_stock(Some("sh-xintiandi")));
    assert!(!item.in_stock(Some("elsewhere")));
    assert!(item.in_stock(None));
}

#[test]
fn only_id_and_price_are_required() {
    let item = parse_item(br#"{"id":"p1","price":0,"title":null}"#).unwrap();
    assert_eq!(
        (
            item.title.as_str(),
            item.category.as_str(),
            item.brand.as_str()
        ),
        ("", "", "")
    );
    assert_eq!(item.stock, None);
    assert_eq!(item.vector, None);
    assert!(
        item.in_stock(Some("any-store")),
        "untracked stock is in stock everywhere"
    );
}

#[test]
fn id_errors_name_the_field_and_the_rule() {
    assert!(error(r#"{"price":1}"#).starts_with("id: missing; a non-empty string"));
    assert!(error(r#"{"id":42,"price":1}"#).starts_with("id: must be a non-empty string"));
    assert!(error(r#"{"id":42,"price":1}"#).ends_with("got 42"));
    assert!(error(r#"{"id":"","price":1}"#).starts_with("id: must not be empty"));
    let long = format!(r#"{{"id":"{}","price":1}}"#, "x".repeat(129));
    assert_eq!(
        error(&long),
        "id: is 129 bytes long; at most 128 are accepted"
    );
    assert!(error(r#"{"id":"a\nb","price":1}"#)
        .starts_with("id: contains the control character U+000A"));
}

#[test]
fn price_errors_say_what_is_accepted() {
    assert_eq!(
        error(r#"{"id":"p1","price":-3}"#),
        "price: must be a finite number ≥ 0, got -3"
    );
    assert_eq!(
        error(r#"{"id":"p1","price":"12"}"#),
        r#"price: must be a finite number ≥ 0, got "12""#
    );
    assert_eq!(
        error(r#"{"id":"p1"}"#),
        "price: missing; a finite number ≥ 0 is required"
    );
}

#[test]
fn stock_errors_name_the_store() {
    assert_eq!(
        error(r#"{"id":"p1","price":1,"stock":{"sh-xintiandi":-1}}"#),
        "stock.sh-xintiandi: must be a whole number from 0 to 4294967295, got -1"
    );
    assert!(error(r#"{"id":"p1","price":1,"stock":{"s":1.5}}"#)
        .starts_with("stock.s: must be a whole number"));
    assert!(error(r#"{"id":"p1","price":1,"stock":[1]}"#)
        .starts_with("stock: must be an object from store id to quantity"));
    assert!(error(r#"{"id":"p1","price":1,"stock":{"":1}}"#)
        .starts_with(r#"stock: store id "": must not be empty"#));
}

#[test]
fn vector_errors_name_the_component() {
    assert_eq!(
        error(r#"{"id":"p1","price":1,"vector":[1]}"#),
        "vector: has 1 numbers; must be an array of 2 to 4096 numbers, not all zero"
    );
    assert_eq!(
        error(r#"{"id":"p1","price":1,"vector":[1,"a"]}"#),
        r#"vector[1]: must be a number, got "a""#
    );
    assert_eq!(
        error(r#"{"id":"p1","price":1,"vector":[1,1e39]}"#),
        "vector[1]: 1e+39 does not fit a 32-bit float"
    );
    assert!(error(r#"{"id":"p1","price":1,"vector":[0,0.0]}"#).starts_with("vector: is all zeros"));
    assert!(error(r#"{"id":"p1","price":1,"vector":"0.1,0.2"}"#)
        .starts_with("vector: must be an array"));
}

#[test]
fn malformed_input_is_named() {
    assert!(error("{nope").starts_with("not valid JSON: "));
    assert_eq!(error("[1,2]"), "must be a JSON object {...}, got an array");
    let huge = format!(
        r#"{{"id":"p1","price":1,"title":"{}"}}"#,
        "x".repeat(MAX_ITEM_BYTES)
    );
    assert!(error(&huge).contains("at most 65536 bytes"));
}

#[test]
fn changes_parse_by_kind() {
    assert_eq!(
        parse_change("delete", br#"{"id":"p1"}"#).unwrap(),
        CatalogChange::Delete { id: "p1".into() }
    );
    assert_eq!(
        parse_change(
            "kairos.catalog.stock",
            br#"{"id":"p1","store":"sh-xintiandi","quantity":0}"#
        )
        .unwrap(),
        CatalogChange::Stock {
            id: "p1".into(),
            store: "sh-xintiandi".into(),
            quantity: 0
        }
    );
    let upsert = parse_change("upsert", br#"{"id":"p1","price":2}"#).unwrap();
    assert_eq!(upsert.id(), "p1");
    assert!(matches!(upsert, CatalogChange::Upsert(_)));
}

#[test]
fn change_errors_list_what_is_accepted() {
    let unknown = parse_change("restock", b"{}").unwrap_err();
    assert_eq!(
        unknown.to_string(),
        r#"unknown catalog change kind "restock"; accepted: upsert, delete, stock"#
    );
    let no_quantity = parse_change("stock", br#"{"id":"p1","store":"s1"}"#).unwrap_err();
    assert_eq!(no_quantity.field(), Some("quantity"));
    assert_eq!(
        no_quantity.to_string(),
        "quantity: missing; a whole number ≥ 0 is required"
    );
    let no_store = parse_change("stock", br#"{"id":"p1","quantity":3}"#).unwrap_err();
    assert_eq!(no_store.field(), Some("store"));
    let bad_id = parse_change("delete", br#"{"id":""}"#).unwrap_err();
    assert!(matches!(bad_id, CatalogError::Field { ref field, .. } if field == "id"));
}

fn write_file(dir: &tempfile::TempDir, name: &str, contents: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn a_catalog_file_skips_blank_lines_and_the_later_duplicate_wins() {
    let dir = tempfile::tempdir().unwrap();
    let text = "\u{feff}{\"id\":\"p1\",\"price\":1}\r\n\n   \n{\"id\":\"p2\",\"price\":2}\n{\"id\":\"p1\",\"price\":3}";
    let items = read_catalog(write_file(&dir, "catalog.jsonl", text.as_bytes())).unwrap();
    let summary: Vec<(&str, f64)> = items
        .iter()
        .map(|item| (item.id.as_str(), item.price))
        .collect();
    assert_eq!(summary, [("p1", 3.0), ("p2", 2.0)]);
}

#[test]
fn every_bad_line_is_reported_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let text = [
        r#"{"id":"p1","price":1}"#,
        r#"{"id":"p2","price":-3}"#,
        "",
        r#"{"id":"p3","price":1,"vector":[1,"x"]}"#,
        r#"{"id":"p4","price":1}"#,
    ]
    .join("\n");
    let path = write_file(&dir, "catalog.jsonl", text.as_bytes());
    let error = read_catalog(&path).unwrap_err();
    let CatalogFileError::Invalid {
        ref errors,
        error_count,
        ..
    } = error
    else {
        panic!("expected invalid lines, got {error}");
    };
    assert_eq!(error_count, 2);
    assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 4]);
    let shown = path.display();
    assert_eq!(
        error.to_string(),
        format!("{shown}:2: price: must be a finite number ≥ 0, got -3\n{shown}:4: vector[1]: must be a number, got \"x\"")
    );
}

#[test]
fn many_bad_lines_are_counted_beyond_the_first_twenty() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"id\":\"\",\"price\":1}\n".repeat(25);
    let error = read_catalog(write_file(&dir, "bad.jsonl", text.as_bytes())).unwrap_err();
    let CatalogFileError::Invalid {
        ref errors,
        error_count,
        ..
    } = error
    else {
        panic!("expected invalid lines, got {error}");
    };
    assert_eq!((errors.len(), error_count), (MAX_REPORTED_LINES, 25));
    assert!(error.to_string().ends_with("... and 5 more invalid lines"));
}

#[test]
fn an_overlong_line_is_an_error_for_that_line_only() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!(
        "{{\"id\":\"p1\",\"price\":1,\"title\":\"{}\"}}",
        "x".repeat(MAX_ITEM_BYTES + 10)
    );
    let text =
        format!("{long}\n{{\"id\":\"p2\",\"price\":1}}\n{{\"id\":\"p3\",\"price\":\"x\"}}\n");
    let error = read_catalog(write_file(&dir, "long.jsonl", text.as_bytes())).unwrap_err();
    let CatalogFileError::Invalid { errors, .. } = error else {
        panic!("expected invalid lines")
    };
    assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 3]);
    assert!(matches!(errors[0].error, CatalogError::TooLong { .. }));
}

#[test]
fn gzip_is_recognised_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(b"{\"id\":\"p1\",\"price\":1}\n{\"id\":\"p2\",\"price\":2}\n")
        .unwrap();
    let compressed = encoder.finish().unwrap();
    // No .gz in the name: the magic bytes decide.
    let items = read_catalog(write_file(&dir, "catalog.jsonl", &compressed)).unwrap();
    assert_eq!(items.len(), 2);
}

#[test]
fn a_missing_file_names_the_path() {
    let error = read_catalog("/nonexistent/catalog.jsonl").unwrap_err();
    assert!(matches!(error, CatalogFileError::Io { .. }));
    assert!(error
        .to_string()
        .starts_with("/nonexistent/catalog.jsonl: "));
}
