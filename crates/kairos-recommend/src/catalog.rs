//! Catalog items as they arrive: one JSON object per item, in a catalog file
//! (JSON lines, optionally gzipped) or as the body of a live change on NATS.
//!
//! Parsing only validates; storing happens in [`crate::ItemIndex`]. Every
//! error names the field at fault and says what is accepted, and a file's
//! errors carry their 1-based line number (`catalog.jsonl:17: price: must be
//! a finite number ≥ 0, got -3`).

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The longest item (one catalog line, or one change body) accepted, in
/// bytes: 64 KiB, room for a 4,096-dimension vector written in full.
pub const MAX_ITEM_BYTES: usize = 64 * 1024;
/// The longest item or store id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// The fewest dimensions a provided vector may have.
pub const MIN_DIMENSIONS: usize = 2;
/// The most dimensions a provided vector may have.
pub const MAX_DIMENSIONS: usize = 4096;
/// How many bad lines a [`CatalogFileError::Invalid`] reports in full (the
/// rest are counted).
pub const MAX_REPORTED_LINES: usize = 20;

/// The change kinds [`parse_change`] accepts: the last token of the NATS
/// subjects `kairos.catalog.upsert`, `kairos.catalog.delete` and
/// `kairos.catalog.stock`.
pub const CHANGE_KINDS: [&str; 3] = ["upsert", "delete", "stock"];

/// One catalog item.
///
/// Its JSON form (one per line in a catalog file, and the body of an
/// upsert):
///
/// ```json
/// {"id":"p31","title":"Ethiopia Yirgacheffe beans 250g","category":"coffee/beans",
///  "brand":"Kairos Roasters","price":14.5,"stock":{"sh-nanjing-rd":4,"sh-xintiandi":0},
///  "vector":[0.1, 0.3, -0.2]}
/// ```
///
/// - `id` (required): a non-empty string of at most [`MAX_ID_BYTES`] bytes
///   without control characters.
/// - `title`, `category`, `brand`: strings; absent or `null` reads as `""`.
///   `category` is a `/`-separated path, most general first.
/// - `price` (required): a finite number ≥ 0.
/// - `stock`: an object from store id (same rules as `id`) to a whole
///   number ≥ 0 (`4` or `4.0`); absent or `null` means stock is not tracked
///   and the item counts as in stock everywhere.
/// - `vector`: [`MIN_DIMENSIONS`] to [`MAX_DIMENSIONS`] numbers that fit a
///   32-bit float, not all zero; absent or `null` for catalogs whose vectors
///   are computed from the other fields ([`crate::features`]).
///
/// Other fields are ignored: catalog exports carry extras.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    /// The item's id, as actions and events name it (`product_id`).
    pub id: String,
    /// Display title; its words feed computed vectors.
    pub title: String,
    /// `/`-separated category path, most general first (`coffee/beans`).
    pub category: String,
    /// Brand name.
    pub brand: String,
    /// Price, in the catalog's currency.
    pub price: f64,
    /// Quantity on hand per store id; `None`: not tracked (always in stock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock: Option<BTreeMap<String, u32>>,
    /// The item's embedding; `None` in a catalog of computed vectors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

impl Item {
    /// Checks the values [`parse_item`] checks (see [`Item`]), for items
    /// built in code rather than parsed; [`crate::ItemIndex::apply`] refuses
    /// items that fail it.
    pub fn validate(&self) -> Result<(), CatalogError> {
        check_id("id", &self.id)?;
        if !(self.price.is_finite() && self.price >= 0.0) {
            return Err(CatalogError::field_error(
                "price",
                format!("must be a finite number ≥ 0, got {}", self.price),
            ));
        }
        for store in self.stock.iter().flat_map(BTreeMap::keys) {
            check_id("stock", store).map_err(|error| match error {
                CatalogError::Field { problem, .. } => {
                    CatalogError::field_error("stock", format!("store id {store:?}: {problem}"))
                }
                other => other,
            })?;
        }
        if let Some(vector) = &self.vector {
            if !(MIN_DIMENSIONS..=MAX_DIMENSIONS).contains(&vector.len()) {
                return Err(CatalogError::field_error(
                    "vector",
                    format!("has {} numbers; must be {}", vector.len(), vector_rule()),
                ));
            }
            if let Some(index) = vector.iter().position(|component| !component.is_finite()) {
                return Err(CatalogError::field_error(
                    format!("vector[{index}]"),
                    format!("must be a finite number, got {}", vector[index]),
                ));
            }
            if vector.iter().all(|&component| component == 0.0) {
                return Err(CatalogError::field_error(
                    "vector",
                    "is all zeros; cosine similarity needs a vector with some direction",
                ));
            }
        }
        Ok(())
    }

    /// Whether the item may be recommended for `store` (`None`: for no store
    /// in particular): stock is untracked, or the store (any store) has some.
    pub fn in_stock(&self, store: Option<&str>) -> bool {
        match (&self.stock, store) {
            (None, _) => true,
            (Some(stock), Some(store)) => stock.get(store).is_some_and(|&quantity| quantity > 0),
            (Some(stock), None) => stock.values().any(|&quantity| quantity > 0),
        }
    }
}

/// A live change to the catalog, as published on `kairos.catalog.<kind>`.
#[derive(Clone, Debug, PartialEq)]
pub enum CatalogChange {
    /// Add an item, or replace the item with the same id entirely.
    Upsert(Item),
    /// Remove an item (`{"id":"p1"}`).
    Delete {
        /// The item's id.
        id: String,
    },
    /// Set one store's quantity of an item
    /// (`{"id":"p1","store":"sh-xintiandi","quantity":0}`). An item whose
    /// stock was untracked starts being tracked, with only that store.
    Stock {
        /// The item's id.
        id: String,
        /// The store's id.
        store: String,
        /// The quantity now on hand.
        quantity: u32,
    },
}

impl CatalogChange {
    /// Checks the values [`parse_change`] checks, for changes built in code.
    pub fn validate(&self) -> Result<(), CatalogError> {
        match self {
            CatalogChange::Upsert(item) => item.validate(),
            CatalogChange::Delete { id } => check_id("id", id),
            CatalogChange::Stock { id, store, .. } => {
                check_id("id", id)?;
                check_id("store", store)
            }
        }
    }

    /// The id of the item the change is about.
    pub fn id(&self) -> &str {
        match self {
            CatalogChange::Upsert(item) => &item.id,
            CatalogChange::Delete { id } | CatalogChange::Stock { id, .. } => id,
        }
    }
}

/// Why an item or a change was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The text is longer than [`MAX_ITEM_BYTES`].
    #[error(
        "is {bytes} bytes long; at most {MAX_ITEM_BYTES} bytes (64 KiB) are accepted per item"
    )]
    TooLong {
        /// The text's length.
        bytes: usize,
    },
    /// The text is not JSON.
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The JSON is not an object.
    #[error("must be a JSON object {{...}}, got {0}")]
    NotAnObject(String),
    /// A field is missing or has an unacceptable value.
    #[error("{field}: {problem}")]
    Field {
        /// The field, with its key or index where it helps
        /// (`stock.sh-xintiandi`, `vector[3]`).
        field: String,
        /// What is wrong and what is accepted.
        problem: String,
    },
    /// [`parse_change`] was given a kind it does not know.
    #[error("unknown catalog change kind {0:?}; accepted: upsert, delete, stock")]
    UnknownKind(String),
}

impl CatalogError {
    /// The field at fault, if the error is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            CatalogError::Field { field, .. } => Some(field),
            _ => None,
        }
    }

    fn field_error(field: impl Into<String>, problem: impl Into<String>) -> CatalogError {
        CatalogError::Field {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Parses and validates one item from its JSON (see [`Item`] for the
/// fields and what each accepts).
pub fn parse_item(bytes: &[u8]) -> Result<Item, CatalogError> {
    let object = parse_object(bytes)?;
    let item = Item {
        id: required_id(&object, "id")?,
        title: optional_text(&object, "title")?,
        category: optional_text(&object, "category")?,
        brand: optional_text(&object, "brand")?,
        price: price(&object)?,
        stock: stock(&object)?,
        vector: vector(&object)?,
    };
    item.validate()?;
    Ok(item)
}

/// Parses the body of a live change. `kind` is `upsert`, `delete` or
/// `stock` ([`CHANGE_KINDS`]); a whole subject such as
/// `kairos.catalog.upsert` is accepted too, its last token naming the kind.
pub fn parse_change(kind: &str, body: &[u8]) -> Result<CatalogChange, CatalogError> {
    let kind = kind.rsplit('.').next().unwrap_or(kind);
    match kind {
        "upsert" => parse_item(body).map(CatalogChange::Upsert),
        "delete" => {
            let object = parse_object(body)?;
            let change = CatalogChange::Delete {
                id: required_id(&object, "id")?,
            };
            change.validate()?;
            Ok(change)
        }
        "stock" => {
            let object = parse_object(body)?;
            let id = required_id(&object, "id")?;
            let store = required_id(&object, "store")?;
            let quantity = match object.get("quantity") {
                None | Some(Value::Null) => {
                    return Err(CatalogError::field_error(
                        "quantity",
                        "missing; a whole number ≥ 0 is required",
                    ))
                }
                Some(value) => quantity("quantity", value)?,
            };
            let change = CatalogChange::Stock {
                id,
                store,
                quantity,
            };
            change.validate()?;
            Ok(change)
        }
        other => Err(CatalogError::UnknownKind(other.to_owned())),
    }
}

/// One bad line of a catalog file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub error: CatalogError,
}

/// Why a catalog file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogFileError {
    /// The file could not be opened or read (or is damaged gzip).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Some lines are not valid items; nothing is returned.
    #[error("{}", InvalidLines { path, errors, error_count: *error_count })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The first [`MAX_REPORTED_LINES`] bad lines, in file order.
        errors: Vec<LineError>,
        /// How many lines are bad in all.
        error_count: usize,
    },
}

/// Renders [`CatalogFileError::Invalid`]: one `path:line: problem` per
/// reported line, then how many more there are.
struct InvalidLines<'a> {
    path: &'a Path,
    errors: &'a [LineError],
    error_count: usize,
}

impl fmt::Display for InvalidLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, LineError { line, error }) in self.errors.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{line}: {error}", self.path.display())?;
        }
        let unreported = self.error_count.saturating_sub(self.errors.len());
        if unreported > 0 {
            write!(
                f,
                "\n{}: ... and {unreported} more invalid lines",
                self.path.display()
            )?;
        }
        Ok(())
    }
}

/// Reads a catalog file: one item per line (JSON lines), blank lines
/// skipped, gzip-compressed or not (recognised by its content, not its
/// name).
///
/// Every line is checked and every bad line reported (the first
/// [`MAX_REPORTED_LINES`] in full) rather than stopping at the first, so
/// one run shows what to fix. When an id appears on more than one line,
/// the later line wins: its item replaces the earlier one, at the earlier
/// one's position.
pub fn read_catalog(path: impl AsRef<Path>) -> Result<Vec<Item>, CatalogFileError> {
    let path = path.as_ref();
    let io_error = |source| CatalogFileError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let mut plain = BufReader::new(file);
    // gzip streams start with the magic bytes 1f 8b; JSON text never does.
    let is_gzip = plain
        .fill_buf()
        .map_err(io_error)?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn BufRead> = if is_gzip {
        // MultiGzDecoder: `cat a.gz b.gz > catalog.gz` is a valid catalog.
        Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(plain)))
    } else {
        Box::new(plain)
    };

    let mut items: Vec<Item> = Vec::new();
    let mut positions: HashMap<String, usize> = HashMap::new();
    let mut errors = Vec::new();
    let mut error_count = 0;
    let mut line = Vec::new();
    let mut line_number = 0;
    while let Some(length) =
        read_line_bounded(&mut reader, &mut line, MAX_ITEM_BYTES).map_err(io_error)?
    {
        line_number += 1;
        let mut text: &[u8] = &line;
        if line_number == 1 {
            // Editors on Windows start files with a byte-order mark.
            text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
        }
        if text.iter().all(u8::is_ascii_whitespace) && length <= MAX_ITEM_BYTES {
            continue;
        }
        let parsed = if length > MAX_ITEM_BYTES {
            Err(CatalogError::TooLong { bytes: length })
        } else {
            parse_item(text)
        };
        match parsed {
            Ok(item) => match positions.get(&item.id) {
                Some(&position) => items[position] = item,
                None => {
                    positions.insert(item.id.clone(), items.len());
                    items.push(item);
                }
            },
            Err(error) => {
                error_count += 1;
                if errors.len() < MAX_REPORTED_LINES {
                    errors.push(LineError {
                        line: line_number,
                        error,
                    });
                }
            }
        }
    }
    if error_count > 0 {
        return Err(CatalogFileError::Invalid {
            path: path.to_owned(),
            errors,
            error_count,
        });
    }
    Ok(items)
}

/// Reads one line into `line`, without its `\n` (or `\r\n`), keeping at
/// most `limit + 1` bytes of it so that a file without newlines cannot
/// exhaust memory. Returns the line's full length, or `None` at the end.
fn read_line_bounded(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<usize>> {
    line.clear();
    let mut length = 0;
    let mut read_any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            break;
        }
        read_any = true;
        let (chunk, consumed, ended) = match memchr::memchr(b'\n', available) {
            Some(end) => (&available[..end], end + 1, true),
            None => (available, available.len(), false),
        };
        let room = (limit + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        length += chunk.len();
        reader.consume(consumed);
        if ended {
            break;
        }
    }
    if !read_any {
        return Ok(None);
    }
    if line.last() == Some(&b'\r') && length == line.len() {
        line.pop();
        length -= 1;
    }
    Ok(Some(length))
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, CatalogError> {
    if bytes.len() > MAX_ITEM_BYTES {
        return Err(CatalogError::TooLong { bytes: bytes.len() });
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|error| CatalogError::Json(error.to_string()))?;
    match value {
        Value::Object(object) => Ok(object),
        other => Err(CatalogError::NotAnObject(shown(&other))),
    }
}

/// A JSON value as an error message quotes it: scalars as written (long
/// strings cut), containers by kind.
fn shown(value: &Value) -> String {
    const LONGEST: usize = 40;
    match value {
        Value::String(text) if text.chars().count() > LONGEST => {
            let cut: String = text.chars().take(LONGEST).collect();
            format!("{:?}...", cut)
        }
        Value::String(text) => format!("{text:?}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
        scalar => scalar.to_string(),
    }
}

fn vector_rule() -> String {
    format!("an array of {MIN_DIMENSIONS} to {MAX_DIMENSIONS} numbers, not all zero")
}

const ID_RULE: &str = "a non-empty string of at most 128 bytes without control characters";

fn required_id(object: &Map<String, Value>, field: &str) -> Result<String, CatalogError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(CatalogError::field_error(
            field,
            format!("missing; {ID_RULE} is required"),
        )),
        Some(Value::String(id)) => Ok(id.clone()),
        Some(other) => Err(CatalogError::field_error(
            field,
            format!("must be {ID_RULE}, got {}", shown(other)),
        )),
    }
}

fn check_id(field: &str, id: &str) -> Result<(), CatalogError> {
    if id.is_empty() {
        return Err(CatalogError::field_error(
            field,
            format!("must not be empty; {ID_RULE}"),
        ));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(CatalogError::field_error(
            field,
            format!(
                "is {} bytes long; at most {MAX_ID_BYTES} are accepted",
                id.len()
            ),
        ));
    }
    if let Some(control) = id.chars().find(|c| c.is_control()) {
        return Err(CatalogError::field_error(
            field,
            format!(
                "contains the control character U+{:04X}; {ID_RULE}",
                control as u32
            ),
        ));
    }
    Ok(())
}

fn optional_text(object: &Map<String, Value>, field: &str) -> Result<String, CatalogError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(CatalogError::field_error(
            field,
            format!("must be a string (or absent), got {}", shown(other)),
        )),
    }
}

fn price(object: &Map<String, Value>) -> Result<f64, CatalogError> {
    const RULE: &str = "a finite number ≥ 0";
    match object.get("price") {
        None | Some(Value::Null) => Err(CatalogError::field_error(
            "price",
            format!("missing; {RULE} is required"),
        )),
        Some(Value::Number(number)) => match number.as_f64() {
            Some(price) => Ok(price),
            None => Err(CatalogError::field_error(
                "price",
                format!("must be {RULE}, got {number}"),
            )),
        },
        Some(other) => Err(CatalogError::field_error(
            "price",
            format!("must be {RULE}, got {}", shown(other)),
        )),
    }
}

fn quantity(field: &str, value: &Value) -> Result<u32, CatalogError> {
    let whole = match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            // Exports from data frames write counts as floats: 4.0 is 4.
            number
                .as_f64()
                .filter(|q| q.fract() == 0.0 && *q >= 0.0)
                .map(|q| q as u64)
        }),
        _ => None,
    };
    match whole.and_then(|quantity| u32::try_from(quantity).ok()) {
        Some(quantity) => Ok(quantity),
        None => Err(CatalogError::field_error(
            field,
            format!(
                "must be a whole number from 0 to {}, got {}",
                u32::MAX,
                shown(value)
            ),
        )),
    }
}

fn stock(object: &Map<String, Value>) -> Result<Option<BTreeMap<String, u32>>, CatalogError> {
    let entries = match object.get("stock") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(entries)) => entries,
        Some(other) => {
            return Err(CatalogError::field_error(
                "stock",
                format!(
                    "must be an object from store id to quantity, like {{\"sh-xintiandi\":4}} \
                     (or absent: stock not tracked), got {}",
                    shown(other)
                ),
            ))
        }
    };
    let mut stock = BTreeMap::new();
    for (store, value) in entries {
        stock.insert(store.clone(), quantity(&format!("stock.{store}"), value)?);
    }
    Ok(Some(stock))
}

fn vector(object: &Map<String, Value>) -> Result<Option<Vec<f32>>, CatalogError> {
    let rule = vector_rule();
    let components = match object.get("vector") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(components)) => components,
        Some(other) => {
            return Err(CatalogError::field_error(
                "vector",
                format!("must be {rule} (or absent), got {}", shown(other)),
            ))
        }
    };
    if components.len() > MAX_DIMENSIONS {
        return Err(CatalogError::field_error(
            "vector",
            format!("has {} numbers; must be {rule}", components.len()),
        ));
    }
    let mut vector = Vec::with_capacity(components.len());
    for (index, component) in components.iter().enumerate() {
        let value = match component {
            Value::Number(number) => number.as_f64().map(|value| value as f32),
            _ => None,
        };
        match value {
            Some(value) if value.is_finite() => vector.push(value),
            Some(_) => {
                return Err(CatalogError::field_error(
                    format!("vector[{index}]"),
                    format!("{} does not fit a 32-bit float", shown(component)),
                ))
            }
            None => {
                return Err(CatalogError::field_error(
                    format!("vector[{index}]"),
                    format!("must be a number, got {}", shown(component)),
                ))
            }
        }
    }
    Ok(Some(vector))
}
