//! `kairos catalog load`: items from a JSON-lines file into the item index
//! of a data directory (`DIR/catalog`), which `kairos run` opens on start
//! and keeps current from the catalog stream.

use crate::cli::CatalogLoadArgs;
use kairos_recommend::{read_catalog, CatalogChange, ItemIndex, VectorSource};
use std::collections::{BTreeSet, HashSet};
use std::process::ExitCode;
use std::time::Instant;

/// Where a data directory keeps its item index.
pub fn index_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("catalog")
}

pub fn load(args: &CatalogLoadArgs) -> anyhow::Result<ExitCode> {
    let items = match read_catalog(&args.file) {
        Ok(items) => items,
        Err(error) => {
            eprintln!("{error}");
            eprintln!("kairos: nothing was loaded; accepted: one item per line, {{\"id\":\"p1\",\"title\":\"...\",\"category\":\"coffee/beans\",\"brand\":\"...\",\"price\":12.5,\"stock\":{{\"store\":4}},\"vector\":[...]}} (id and price required; vector optional, in all items or none)");
            return Ok(ExitCode::from(2));
        }
    };
    // Vectors in every item (of one size) or in none, and of the kind the
    // index holds unless it is replaced: checked before anything is
    // written, so that a refused file changes nothing.
    let kinds: BTreeSet<Option<usize>> = items
        .iter()
        .map(|item| item.vector.as_ref().map(Vec::len))
        .collect();
    if kinds.len() > 1 {
        eprintln!("kairos: {}: some items have vectors and others do not, or their sizes differ ({}); nothing was loaded; accepted: a vector of one size in every item, or in none (kairos then computes them)", args.file.display(), describe(&kinds));
        return Ok(ExitCode::from(2));
    }
    let _lock = match crate::data_dir::lock(&args.data_dir, "kairos catalog load")? {
        Ok(lock) => lock,
        Err(in_use) => {
            eprintln!("kairos: --data-dir: {in_use}; nothing was loaded");
            return Ok(ExitCode::from(2));
        }
    };
    let started = Instant::now();
    let index = ItemIndex::open(&index_dir(&args.data_dir))?;
    let file_kind = kinds.into_iter().next().flatten();
    let index_kind = index.vector_source().map(|source| match source {
        VectorSource::Computed => None,
        VectorSource::Provided { dimensions } => Some(dimensions),
    });
    if let Some(held) = index_kind.filter(|held| *held != file_kind && !args.replace) {
        eprintln!("kairos: {}: its items have {}, the index in {} holds items with {}; nothing was loaded; accepted: items like the index's, or --replace (the file becomes the whole catalog)", args.file.display(), describe_one(file_kind), index_dir(&args.data_dir).display(), describe_one(held));
        return Ok(ExitCode::from(2));
    }
    let mut changes: Vec<CatalogChange> = Vec::with_capacity(items.len());
    if args.replace {
        let listed: HashSet<&str> = items.iter().map(|item| item.id.as_str()).collect();
        for (id, _) in index.vectors()? {
            if !listed.contains(id.as_str()) {
                changes.push(CatalogChange::Delete { id });
            }
        }
    }
    let count = items.len();
    changes.extend(items.into_iter().map(CatalogChange::Upsert));
    let applied = index.apply(changes)?;
    for refusal in &applied.refused {
        eprintln!("{}: {refusal}", args.file.display());
    }
    eprintln!(
        "loaded {} of {count} items into {} ({} deleted, {} refused) in {:.1?}; the index holds {}",
        applied.upserted,
        index_dir(&args.data_dir).display(),
        applied.deleted,
        applied.refused.len(),
        started.elapsed(),
        index.len()
    );
    Ok(match applied.refused.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(2),
    })
}

/// "no vector" or "a vector of N dimensions".
fn describe_one(kind: Option<usize>) -> String {
    match kind {
        None => "no vector (computed by kairos)".to_string(),
        Some(dimensions) => format!("vectors of {dimensions} dimensions"),
    }
}

fn describe(kinds: &BTreeSet<Option<usize>>) -> String {
    kinds
        .iter()
        .map(|kind| describe_one(*kind))
        .collect::<Vec<_>>()
        .join(", ")
}
