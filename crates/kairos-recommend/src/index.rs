//! The item index: the catalog, its vectors and its stock, in one LMDB
//! environment, with an arroy forest over the vectors.
//!
//! # Layout
//!
//! One directory holds one LMDB environment with these databases:
//!
//! - `items`: item id → the item as JSON, without its vector;
//! - `ids` / `numbers`: item id ↔ the `u32` arroy knows the item by. Numbers
//!   come from a counter and are never reused, so a number names one item
//!   for the life of the index;
//! - `vectors`: arroy's items (unit vectors) and trees;
//! - `stores`: store id → the set of item numbers with stock > 0 there;
//! - `meta`: the format, how vectors are made (computed or provided, and
//!   their dimensions), the number counter, the set of items whose stock is
//!   untracked and the set in stock somewhere.
//!
//! Keeping the stock sets in LMDB rather than in memory means a query reads
//! them from the same snapshot as the vectors: it never sees an item the
//! stock sets do not know about yet, or the reverse.
//!
//! # Concurrency
//!
//! [`ItemIndex::apply`] makes all its changes in one write transaction and
//! rebuilds only the trees the changed items touch before committing;
//! queries each run in their own read transaction (LMDB keeps the snapshot
//! they started from), so they never wait for a rebuild and see a change as
//! soon as `apply` returns.
//!
//! # Determinism
//!
//! arroy builds trees on rayon threads that draw node ids from a shared
//! counter, so with several threads the same input gives trees with other
//! ids, and ties in its search queue are broken differently. The index
//! therefore builds on a pool of one thread, with a fixed seed: the same
//! changes, applied in the same batches, give the same trees and the same
//! answers in any directory on any machine.

use crate::catalog::{parse_item, CatalogChange, CatalogError, Item, MAX_ID_BYTES};
use crate::features::{computed_vector, COMPUTED_DIMENSIONS};
use crate::vector::{normalised, score, score_key};
use arroy::distances::Cosine;
use arroy::{Reader, Writer};
use heed::byteorder::BigEndian;
use heed::types::{Bytes, Str, U32};
use heed::{Database, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use rand::rngs::StdRng;
use rand::SeedableRng;
use roaring::RoaringBitmap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

/// LMDB's map size: the most the index may grow to. It is address space,
/// not memory or disk: 8 GiB holds ~10 M items of 64 dimensions with room.
const MAP_SIZE: usize = 8 << 30;
/// Concurrent read transactions (queries in flight) LMDB allows.
const MAX_READERS: u32 = 1024;
/// The databases in the environment (six; room for more).
const MAX_DATABASES: u32 = 8;
/// The arroy index inside the `vectors` database (arroy allows several).
const ARROY_INDEX: u16 = 0;
/// The seed of every tree build ("kairos"): fixed, so builds repeat.
const BUILD_SEED: u64 = 0x6b61_6972_6f73;
/// What `meta.format` holds; a directory with anything else is refused.
const FORMAT: &str = "kairos-recommend 1";
/// Queries ask arroy for at least this many candidates, however small k.
const MIN_CANDIDATES: usize = 32;

const META_FORMAT: &str = "format";
const META_VECTORS: &str = "vectors";
const META_NEXT_NUMBER: &str = "next_number";
const META_UNTRACKED: &str = "untracked";
const META_STOCKED_ANYWHERE: &str = "stocked_anywhere";
/// The catalog stream sequence the changes applied came up to (see
/// [`ItemIndex::apply_through`]).
const META_SOURCE_SEQUENCE: &str = "source_sequence";

/// How the index's vectors are made, fixed by the first item stored in an
/// empty index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorSource {
    /// No item carries a vector; each is computed from the item's fields
    /// ([`crate::features`]), [`COMPUTED_DIMENSIONS`] dimensions.
    Computed,
    /// Every item carries an embedding of this many dimensions.
    Provided {
        /// The embeddings' dimensions.
        dimensions: usize,
    },
}

impl VectorSource {
    /// The vectors' dimensions.
    pub fn dimensions(self) -> usize {
        match self {
            VectorSource::Computed => COMPUTED_DIMENSIONS,
            VectorSource::Provided { dimensions } => dimensions,
        }
    }

    fn of(item: &Item) -> VectorSource {
        match &item.vector {
            None => VectorSource::Computed,
            Some(vector) => VectorSource::Provided {
                dimensions: vector.len(),
            },
        }
    }

    fn encode(self) -> String {
        match self {
            VectorSource::Computed => "computed".to_owned(),
            VectorSource::Provided { dimensions } => format!("provided:{dimensions}"),
        }
    }

    fn decode(bytes: &[u8]) -> Option<VectorSource> {
        match std::str::from_utf8(bytes).ok()? {
            "computed" => Some(VectorSource::Computed),
            text => {
                let dimensions = text.strip_prefix("provided:")?.parse().ok()?;
                Some(VectorSource::Provided { dimensions })
            }
        }
    }
}

/// Tuning of the approximate search.
///
/// The defaults aim at recall@10 ≥ 0.9 against exact search with a query
/// p99 under 1 ms on a 100 k-item, 64-dimension catalog. With taste-like
/// queries (`kairos-benches`' `recommend-bench`, BENCHMARKS.md), 32 trees,
/// oversample 4, search_k_factor 16 and leaves of up to 320 items give
/// recall 0.930 (0.936 with a store and exclusions) at p99 830–890 µs,
/// built in 8 s; with arroy's default leaves (one item per dimension, 64)
/// and factor 20: recall 0.941 at p99 1.2 ms, built in 14 s. Larger leaves
/// mean fewer tree nodes to look up for the same candidates (256: recall
/// 0.917, p99 0.85–1.14 ms; 384: p99 1.1 ms; 1,024 and more: slower again,
/// each leaf's items all scored). Earlier, with the
/// crate's `recall` example (200 Gaussian clusters, fastest of 7 runs per
/// query on a busy 2-core machine, release build without LTO):
///
/// | trees | oversample | search_k_factor | recall@10 | p50    | p99    |
/// |-------|------------|-----------------|-----------|--------|--------|
/// | 32    | 4          | 12              | 0.882     | 308 µs | 409 µs |
/// | 32    | 4          | 16              | 0.929     | 356 µs | 542 µs |
/// | **32**| **4**      | **20**          | **0.957** | 392 µs | 482 µs |
/// | 32    | 4          | 32              | 0.989     | 503 µs | 703 µs |
///
/// Query time goes mostly to LMDB lookups of the tree nodes and items
/// arroy visits, so it grows with `search_k_factor`, and with `n_trees`
/// (every tree's upper nodes are visited first). At factor 20, 16 trees
/// gave recall 0.938 (p50 347 µs, built in 10 s) and 64 trees 0.969 (p50
/// 547 µs, p99 828 µs, built in 37 s); 32 trees (built in 18 s) leave room
/// on both targets for catalogs harder than the synthetic one. Builds run
/// on one thread (see the module docs for why).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexOptions {
    /// Trees in the arroy forest. More trees find near neighbours more
    /// reliably for the same search effort but cost build time and disk.
    /// Changing it on an existing index adds or drops trees at the next
    /// [`ItemIndex::apply`] that changes vectors.
    pub n_trees: usize,
    /// Candidates asked of arroy per result wanted: a query for k items asks
    /// for `max(k × oversample, 32)` and ranks them exactly.
    pub oversample: usize,
    /// Search effort per candidate asked: arroy visits tree leaves until it
    /// has gathered `candidates × search_k_factor` item ids (with
    /// repeats across trees), then scores the distinct ones. Higher: better
    /// recall, slower queries.
    pub search_k_factor: usize,
    /// The most items a tree leaf holds (arroy's `split_after`; its own
    /// default is the vectors' dimensions). Applies to the nodes rebuilt
    /// from the next change on.
    pub leaf_size: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            n_trees: 32,
            oversample: 4,
            search_k_factor: 16,
            leaf_size: 320,
        }
    }
}

/// A recommendation query.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// The direction to look in (a taste vector); any length, it is
    /// normalised. Empty or all zeros: no basis for a recommendation, the
    /// answer is empty.
    pub vector: &'a [f32],
    /// How many items at most.
    pub k: usize,
    /// Item ids never to recommend (bought already, in the cart); ids not in
    /// the catalog are ignored.
    pub exclude: &'a [&'a str],
    /// Only items in stock at this store; `None`: in stock anywhere.
    pub store: Option<&'a str>,
}

impl<'a> Query<'a> {
    /// A query for the `k` items nearest `vector`, excluding nothing, any
    /// store.
    pub fn new(vector: &'a [f32], k: usize) -> Query<'a> {
        Query {
            vector,
            k,
            exclude: &[],
            store: None,
        }
    }
}

/// One recommended item.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recommendation {
    /// The item's id.
    pub item_id: String,
    /// Cosine similarity to the query, rounded to 4 decimals.
    pub score: f32,
}

/// Where in its source a change came from: which source (a stream made
/// again is another one, whose sequences start over) and the sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourcePosition {
    /// The source's identity (the catalog stream's creation time in ns).
    pub source: u64,
    /// The last sequence applied.
    pub sequence: u64,
}

/// What [`ItemIndex::apply`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// Items added or replaced.
    pub upserted: usize,
    /// Items deleted.
    pub deleted: usize,
    /// Deletions of ids that were not in the catalog (nothing to do; a
    /// redelivered message, say).
    pub already_absent: usize,
    /// Stock changes applied.
    pub stock_changes: usize,
    /// Changes not applied, with why; the others in the batch were.
    pub refused: Vec<Refusal>,
}

/// A change [`ItemIndex::apply`] did not apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// The change's position among those given to `apply` (from 0).
    pub position: usize,
    /// The id of the item the change was about.
    pub id: String,
    /// Why it was refused.
    pub reason: RefusalReason,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item {:?}: {}", self.id, self.reason)
    }
}

/// Why a change was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RefusalReason {
    /// The change fails [`CatalogChange::validate`].
    #[error("{0}")]
    Invalid(CatalogError),
    /// The item's embedding has other dimensions than the catalog's.
    #[error("its vector has {got} dimensions; the catalog's embeddings have {expected}")]
    WrongDimensions {
        /// The catalog's dimensions.
        expected: usize,
        /// The item's.
        got: usize,
    },
    /// The item has no vector, but the catalog's items carry embeddings.
    #[error(
        "it has no vector; the catalog's items carry embeddings of {expected} dimensions \
         (a catalog provides every item's vector or none)"
    )]
    MissingVector {
        /// The catalog's dimensions.
        expected: usize,
    },
    /// The item has a vector, but the catalog's vectors are computed.
    #[error(
        "it has a vector ({got} dimensions); the catalog's vectors are computed from item fields \
         (a catalog provides every item's vector or none)"
    )]
    UnexpectedVector {
        /// The item's dimensions.
        got: usize,
    },
    /// A stock change for an item that is not in the catalog.
    #[error("no item with this id; upsert the item before changing its stock")]
    UnknownItem,
}

impl RefusalReason {
    fn mismatch(catalog: VectorSource, item: VectorSource) -> RefusalReason {
        match (catalog, item) {
            (VectorSource::Computed, item) => RefusalReason::UnexpectedVector {
                got: item.dimensions(),
            },
            (catalog, VectorSource::Computed) => RefusalReason::MissingVector {
                expected: catalog.dimensions(),
            },
            (catalog, item) => RefusalReason::WrongDimensions {
                expected: catalog.dimensions(),
                got: item.dimensions(),
            },
        }
    }
}

/// Why the index could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index directory could not be created.
    #[error("cannot create the index directory {}: {source}", path.display())]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// LMDB failed (disk full, map full, permissions, ...).
    #[error("item index storage (LMDB): {0}")]
    Storage(#[from] heed::Error),
    /// arroy failed.
    #[error("item index vectors (arroy): {0}")]
    Vectors(#[from] arroy::Error),
    /// The thread that builds trees could not be started.
    #[error("cannot start the item index build thread: {0}")]
    BuildThread(#[from] rayon::ThreadPoolBuildError),
    /// The directory holds an index of another format (or something else).
    #[error("{} holds an item index in format {found:?}; this version reads {FORMAT:?}", path.display())]
    Format {
        /// The directory.
        path: PathBuf,
        /// The format found.
        found: String,
    },
    /// [`IndexOptions`] out of range.
    #[error("invalid item index option: {0}")]
    Options(String),
    /// The query vector's length is not the catalog's dimensions.
    #[error("the query vector has {got} dimensions; the catalog's vectors have {expected}")]
    QueryDimensions {
        /// The catalog's dimensions.
        expected: usize,
        /// The query's.
        got: usize,
    },
    /// The query vector has a NaN or infinite component.
    #[error("the query vector's component {index} is {value}; components must be finite")]
    QueryNotFinite {
        /// The component's index.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// Every item number has been handed out (4 billion upserts of new ids).
    #[error("the item index has used up its 2³² item numbers; rebuild it from the catalog")]
    NumbersExhausted,
    /// Stored data does not decode: the index was damaged.
    #[error("the item index is damaged: {0}")]
    Damaged(String),
}

/// The databases of one environment (see the module docs).
#[derive(Clone, Copy)]
struct Databases {
    items: Database<Str, Bytes>,
    ids: Database<Str, U32<BigEndian>>,
    numbers: Database<U32<BigEndian>, Str>,
    stores: Database<Str, Bytes>,
    meta: Database<Str, Bytes>,
    vectors: arroy::Database<Cosine>,
}

/// What `len` and `dimensions` answer without a transaction; replaced
/// after each commit.
#[derive(Clone, Copy, Debug)]
struct Summary {
    len: usize,
    source: Option<VectorSource>,
}

/// The item catalog and its nearest-neighbour index, persisted in a
/// directory.
///
/// `Send + Sync`: share it (in an `Arc`) between the threads that query and
/// the one that applies changes. Queries run concurrently and never wait;
/// `apply` calls are serialised.
pub struct ItemIndex {
    /// Read transactions without thread-local storage: a thread may hold
    /// several, and they need not end on the thread that began them.
    env: Env<WithoutTls>,
    databases: Databases,
    options: IndexOptions,
    /// One thread: builds must be deterministic (see the module docs).
    build_pool: rayon::ThreadPool,
    /// Serialises `apply`: the build pool's one thread could otherwise pick
    /// up a second `apply` while the first waits inside arroy, and LMDB
    /// allows one write transaction per thread.
    apply_lock: Mutex<()>,
    /// Replaced by `apply` after each commit, so `len` and `dimensions`
    /// need no transaction.
    summary: RwLock<Summary>,
}

impl fmt::Debug for ItemIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summary = self.summary();
        f.debug_struct("ItemIndex")
            .field("path", &self.env.path())
            .field("len", &summary.len)
            .field("source", &summary.source)
            .field("options", &self.options)
            .finish()
    }
}

impl ItemIndex {
    /// Opens the index in `dir` (creating the directory and an empty index
    /// if missing) with the default [`IndexOptions`].
    ///
    /// The directory is LMDB's: nothing else may write to its files while
    /// the index is open, and one process opens it once at a time.
    pub fn open(dir: &Path) -> Result<ItemIndex, IndexError> {
        ItemIndex::open_with(dir, IndexOptions::default())
    }

    /// Opens the index in `dir` with the given options (see [`ItemIndex::open`]).
    pub fn open_with(dir: &Path, options: IndexOptions) -> Result<ItemIndex, IndexError> {
        for (name, value) in [
            ("n_trees", options.n_trees),
            ("oversample", options.oversample),
            ("search_k_factor", options.search_k_factor),
            ("leaf_size", options.leaf_size),
        ] {
            if value == 0 {
                return Err(IndexError::Options(format!(
                    "{name} must be at least 1, got 0"
                )));
            }
        }
        std::fs::create_dir_all(dir).map_err(|source| IndexError::CreateDirectory {
            path: dir.to_owned(),
            source,
        })?;
        let mut env_options = EnvOpenOptions::new().read_txn_without_tls();
        env_options
            .map_size(MAP_SIZE)
            .max_readers(MAX_READERS)
            .max_dbs(MAX_DATABASES);
        // SAFETY: LMDB maps the files into memory; modifying them other than
        // through LMDB would be undefined behaviour. The directory belongs
        // to the index (documented on `open`), and heed refuses to open one
        // environment twice in a process.
        let env = unsafe { env_options.open(dir)? };

        let mut wtxn = env.write_txn()?;
        let databases = Databases {
            items: env.create_database(&mut wtxn, Some("items"))?,
            ids: env.create_database(&mut wtxn, Some("ids"))?,
            numbers: env.create_database(&mut wtxn, Some("numbers"))?,
            stores: env.create_database(&mut wtxn, Some("stores"))?,
            meta: env.create_database(&mut wtxn, Some("meta"))?,
            vectors: env.create_database(&mut wtxn, Some("vectors"))?,
        };
        match databases.meta.get(&wtxn, META_FORMAT)? {
            Some(found) if found == FORMAT.as_bytes() => {}
            Some(found) => {
                return Err(IndexError::Format {
                    path: dir.to_owned(),
                    found: String::from_utf8_lossy(found).into_owned(),
                })
            }
            None => databases
                .meta
                .put(&mut wtxn, META_FORMAT, FORMAT.as_bytes())?,
        }
        let summary = Summary {
            len: databases.ids.len(&wtxn)? as usize,
            source: read_source(databases, &wtxn)?,
        };
        wtxn.commit()?;

        let build_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "kairos-recommend-build".to_owned())
            .build()?;
        Ok(ItemIndex {
            env,
            databases,
            options,
            build_pool,
            apply_lock: Mutex::new(()),
            summary: RwLock::new(summary),
        })
    }

    /// The directory the index lives in.
    pub fn path(&self) -> &Path {
        self.env.path()
    }

    /// The options the index was opened with.
    pub fn options(&self) -> IndexOptions {
        self.options
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.summary().len
    }

    /// Whether the catalog is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The vectors' dimensions; `None` while the catalog is empty.
    pub fn dimensions(&self) -> Option<usize> {
        self.summary().source.map(VectorSource::dimensions)
    }

    /// How the vectors are made; `None` while the catalog is empty (the
    /// first item stored decides).
    pub fn vector_source(&self) -> Option<VectorSource> {
        self.summary().source
    }

    fn summary(&self) -> Summary {
        *self.summary.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies changes in order, in one transaction: on success they are all
    /// visible to the next query at once; on error none is.
    ///
    /// A change that cannot apply is refused (listed in
    /// [`Applied::refused`]) and the others still apply: an invalid item, a
    /// stock change for an unknown item, or an item whose vector does not
    /// fit the catalog. The first item stored in an empty catalog decides
    /// how vectors are made ([`VectorSource`]); after it, an item with a
    /// vector of other dimensions, without a vector in a catalog of
    /// embeddings, or with one in a catalog of computed vectors, is refused.
    /// A catalog emptied by deletions accepts either again.
    ///
    /// Re-upserting an item whose vector did not change (a new price, say)
    /// touches no tree; otherwise only the trees' paths to the changed items
    /// are rebuilt.
    pub fn apply(
        &self,
        changes: impl IntoIterator<Item = CatalogChange>,
    ) -> Result<Applied, IndexError> {
        self.apply_recording(changes, None)
    }

    /// Like [`ItemIndex::apply`], recording in the same transaction that the
    /// changes came up to `through` in their source (the catalog stream):
    /// a follower that resumes after [`ItemIndex::applied_position`] then
    /// neither skips nor repeats a change, whenever it stopped.
    pub fn apply_through(
        &self,
        changes: impl IntoIterator<Item = CatalogChange>,
        through: SourcePosition,
    ) -> Result<Applied, IndexError> {
        self.apply_recording(changes, Some(through))
    }

    /// The position recorded by the last [`ItemIndex::apply_through`]
    /// (`None`: none yet).
    pub fn applied_position(&self) -> Result<Option<SourcePosition>, IndexError> {
        let rtxn = self.env.read_txn()?;
        let Some(bytes) = self.databases.meta.get(&rtxn, META_SOURCE_SEQUENCE)? else {
            return Ok(None);
        };
        let number = |part: &[u8]| part.try_into().map(u64::from_be_bytes);
        match bytes.len() {
            // Recorded before the source was: a source no stream has.
            8 => Ok(number(bytes).ok().map(|sequence| SourcePosition {
                source: 0,
                sequence,
            })),
            16 => Ok(number(&bytes[..8])
                .and_then(|source| Ok((source, number(&bytes[8..])?)))
                .ok()
                .map(|(source, sequence)| SourcePosition { source, sequence })),
            _ => Err(IndexError::Damaged(
                "the recorded source position".to_owned(),
            )),
        }
    }

    /// One item's vector as indexed (unit length), computed or provided.
    pub fn vector(&self, id: &str) -> Result<Option<Vec<f32>>, IndexError> {
        if id.len() > MAX_ID_BYTES {
            return Ok(None);
        }
        let rtxn = self.env.read_txn()?;
        let (Some(number), Some(source)) = (
            self.databases.ids.get(&rtxn, id)?,
            read_source(self.databases, &rtxn)?,
        ) else {
            return Ok(None);
        };
        let reader = Reader::open(&rtxn, ARROY_INDEX, self.databases.vectors)?;
        let mut vector = reader
            .item_vector(&rtxn, number)?
            .ok_or_else(|| IndexError::Damaged(format!("item {id:?} has no vector")))?;
        vector.truncate(source.dimensions());
        Ok(Some(vector))
    }

    fn apply_recording(
        &self,
        changes: impl IntoIterator<Item = CatalogChange>,
        through: Option<SourcePosition>,
    ) -> Result<Applied, IndexError> {
        // Collected here: the work runs on the build thread, which needs the
        // changes to be `Send` (an arbitrary iterator may not be).
        let changes: Vec<CatalogChange> = changes.into_iter().collect();
        let _one_at_a_time = self
            .apply_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The whole transaction runs on the build thread: LMDB wants a write
        // transaction used by the thread that began it, and arroy's build
        // must run inside the one-thread pool.
        let (applied, summary) = self
            .build_pool
            .install(|| self.apply_in_one_transaction(changes, through))?;
        *self.summary.write().unwrap_or_else(PoisonError::into_inner) = summary;
        Ok(applied)
    }

    fn apply_in_one_transaction(
        &self,
        changes: Vec<CatalogChange>,
        through: Option<SourcePosition>,
    ) -> Result<(Applied, Summary), IndexError> {
        let mut wtxn = self.env.write_txn()?;
        if let Some(SourcePosition { source, sequence }) = through {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&source.to_be_bytes());
            bytes[8..].copy_from_slice(&sequence.to_be_bytes());
            self.databases
                .meta
                .put(&mut wtxn, META_SOURCE_SEQUENCE, &bytes)?;
        }
        let mut batch = Batch::load(self.databases, &wtxn)?;
        let mut applied = Applied::default();
        for (position, change) in changes.into_iter().enumerate() {
            if let Err(error) = change.validate() {
                let id = change.id().to_owned();
                applied.refused.push(Refusal {
                    position,
                    id,
                    reason: RefusalReason::Invalid(error),
                });
                continue;
            }
            match change {
                CatalogChange::Upsert(item) => {
                    let id = item.id.clone();
                    match self.upsert(&mut wtxn, &mut batch, item)? {
                        Ok(()) => applied.upserted += 1,
                        Err(reason) => applied.refused.push(Refusal {
                            position,
                            id,
                            reason,
                        }),
                    }
                }
                CatalogChange::Delete { id } => {
                    if self.delete(&mut wtxn, &mut batch, &id)? {
                        applied.deleted += 1;
                    } else {
                        applied.already_absent += 1;
                    }
                }
                CatalogChange::Stock {
                    id,
                    store,
                    quantity,
                } => match self.restock(&mut wtxn, &mut batch, &id, store, quantity)? {
                    Ok(()) => applied.stock_changes += 1,
                    Err(reason) => applied.refused.push(Refusal {
                        position,
                        id,
                        reason,
                    }),
                },
            }
        }
        let summary = self.finish(&mut wtxn, batch)?;
        wtxn.commit()?;
        Ok((applied, summary))
    }

    fn writer(&self, source: VectorSource) -> Writer<Cosine> {
        Writer::new(self.databases.vectors, ARROY_INDEX, source.dimensions())
    }

    fn upsert(
        &self,
        wtxn: &mut RwTxn,
        batch: &mut Batch,
        mut item: Item,
    ) -> Result<Result<(), RefusalReason>, IndexError> {
        let wanted = VectorSource::of(&item);
        match batch.source {
            Some(source) if source == wanted => {}
            Some(source) if batch.len > 0 => {
                return Ok(Err(RefusalReason::mismatch(source, wanted)))
            }
            previous => {
                // An empty catalog: this item decides. Drop whatever arroy
                // kept of vectors of another kind (deleted items, trees).
                if let Some(previous) = previous {
                    self.writer(previous).clear(wtxn)?;
                }
                batch.source = Some(wanted);
            }
        }
        let vector = match &item.vector {
            None => computed_vector(&item),
            // Validated: finite and not all zeros, so it has a direction.
            Some(vector) => normalised(vector).ok_or_else(|| {
                IndexError::Damaged(format!(
                    "item {:?}: a validated vector has no length",
                    item.id
                ))
            })?,
        };
        // The vector lives in arroy; the record keeps the rest.
        item.vector = None;

        let databases = self.databases;
        let writer = self.writer(wanted);
        let previous = databases.ids.get(wtxn, &item.id)?;
        let number = match previous {
            Some(number) => {
                let stock = stored_item(databases, wtxn, &item.id)?.stock;
                batch.unstock(wtxn, number, stock.as_ref())?;
                // An unchanged vector (a price change, say) leaves the trees be.
                if writer.item_vector(wtxn, number)?.as_deref() != Some(&vector[..]) {
                    writer.add_item(wtxn, number, &vector)?;
                }
                number
            }
            None => {
                let number = batch.take_number()?;
                databases.ids.put(wtxn, &item.id, &number)?;
                databases.numbers.put(wtxn, &number, &item.id)?;
                writer.add_item(wtxn, number, &vector)?;
                batch.len += 1;
                number
            }
        };
        batch.stock(wtxn, number, item.stock.as_ref())?;
        databases.items.put(wtxn, &item.id, &record(&item)?)?;
        Ok(Ok(()))
    }

    /// Deletes an item; `false` if there was none with this id.
    fn delete(&self, wtxn: &mut RwTxn, batch: &mut Batch, id: &str) -> Result<bool, IndexError> {
        let databases = self.databases;
        let Some(number) = databases.ids.get(wtxn, id)? else {
            return Ok(false);
        };
        let stock = stored_item(databases, wtxn, id)?.stock;
        batch.unstock(wtxn, number, stock.as_ref())?;
        if let Some(source) = batch.source {
            self.writer(source).del_item(wtxn, number)?;
        }
        databases.ids.delete(wtxn, id)?;
        databases.numbers.delete(wtxn, &number)?;
        databases.items.delete(wtxn, id)?;
        batch.len -= 1;
        Ok(true)
    }

    fn restock(
        &self,
        wtxn: &mut RwTxn,
        batch: &mut Batch,
        id: &str,
        store: String,
        quantity: u32,
    ) -> Result<Result<(), RefusalReason>, IndexError> {
        let databases = self.databases;
        let Some(number) = databases.ids.get(wtxn, id)? else {
            return Ok(Err(RefusalReason::UnknownItem));
        };
        let mut item = stored_item(databases, wtxn, id)?;
        batch.unstock(wtxn, number, item.stock.as_ref())?;
        item.stock
            .get_or_insert_with(BTreeMap::new)
            .insert(store, quantity);
        batch.stock(wtxn, number, item.stock.as_ref())?;
        databases.items.put(wtxn, id, &record(&item)?)?;
        Ok(Ok(()))
    }

    /// Writes the batch's bookkeeping and brings the trees up to date.
    fn finish(&self, wtxn: &mut RwTxn, batch: Batch) -> Result<Summary, IndexError> {
        let meta = self.databases.meta;
        meta.put(wtxn, META_UNTRACKED, &encode_bitmap(&batch.untracked))?;
        meta.put(
            wtxn,
            META_STOCKED_ANYWHERE,
            &encode_bitmap(&batch.stocked_anywhere),
        )?;
        for (store, items) in &batch.stores {
            if items.is_empty() {
                self.databases.stores.delete(wtxn, store)?;
            } else {
                self.databases
                    .stores
                    .put(wtxn, store, &encode_bitmap(items))?;
            }
        }
        meta.put(wtxn, META_NEXT_NUMBER, &batch.next_number.to_be_bytes())?;

        let source = match batch.source {
            Some(source) if batch.len == 0 => {
                // Empty again: the next item may bring vectors of any kind.
                self.writer(source).clear(wtxn)?;
                meta.delete(wtxn, META_VECTORS)?;
                None
            }
            Some(source) => {
                meta.put(wtxn, META_VECTORS, source.encode().as_bytes())?;
                let writer = self.writer(source);
                if writer.need_build(wtxn)? {
                    // A fresh generator per build: the trees depend on the
                    // changes only, not on how many builds came before.
                    let mut rng = StdRng::seed_from_u64(BUILD_SEED);
                    writer
                        .builder(&mut rng)
                        .n_trees(self.options.n_trees)
                        .split_after(self.options.leaf_size)
                        .build(wtxn)?;
                }
                Some(source)
            }
            None => None,
        };
        Ok(Summary {
            len: batch.len as usize,
            source,
        })
    }

    /// The item with this id, if any. Its `vector`, in a catalog of provided
    /// embeddings, is the vector as indexed: scaled to unit length.
    pub fn item(&self, id: &str) -> Result<Option<Item>, IndexError> {
        if id.len() > MAX_ID_BYTES {
            return Ok(None);
        }
        let rtxn = self.env.read_txn()?;
        let Some(number) = self.databases.ids.get(&rtxn, id)? else {
            return Ok(None);
        };
        let mut item = stored_item(self.databases, &rtxn, id)?;
        if let Some(source @ VectorSource::Provided { .. }) = read_source(self.databases, &rtxn)? {
            let reader = Reader::open(&rtxn, ARROY_INDEX, self.databases.vectors)?;
            let mut vector = reader
                .item_vector(&rtxn, number)?
                .ok_or_else(|| IndexError::Damaged(format!("item {id:?} has no vector")))?;
            vector.truncate(source.dimensions());
            item.vector = Some(vector);
        }
        Ok(Some(item))
    }

    /// Every item's id and vector as indexed (unit length), sorted by id:
    /// what the engine needs to keep taste vectors.
    pub fn vectors(&self) -> Result<Vec<(String, Vec<f32>)>, IndexError> {
        let rtxn = self.env.read_txn()?;
        let Some(source) = read_source(self.databases, &rtxn)? else {
            return Ok(Vec::new());
        };
        let reader = Reader::open(&rtxn, ARROY_INDEX, self.databases.vectors)?;
        let mut vectors = Vec::with_capacity(reader.n_items() as usize);
        // LMDB orders keys by their bytes, as `str`'s `Ord` does.
        for entry in self.databases.ids.iter(&rtxn)? {
            let (id, number) = entry?;
            let mut vector = reader
                .item_vector(&rtxn, number)?
                .ok_or_else(|| IndexError::Damaged(format!("item {id:?} has no vector")))?;
            vector.truncate(source.dimensions());
            vectors.push((id.to_owned(), vector));
        }
        Ok(vectors)
    }

    /// The `query.k` items most similar to `query.vector` (cosine
    /// similarity), best first, among the items in stock (at
    /// `query.store`, or anywhere) and not excluded; ties are ordered by
    /// item id.
    ///
    /// An empty catalog, `k = 0`, or an empty or all-zero query vector (no
    /// taste yet) give an empty answer. A query vector of other dimensions
    /// than the catalog's, or with NaN or infinite components, is an error:
    /// it is a bug in the caller, not a customer without a taste.
    ///
    /// The search is approximate ([`IndexOptions`]): arroy proposes
    /// `max(k × oversample, 32)` candidates, which are then ranked exactly,
    /// so the answer is exact among them and the same for the same query
    /// on the same index.
    pub fn recommend(&self, query: &Query<'_>) -> Result<Vec<Recommendation>, IndexError> {
        if query.k == 0 || query.vector.is_empty() {
            return Ok(Vec::new());
        }
        let rtxn = self.env.read_txn()?;
        let Some(source) = read_source(self.databases, &rtxn)? else {
            return Ok(Vec::new());
        };
        let Some(vector) = query_vector(query.vector, source)? else {
            return Ok(Vec::new());
        };
        let reader = Reader::open(&rtxn, ARROY_INDEX, self.databases.vectors)?;
        let mut candidates = self.in_stock(&rtxn, query.store)?;
        candidates &= reader.item_ids();
        for &id in query.exclude {
            if id.len() <= MAX_ID_BYTES {
                if let Some(number) = self.databases.ids.get(&rtxn, id)? {
                    candidates.remove(number);
                }
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }

        let wanted = query
            .k
            .saturating_mul(self.options.oversample)
            .max(MIN_CANDIDATES);
        let search_k = NonZeroUsize::new(wanted.saturating_mul(self.options.search_k_factor))
            .unwrap_or(NonZeroUsize::MIN);
        let mut nearest = reader.nns(wanted);
        nearest.search_k(search_k).candidates(&candidates);
        let found = nearest.by_vector(&rtxn, &vector)?;
        let mut scored = Vec::with_capacity(found.len());
        for (number, _) in found {
            let item_vector = reader.item_vector(&rtxn, number)?.ok_or_else(|| {
                IndexError::Damaged(format!("item number {number} has no vector"))
            })?;
            scored.push((score_key(&vector, &item_vector), number));
        }
        self.best(&rtxn, scored, query.k)
    }

    /// The `k` items most similar to `vector` by brute force over every
    /// item, ignoring stock: the reference [`ItemIndex::recommend`]'s recall
    /// is measured against. Same scores, same order, same rules for the
    /// query vector.
    pub fn exact_nearest(
        &self,
        vector: &[f32],
        k: usize,
    ) -> Result<Vec<Recommendation>, IndexError> {
        if k == 0 || vector.is_empty() {
            return Ok(Vec::new());
        }
        let rtxn = self.env.read_txn()?;
        let Some(source) = read_source(self.databases, &rtxn)? else {
            return Ok(Vec::new());
        };
        let Some(vector) = query_vector(vector, source)? else {
            return Ok(Vec::new());
        };
        let reader = Reader::open(&rtxn, ARROY_INDEX, self.databases.vectors)?;
        let mut scored = Vec::with_capacity(reader.n_items() as usize);
        for entry in reader.iter(&rtxn)? {
            let (number, item_vector) = entry?;
            scored.push((score_key(&vector, &item_vector), number));
        }
        self.best(&rtxn, scored, k)
    }

    /// Items in stock at `store` (or anywhere): untracked or stocked.
    fn in_stock(&self, rtxn: &RoTxn, store: Option<&str>) -> Result<RoaringBitmap, IndexError> {
        let mut in_stock = decode_bitmap(self.databases.meta.get(rtxn, META_UNTRACKED)?)?;
        let stocked = match store {
            // Longer ids cannot be LMDB keys, nor stores in the catalog.
            Some(store) if store.is_empty() || store.len() > MAX_ID_BYTES => RoaringBitmap::new(),
            Some(store) => decode_bitmap(self.databases.stores.get(rtxn, store)?)?,
            None => decode_bitmap(self.databases.meta.get(rtxn, META_STOCKED_ANYWHERE)?)?,
        };
        in_stock |= stocked;
        Ok(in_stock)
    }

    /// The best `k` of `(score key, item number)` pairs, by score, then id.
    fn best(
        &self,
        rtxn: &RoTxn,
        mut scored: Vec<(i32, u32)>,
        k: usize,
    ) -> Result<Vec<Recommendation>, IndexError> {
        if scored.len() > k {
            // Keep the k best and everything tied with the k-th: which of
            // the tied items make the cut depends on their ids.
            let (_, &mut (threshold, _), _) =
                scored.select_nth_unstable_by(k - 1, |a, b| b.0.cmp(&a.0));
            scored.retain(|&(key, _)| key >= threshold);
        }
        let mut named = Vec::with_capacity(scored.len());
        for (key, number) in scored {
            let id =
                self.databases.numbers.get(rtxn, &number)?.ok_or_else(|| {
                    IndexError::Damaged(format!("item number {number} has no id"))
                })?;
            named.push((key, id));
        }
        named.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        named.truncate(k);
        Ok(named
            .into_iter()
            .map(|(key, id)| Recommendation {
                item_id: id.to_owned(),
                score: score(key),
            })
            .collect())
    }
}

/// The query vector, checked against the catalog and scaled to unit length;
/// `None` if it has no direction.
fn query_vector(vector: &[f32], source: VectorSource) -> Result<Option<Vec<f32>>, IndexError> {
    let expected = source.dimensions();
    if vector.len() != expected {
        return Err(IndexError::QueryDimensions {
            expected,
            got: vector.len(),
        });
    }
    if let Some(index) = vector.iter().position(|component| !component.is_finite()) {
        return Err(IndexError::QueryNotFinite {
            index,
            value: vector[index],
        });
    }
    Ok(normalised(vector))
}

fn read_source(databases: Databases, rtxn: &RoTxn) -> Result<Option<VectorSource>, IndexError> {
    match databases.meta.get(rtxn, META_VECTORS)? {
        None => Ok(None),
        Some(bytes) => VectorSource::decode(bytes).map(Some).ok_or_else(|| {
            IndexError::Damaged(format!(
                "meta.vectors is {:?}, not computed or provided:<dimensions>",
                String::from_utf8_lossy(bytes)
            ))
        }),
    }
}

fn stored_item(databases: Databases, rtxn: &RoTxn, id: &str) -> Result<Item, IndexError> {
    let bytes = databases
        .items
        .get(rtxn, id)?
        .ok_or_else(|| IndexError::Damaged(format!("item {id:?} has a number but no record")))?;
    parse_item(bytes).map_err(|error| IndexError::Damaged(format!("item {id:?}: {error}")))
}

/// An item's stored record: its JSON, which [`parse_item`] reads back.
fn record(item: &Item) -> Result<Vec<u8>, IndexError> {
    serde_json::to_vec(item).map_err(|error| {
        IndexError::Damaged(format!("item {:?} does not serialise: {error}", item.id))
    })
}

fn encode_bitmap(bitmap: &RoaringBitmap) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(bitmap.serialized_size());
    // Writing into a Vec cannot fail.
    let _ = bitmap.serialize_into(&mut bytes);
    bytes
}

fn decode_bitmap(bytes: Option<&[u8]>) -> Result<RoaringBitmap, IndexError> {
    match bytes {
        None => Ok(RoaringBitmap::new()),
        Some(bytes) => RoaringBitmap::deserialize_from(bytes)
            .map_err(|error| IndexError::Damaged(format!("a stock set does not decode: {error}"))),
    }
}

/// The bookkeeping one `apply` updates in memory and writes back at the end.
struct Batch {
    databases: Databases,
    len: u64,
    source: Option<VectorSource>,
    /// The next item number to hand out; u64 so that "all 2³² used" is a
    /// value too.
    next_number: u64,
    untracked: RoaringBitmap,
    stocked_anywhere: RoaringBitmap,
    /// The per-store sets this batch touched, read on first use.
    stores: BTreeMap<String, RoaringBitmap>,
}

impl Batch {
    fn load(databases: Databases, rtxn: &RoTxn) -> Result<Batch, IndexError> {
        let next_number = match databases.meta.get(rtxn, META_NEXT_NUMBER)? {
            None => 0,
            Some(bytes) => u64::from_be_bytes(bytes.try_into().map_err(|_| {
                IndexError::Damaged(format!("meta.next_number is {} bytes, not 8", bytes.len()))
            })?),
        };
        Ok(Batch {
            databases,
            len: databases.ids.len(rtxn)?,
            source: read_source(databases, rtxn)?,
            next_number,
            untracked: decode_bitmap(databases.meta.get(rtxn, META_UNTRACKED)?)?,
            stocked_anywhere: decode_bitmap(databases.meta.get(rtxn, META_STOCKED_ANYWHERE)?)?,
            stores: BTreeMap::new(),
        })
    }

    fn take_number(&mut self) -> Result<u32, IndexError> {
        let number = u32::try_from(self.next_number).map_err(|_| IndexError::NumbersExhausted)?;
        self.next_number += 1;
        Ok(number)
    }

    fn store(&mut self, rtxn: &RoTxn, store: &str) -> Result<&mut RoaringBitmap, IndexError> {
        if !self.stores.contains_key(store) {
            let items = decode_bitmap(self.databases.stores.get(rtxn, store)?)?;
            self.stores.insert(store.to_owned(), items);
        }
        self.stores
            .get_mut(store)
            .ok_or_else(|| IndexError::Damaged(format!("store {store:?} vanished")))
    }

    /// Takes an item out of the stock sets its `stock` put it in.
    fn unstock(
        &mut self,
        rtxn: &RoTxn,
        number: u32,
        stock: Option<&BTreeMap<String, u32>>,
    ) -> Result<(), IndexError> {
        match stock {
            None => {
                self.untracked.remove(number);
            }
            Some(stock) => {
                for store in stock.keys() {
                    self.store(rtxn, store)?.remove(number);
                }
                self.stocked_anywhere.remove(number);
            }
        }
        Ok(())
    }

    /// Puts an item in the stock sets its `stock` calls for.
    fn stock(
        &mut self,
        rtxn: &RoTxn,
        number: u32,
        stock: Option<&BTreeMap<String, u32>>,
    ) -> Result<(), IndexError> {
        match stock {
            None => {
                self.untracked.insert(number);
            }
            Some(stock) => {
                for (store, &quantity) in stock {
                    if quantity > 0 {
                        self.store(rtxn, store)?.insert(number);
                        self.stocked_anywhere.insert(number);
                    }
                }
            }
        }
        Ok(())
    }
}
