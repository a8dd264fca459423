//! Deterministic synthetic workloads for the kairos benchmarks.
//!
//! Everything here is a pure function of a [`Config`] (seed included): the
//! same config always yields the same JSON lines, byte for byte, so numbers
//! from different runs and machines are comparable. No `rand` dependency: a
//! splitmix64 generator and a table-driven Zipf sampler are enough.
//!
//! Two workloads:
//!
//! - [`Workload::Retail`]: N customers with Zipf-skewed popularity and the
//!   event mix of a retail app, as Segment calls (track, page, identify),
//!   feeding every trigger of `pipelines/retail.toml`.
//! - [`Workload::Cart`]: the abandoned-cart job of the Flink comparison in
//!   the architecture notes: only `Product Added` / `Order Completed`, small
//!   (~190-byte) calls, customers chosen uniformly.
//!
//! The benchmarks live in `benches/benches/engine.rs`; the binaries
//! `gen-events` (write a workload as JSON lines) and `state-size` (bytes per
//! customer) in `src/bin/`.

pub mod catalog;

use kairos_model::time::days_from_civil;
use kairos_model::Event;
use std::fmt::Write as _;

/// 2026-11-23T00:00:00Z in milliseconds since the epoch: the default start.
pub const DEFAULT_START_MS: i64 = days_from_civil(2026, 11, 23) * DAY_MS;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Which workload to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// The retail event mix over the whole trigger catalog.
    Retail,
    /// Product Added / Order Completed only (the Flink comparison).
    Cart,
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "retail" => Ok(Workload::Retail),
            "cart" => Ok(Workload::Cart),
            other => Err(format!(
                "unknown workload {other:?}; accepted: retail, cart"
            )),
        }
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    /// The workload.
    pub workload: Workload,
    /// Distinct customers (`u0` .. `u{N-1}`).
    pub customers: u64,
    /// Events to generate (`u64::MAX` for an endless stream).
    pub events: u64,
    /// PRNG seed.
    pub seed: u64,
    /// Event time of the first event (ms since the epoch).
    pub start_ms: i64,
    /// Simulated milliseconds per event: event `i` is due at
    /// `start + i * ms_per_event`, minus jitter.
    pub ms_per_event: f64,
    /// Zipf exponent of customer popularity (0 = uniform).
    pub zipf_s: f64,
    /// Events are moved back in time by up to this many ms (out of order
    /// arrival, kept below the pipelines' 5 s allowed lateness).
    pub max_jitter_ms: u64,
    /// The retail workload's event mix: a weight for each of [`MIX_NAMES`]
    /// (the default, [`RETAIL_MIX`], in tenths of a percent).
    pub mix: [u16; 13],
}

/// The kinds of event of the retail workload, as `--mix` names them.
pub const MIX_NAMES: [&str; 13] = [
    "product_viewed",
    "page",
    "product_added",
    "product_removed",
    "cart_viewed",
    "order_completed",
    "store_visited",
    "location_updated",
    "points_earned",
    "message_opened",
    "complaint_filed",
    "review_submitted",
    "identify",
];

/// The retail workload's default mix, in tenths of a percent (sums to
/// 1000), in the order of [`MIX_NAMES`].
pub const RETAIL_MIX: [u16; 13] = [450, 200, 120, 30, 50, 50, 20, 30, 20, 10, 5, 5, 10];

/// The kind each weight of a mix stands for.
const MIX_KINDS: [Kind; 13] = [
    Kind::ProductViewed,
    Kind::Page,
    Kind::ProductAdded,
    Kind::ProductRemoved,
    Kind::CartViewed,
    Kind::OrderCompleted,
    Kind::StoreVisited,
    Kind::LocationUpdated,
    Kind::PointsEarned,
    Kind::MessageOpened,
    Kind::ComplaintFiled,
    Kind::ReviewSubmitted,
    Kind::Identify,
];

/// `RETAIL_MIX` with the weights `text` names changed: `NAME=WEIGHT,...`
/// (names from [`MIX_NAMES`]); the error names what is wrong and what is
/// accepted.
pub fn parse_mix(text: &str) -> Result<[u16; 13], String> {
    let mut mix = RETAIL_MIX;
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not NAME=WEIGHT"))?;
        let index = MIX_NAMES
            .iter()
            .position(|known| *known == name.trim())
            .ok_or_else(|| {
                format!(
                    "{name:?} is not a kind of event; accepted: {}",
                    MIX_NAMES.join(", ")
                )
            })?;
        mix[index] = weight.trim().parse().map_err(|_| {
            format!("{name}={weight}: the weight is not a whole number from 0 to 65535")
        })?;
    }
    if mix.iter().all(|weight| *weight == 0) {
        return Err("every weight is 0; accepted: at least one above 0".into());
    }
    Ok(mix)
}

impl Config {
    /// The retail workload: Zipf (s = 1.05) over `customers`, `events` spread
    /// at 10 M events per simulated day (8.64 ms per event), jitter < 2 s.
    pub fn retail(customers: u64, events: u64) -> Config {
        Config {
            workload: Workload::Retail,
            customers,
            events,
            seed: 42,
            start_ms: DEFAULT_START_MS,
            ms_per_event: DAY_MS as f64 / 10_000_000.0,
            zipf_s: 1.05,
            max_jitter_ms: 1_999,
            mix: RETAIL_MIX,
        }
    }

    /// The abandoned-cart job: uniform customers, events spread over 6
    /// simulated hours (2 M events: ~10 per customer, ~36 min apart on
    /// average, so some carts are ordered in time and many are abandoned).
    pub fn cart(customers: u64, events: u64) -> Config {
        Config {
            workload: Workload::Cart,
            customers,
            events,
            seed: 42,
            start_ms: DEFAULT_START_MS,
            ms_per_event: (6 * HOUR_MS) as f64 / 2_000_000.0,
            zipf_s: 0.0,
            max_jitter_ms: 1_999,
            mix: RETAIL_MIX,
        }
    }

    /// The same config with another seed.
    pub fn with_seed(mut self, seed: u64) -> Config {
        self.seed = seed;
        self
    }

    /// The same config with its events spread over `hours` simulated
    /// hours: a tenth of the cart job's events over its 6 hours keeps each
    /// customer's rate (and so the share of abandoned carts) with a tenth
    /// of the customers.
    pub fn over_hours(mut self, hours: u64) -> Config {
        self.ms_per_event = (hours * HOUR_MS as u64) as f64 / self.events.max(1) as f64;
        self
    }

    /// Event time (before jitter) of event `index`.
    pub fn base_time(&self, index: u64) -> i64 {
        self.start_ms + (index as f64 * self.ms_per_event) as i64
    }
}

/// The workload as JSON lines (no trailing newline), one Segment call each.
pub fn generate(config: &Config) -> Generator {
    Generator::new(config.clone())
}

/// The workload parsed into engine events (panics on a line the model
/// rejects, which would be a bug of this generator).
pub fn events(config: &Config) -> impl Iterator<Item = Event> {
    generate(config).map(|line| parse(&line))
}

/// Parses one generated line.
pub fn parse(line: &str) -> Event {
    Event::from_json(line.as_bytes())
        .unwrap_or_else(|error| panic!("generated line rejected: {error}: {line}"))
}

/// The pipeline a measuring binary runs `customers` customers through,
/// announced on stdout so that its figures say what they measured. A
/// pipeline that does not compile leaves nothing to measure: its
/// diagnostics go to stderr and the process exits 2.
pub fn load_pipeline_for(
    path: &std::path::Path,
    customers: u64,
) -> kairos_engine::config::Pipeline {
    let pipeline = kairos_pipeline::load(path, &[]).unwrap_or_else(|diagnostics| {
        for diagnostic in diagnostics {
            eprintln!("{diagnostic}");
        }
        std::process::exit(2)
    });
    println!(
        "pipeline {} ({} triggers), {customers} customers",
        path.display(),
        pipeline.triggers.len()
    );
    pipeline
}

/// One identify (time zone, birthday, consent) and one page view for every
/// customer `0..customers`, in customer order, spread evenly over
/// `start_ms .. start_ms + span_ms`: a population of known, idle customers.
pub fn population(
    customers: u64,
    seed: u64,
    start_ms: i64,
    span_ms: i64,
) -> impl Iterator<Item = String> {
    let mut rng = SplitMix64::new(seed ^ 0x9090_a0a0_5151_e7e7);
    let step = span_ms as f64 / customers.max(1) as f64;
    (0..customers).flat_map(move |customer| {
        let time = start_ms + (customer as f64 * step) as i64;
        let mut identify = String::with_capacity(320);
        write_identify(
            &mut identify,
            customer,
            &format!("pop-{seed}-{customer}-i"),
            time,
        );
        let mut page = String::with_capacity(256);
        write_page(
            &mut page,
            &mut rng,
            customer,
            &format!("pop-{seed}-{customer}-p"),
            time + 1,
        );
        [identify, page]
    })
}

// ----- the generator -------------------------------------------------------

/// The per-customer memory of the generator: the current cart, so that
/// removals, orders and products[] are consistent with what was added.
#[derive(Clone, Copy, Default)]
struct CustomerSim {
    /// Carts ordered so far: the current cart is `c{customer}-{generation}`.
    cart_generation: u32,
    /// Products in the current cart (most recent 3).
    cart: [u32; 3],
    cart_len: u8,
    cart_quantity: [u8; 3],
}

/// The iterator [`generate`] returns.
pub struct Generator {
    config: Config,
    rng: SplitMix64,
    customers: Popularity,
    products: Popularity,
    sims: Vec<CustomerSim>,
    index: u64,
    orders: u64,
    complaints: u64,
}

impl Generator {
    fn new(config: Config) -> Generator {
        let customers = Popularity::new(config.customers.max(1), config.zipf_s, config.seed);
        let products = Popularity::new(PRODUCTS, 1.0, config.seed ^ 0x5eed);
        Generator {
            rng: SplitMix64::new(config.seed),
            sims: vec![CustomerSim::default(); config.customers.max(1) as usize],
            customers,
            products,
            config,
            index: 0,
            orders: 0,
            complaints: 0,
        }
    }

    /// Events generated so far.
    pub fn position(&self) -> u64 {
        self.index
    }

    fn next_line(&mut self) -> String {
        let index = self.index;
        self.index += 1;
        let jitter = if self.config.max_jitter_ms == 0 {
            0
        } else {
            self.rng.below(self.config.max_jitter_ms + 1) as i64
        };
        let time = self.config.base_time(index) - jitter;
        let customer = self.customers.sample(&mut self.rng);
        let message_id = format!("m{:x}-{index}", self.config.seed);
        let mut out = String::with_capacity(320);
        match self.config.workload {
            Workload::Retail => self.retail(&mut out, customer, &message_id, time),
            Workload::Cart => self.cart(&mut out, customer, &message_id, time),
        }
        out
    }

    fn cart(&mut self, out: &mut String, customer: u64, message_id: &str, time: i64) {
        let sim = self.sims[customer as usize];
        // 80 % adds, 20 % orders; an empty cart cannot be ordered.
        if sim.cart_len == 0 || self.rng.below(100) < 80 {
            let product = self.products.sample(&mut self.rng) as u32;
            track_head(out, "Product Added", customer, message_id, time);
            let _ = write!(
                out,
                r#","properties":{{"cart_id":"c{customer}-{}","product_id":"p{product}","price":{:.2}}}}}"#,
                sim.cart_generation,
                price_of(product)
            );
            self.add_to_cart(customer, product, 1);
        } else {
            let order = self.orders;
            self.orders += 1;
            let revenue = cart_value(&sim);
            track_head(out, "Order Completed", customer, message_id, time);
            let _ = write!(
                out,
                r#","properties":{{"order_id":"o{order}","cart_id":"c{customer}-{}","revenue":{revenue:.2}}}}}"#,
                sim.cart_generation
            );
            self.close_cart(customer);
        }
    }

    fn retail(&mut self, out: &mut String, customer: u64, message_id: &str, time: i64) {
        // The default mix sums to 1000: the same draws as when it was fixed.
        let total: u64 = self
            .config
            .mix
            .iter()
            .map(|weight| u64::from(*weight))
            .sum();
        let mut roll = self.rng.below(total.max(1));
        let mut kind = Kind::Page;
        for (weight, candidate) in self.config.mix.iter().zip(MIX_KINDS) {
            let weight = u64::from(*weight);
            if roll < weight {
                kind = candidate;
                break;
            }
            roll -= weight;
        }
        let rng = &mut self.rng;
        match kind {
            Kind::Page => write_page(out, rng, customer, message_id, time),
            Kind::Identify => write_identify(out, customer, message_id, time),
            Kind::ProductViewed => {
                let product = self.products.sample(rng) as u32;
                track_head(out, "Product Viewed", customer, message_id, time);
                let _ = write!(
                    out,
                    r#","properties":{{"product_id":"p{product}","category":"{}","price":{:.2}}}"#,
                    category_of(product),
                    price_of(product)
                );
                context_tail(out);
            }
            Kind::ProductAdded => {
                let product = self.products.sample(rng) as u32;
                let quantity = if rng.below(10) == 0 { 2 } else { 1 };
                let generation = self.sims[customer as usize].cart_generation;
                track_head(out, "Product Added", customer, message_id, time);
                let _ = write!(
                    out,
                    r#","properties":{{"cart_id":"c{customer}-{generation}","product_id":"p{product}","category":"{}","price":{:.2},"quantity":{quantity}}}"#,
                    category_of(product),
                    price_of(product)
                );
                context_tail(out);
                self.add_to_cart(customer, product, quantity);
            }
            Kind::ProductRemoved => {
                let sim = &mut self.sims[customer as usize];
                let product = if sim.cart_len > 0 {
                    // Removes the most recent line entirely.
                    sim.cart_len -= 1;
                    sim.cart[usize::from(sim.cart_len)]
                } else {
                    self.products.sample(rng) as u32
                };
                let generation = sim.cart_generation;
                track_head(out, "Product Removed", customer, message_id, time);
                let _ = write!(
                    out,
                    r#","properties":{{"cart_id":"c{customer}-{generation}","product_id":"p{product}","quantity":1}}"#
                );
                context_tail(out);
            }
            Kind::CartViewed => {
                let generation = self.sims[customer as usize].cart_generation;
                track_head(out, "Cart Viewed", customer, message_id, time);
                let _ = write!(
                    out,
                    r#","properties":{{"cart_id":"c{customer}-{generation}"}}"#
                );
                context_tail(out);
            }
            Kind::OrderCompleted => {
                let mut sim = self.sims[customer as usize];
                if sim.cart_len == 0 {
                    // Bought without a tracked cart (e.g. "buy now").
                    let lines = 1 + rng.below(2) as u8;
                    for line in 0..lines {
                        sim.cart[usize::from(line)] = self.products.sample(rng) as u32;
                        sim.cart_quantity[usize::from(line)] = 1;
                    }
                    sim.cart_len = lines;
                }
                let order = self.orders;
                self.orders += 1;
                track_head(out, "Order Completed", customer, message_id, time);
                let _ = write!(
                    out,
                    r#","properties":{{"order_id":"o{order}","cart_id":"c{customer}-{}","revenue":{:.2},"currency":"CNY","products":["#,
                    sim.cart_generation,
                    cart_value(&sim)
                );
                for line in 0..usize::from(sim.cart_len) {
                    if line > 0 {
                        out.push(',');
                    }
                    let product = sim.cart[line];
                    let _ = write!(
                        out,
                        r#"{{"product_id":"p{product}","price":{:.2},"quantity":{}}}"#,
                        price_of(product),
                        sim.cart_quantity[line]
                    );
                }
                out.push_str("]}");
                context_tail(out);
                self.close_cart(customer);
            }
            Kind::StoreVisited => {
                let store = STORES[rng.below(STORES.len() as u64) as usize].0;
                let method = ["qr", "pos", "wifi"][rng.below(3) as usize];
                track_head(out, "Store Visited", customer, message_id, time);
                let _ = write!(
                    out,
                    r#","properties":{{"store_id":"{store}","method":"{method}"}}"#
                );
                context_tail(out);
            }
            Kind::LocationUpdated => {
                // 30 % within ~2 km of a store, the rest 5-60 km away.
                let (_, lat, lon) = STORES[rng.below(STORES.len() as u64) as usize];
                let (lat, lon) = if rng.below(10) < 3 {
                    (
                        lat + rng.signed_unit() * 0.012,
                        lon + rng.signed_unit() * 0.012,
                    )
                } else {
                    let distance = 0.05 + rng.unit() * 0.5;
                    (
                        lat + distance * rng.signed_unit().signum(),
                        lon + distance * rng.signed_unit(),
                    )
                };
                track_head(out, "Location Updated", customer, message_id, time);
                let _ = write!(out, r#","properties":{{"lat":{lat:.5},"lon":{lon:.5}}}"#);
                context_tail(out);
            }
            Kind::PointsEarned => {
                let points = 10 + rng.below(491);
                track_head(out, "Points Earned", customer, message_id, time);
                let _ = write!(
                    out,
                    r#","properties":{{"points":{points},"source":"order"}}"#
                );
                context_tail(out);
            }
            Kind::MessageOpened => {
                let campaign = rng.below(40);
                let channel = ["push", "email", "sms"][rng.below(3) as usize];
                track_head(out, "Message Opened", customer, message_id, time);
                let _ = write!(
                    out,
                    r#","properties":{{"campaign_id":"cmp-{campaign}","channel":"{channel}"}}"#
                );
                context_tail(out);
            }
            Kind::ComplaintFiled => {
                let complaint = self.complaints;
                self.complaints += 1;
                let severity = match rng.below(10) {
                    0 => 1,
                    1..=3 => 2,
                    _ => 3,
                };
                let topic = ["delivery", "quality", "billing", "staff"][rng.below(4) as usize];
                track_head(out, "Complaint Filed", customer, message_id, time);
                let _ = write!(
                    out,
                    r#","properties":{{"complaint_id":"k{complaint}","severity":{severity},"topic":"{topic}"}}"#
                );
                context_tail(out);
            }
            Kind::ReviewSubmitted => {
                let product = self.products.sample(rng) as u32;
                let rating = [1, 2, 3, 4, 4, 5, 5, 5, 5, 5][rng.below(10) as usize];
                track_head(out, "Review Submitted", customer, message_id, time);
                let _ = write!(
                    out,
                    r#","properties":{{"product_id":"p{product}","rating":{rating}}}"#
                );
                context_tail(out);
            }
        }
    }

    fn add_to_cart(&mut self, customer: u64, product: u32, quantity: u8) {
        let sim = &mut self.sims[customer as usize];
        let len = usize::from(sim.cart_len);
        if let Some(line) = sim.cart[..len].iter().position(|p| *p == product) {
            sim.cart_quantity[line] = sim.cart_quantity[line].saturating_add(quantity);
        } else if len < sim.cart.len() {
            sim.cart[len] = product;
            sim.cart_quantity[len] = quantity;
            sim.cart_len += 1;
        } else {
            sim.cart.rotate_left(1);
            sim.cart_quantity.rotate_left(1);
            sim.cart[len - 1] = product;
            sim.cart_quantity[len - 1] = quantity;
        }
    }

    fn close_cart(&mut self, customer: u64) {
        let sim = &mut self.sims[customer as usize];
        sim.cart_generation += 1;
        sim.cart_len = 0;
    }
}

impl Iterator for Generator {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        (self.index < self.config.events).then(|| self.next_line())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.config.events - self.index).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

#[derive(Clone, Copy)]
enum Kind {
    ProductViewed,
    Page,
    ProductAdded,
    ProductRemoved,
    CartViewed,
    OrderCompleted,
    StoreVisited,
    LocationUpdated,
    PointsEarned,
    MessageOpened,
    ComplaintFiled,
    ReviewSubmitted,
    Identify,
}

/// Products in the catalog (Zipf s = 1 popularity).
const PRODUCTS: u64 = 5_000;

/// The stores of `pipelines/retail.toml` and one more far away.
const STORES: [(&str, f64, f64); 3] = [
    ("sh-nanjing-rd", 31.2352, 121.4747),
    ("sh-xintiandi", 31.2196, 121.4753),
    ("bj-sanlitun", 39.9334, 116.4541),
];

const TIMEZONES: [&str; 6] = [
    "Asia/Shanghai",
    "Asia/Shanghai",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Europe/Paris",
    "America/New_York",
];

const PAGES: [(&str, &str); 6] = [
    ("Home", "/"),
    ("Search", "/search"),
    ("Category", "/c/shoes"),
    ("Promotions", "/promo"),
    ("Account", "/account"),
    ("Help", "/help"),
];

fn price_of(product: u32) -> f64 {
    let hash = mix64(u64::from(product) ^ 0x7072_6963_6500_0000);
    5.0 + (hash % 50_000) as f64 / 100.0
}

fn category_of(product: u32) -> String {
    format!("cat-{:02}", mix64(u64::from(product)) % 40)
}

fn cart_value(sim: &CustomerSim) -> f64 {
    (0..usize::from(sim.cart_len))
        .map(|line| price_of(sim.cart[line]) * f64::from(sim.cart_quantity[line]))
        .sum()
}

fn track_head(out: &mut String, event: &str, customer: u64, message_id: &str, time: i64) {
    let _ = write!(
        out,
        r#"{{"type":"track","event":"{event}","userId":"u{customer}","messageId":"{message_id}","timestamp":""#
    );
    write_rfc3339(out, time);
    out.push('"');
}

/// The `context` an SDK adds (a small one) and the closing brace.
fn context_tail(out: &mut String) {
    out.push_str(r#","context":{"library":{"name":"analytics-ios","version":"4.1.8"}}}"#);
}

fn write_page(out: &mut String, rng: &mut SplitMix64, customer: u64, message_id: &str, time: i64) {
    let (name, path) = PAGES[rng.below(PAGES.len() as u64) as usize];
    let _ = write!(
        out,
        r#"{{"type":"page","name":"{name}","userId":"u{customer}","messageId":"{message_id}","timestamp":""#
    );
    write_rfc3339(out, time);
    let _ = write!(
        out,
        r#"","properties":{{"path":"{path}","title":"{name}"}}"#
    );
    context_tail(out);
}

/// An identify call. A person's traits are the same every time they are
/// sent (apps identify at every launch), so they are drawn from the customer
/// number, not from the event stream.
fn write_identify(out: &mut String, customer: u64, message_id: &str, time: i64) {
    let rng = &mut SplitMix64::new(customer ^ 0x1d3e_7f00_2b5c_4a91);
    let timezone = TIMEZONES[rng.below(TIMEZONES.len() as u64) as usize];
    let year = 1960 + rng.below(46);
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28);
    let bit = |rng: &mut SplitMix64, percent: u64| rng.below(100) < percent;
    let (push, email, sms, wechat) = (bit(rng, 70), bit(rng, 60), bit(rng, 30), bit(rng, 50));
    let _ = write!(
        out,
        r#"{{"type":"identify","userId":"u{customer}","messageId":"{message_id}","timestamp":""#
    );
    write_rfc3339(out, time);
    let _ = write!(
        out,
        r#"","traits":{{"timezone":"{timezone}","birthday":"{year}-{month:02}-{day:02}","consent":{{"push":{push},"email":{email},"sms":{sms},"wechat":{wechat}}}}}"#
    );
    context_tail(out);
}

// ----- time ----------------------------------------------------------------

/// Appends `ms` (since the epoch) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn write_rfc3339(out: &mut String, ms: i64) {
    kairos_model::Timestamp(ms).with_rfc3339(|text| out.push_str(text));
}

/// `ms` as RFC 3339.
pub fn rfc3339(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(&mut out, ms);
    out
}

// ----- randomness ----------------------------------------------------------

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, good enough here.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in `0..bound` (Lemire's multiply-shift; bias < 2^-40 here).
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[-1, 1)`.
    pub fn signed_unit(&mut self) -> f64 {
        self.unit() * 2.0 - 1.0
    }
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Zipf-distributed choice of `0..n`: rank `k` (1-based) has weight
/// `1 / k^s`; ranks are scattered over ids by a fixed bijection so that the
/// most popular customers are not simply `u0`, `u1`, ...
struct Popularity {
    n: u64,
    /// Cumulative weights, normalised (empty when uniform).
    cdf: Vec<f64>,
    stride: u64,
    offset: u64,
}

impl Popularity {
    fn new(n: u64, s: f64, seed: u64) -> Popularity {
        let cdf = if s == 0.0 {
            Vec::new()
        } else {
            let mut total = 0.0;
            let mut cdf: Vec<f64> = (1..=n)
                .map(|rank| {
                    total += (rank as f64).powf(-s);
                    total
                })
                .collect();
            cdf.iter_mut().for_each(|c| *c /= total);
            cdf
        };
        // A stride near n / golden ratio, coprime with n: neighbouring
        // ranks land far apart.
        let mut stride = ((n as f64 * 0.618_033_988_75) as u64).max(1);
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        Popularity {
            n,
            cdf,
            stride,
            offset: mix64(seed) % n,
        }
    }

    fn sample(&self, rng: &mut SplitMix64) -> u64 {
        let rank = if self.cdf.is_empty() {
            rng.below(self.n)
        } else {
            let u = rng.unit();
            (self.cdf.partition_point(|c| *c < u) as u64).min(self.n - 1)
        };
        ((u128::from(rank) * u128::from(self.stride) + u128::from(self.offset))
            % u128::from(self.n)) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use kairos_model::Timestamp;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn time_formatting_matches_the_model() {
        for ms in [
            0,
            DEFAULT_START_MS,
            DEFAULT_START_MS + 86_399_999,
            951_782_400_123,
        ] {
            let text = rfc3339(ms);
            assert_eq!(Timestamp::parse_rfc3339(&text).unwrap().0, ms, "{text}");
        }
        assert_eq!(rfc3339(DEFAULT_START_MS), "2026-11-23T00:00:00.000Z");
    }

    #[test]
    fn same_seed_same_lines_other_seed_other_lines() {
        let config = Config::retail(1000, 2000);
        let a: Vec<String> = generate(&config).collect();
        let b: Vec<String> = generate(&config).collect();
        let c: Vec<String> = generate(&config.clone().with_seed(7)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_retail_line_parses_with_unique_ids_and_bounded_disorder() {
        let config = Config::retail(10_000, 50_000);
        let mut names: HashMap<String, u64> = HashMap::new();
        let mut ids = HashSet::new();
        let mut newest = i64::MIN / 2;
        for line in generate(&config) {
            let event = parse(&line);
            assert!(ids.insert(event.message_id.clone()));
            assert!(event.time.0 > newest - 2_000, "{line}");
            newest = newest.max(event.time.0);
            *names.entry(event.name.to_string()).or_default() += 1;
        }
        let share = |name: &str| names.get(name).copied().unwrap_or(0) as f64 / 50_000.0;
        assert!((share("Product Viewed") - 0.45).abs() < 0.02);
        assert!((share("page") - 0.20).abs() < 0.02);
        assert!((share("Order Completed") - 0.05).abs() < 0.01);
        assert!(share("identify") > 0.005);
        assert!(share("Complaint Filed") > 0.002);
        assert_eq!(names.len(), 13, "{names:?}");
    }

    #[test]
    fn customer_popularity_is_skewed() {
        let config = Config::retail(100_000, 100_000);
        let mut counts: HashMap<String, u64> = HashMap::new();
        for event in events(&config) {
            *counts.entry(event.customer_key().to_string()).or_default() += 1;
        }
        let top = counts.values().copied().max().unwrap();
        // Zipf s = 1.05 over 1e5: the top customer gets several percent.
        assert!(top > 3_000, "top customer has {top} events");
        assert!(counts.len() > 20_000);
    }

    #[test]
    fn a_mix_chooses_the_kinds_of_event_and_names_its_mistakes() {
        let mut config = Config::retail(100, 200);
        config.mix = parse_mix("product_viewed=0,page=0,product_added=0,product_removed=0,cart_viewed=0,order_completed=0,location_updated=0,points_earned=0,message_opened=0,complaint_filed=0,review_submitted=0,identify=0,store_visited=7").unwrap();
        assert!(generate(&config).all(|line| line.contains("\"Store Visited\"")));
        assert_eq!(parse_mix("").unwrap(), RETAIL_MIX);
        for (text, says) in [
            ("store=5", "accepted: product_viewed, page"),
            ("page", "not NAME=WEIGHT"),
            ("page=-1", "whole number"),
        ] {
            let error = parse_mix(text).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
        let all_zero = MIX_NAMES.map(|name| format!("{name}=0")).join(",");
        assert!(parse_mix(&all_zero)
            .unwrap_err()
            .contains("every weight is 0"));
    }

    #[test]
    fn cart_job_is_small_adds_and_orders() {
        let lines: Vec<String> = generate(&Config::cart(200, 10_000)).collect();
        let average = lines.iter().map(String::len).sum::<usize>() / lines.len();
        assert!((150..=210).contains(&average), "{average} bytes");
        for line in &lines {
            let event = parse(line);
            assert!(event.name == "Product Added" || event.name == "Order Completed");
            assert!(event.property_text("cart_id").is_some());
        }
    }

    #[test]
    fn population_has_identify_and_page_for_everyone() {
        let lines: Vec<String> = population(100, 1, DEFAULT_START_MS, 3_600_000).collect();
        assert_eq!(lines.len(), 200);
        let first = parse(&lines[0]);
        assert_eq!(first.name, "identify");
        assert!(first.timezone.is_some());
        assert!(first.traits.get("birthday").is_some());
        assert_eq!(parse(&lines[199]).customer_key(), "u99");
    }
}
