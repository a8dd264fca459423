//! Write keys: which source each is, and how fast it may send.

use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// The `--keys` file: `[[key]] write_key = "..." source = "..." rate_per_second = N`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    key: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    write_key: String,
    source: String,
    rate_per_second: Option<u32>,
}

/// One write key's source and rate.
pub struct Source {
    pub name: String,
    rate: Option<Mutex<Bucket>>,
}

/// A token bucket holding up to a second's worth of events.
struct Bucket {
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Source {
    /// Takes `events` from the key's rate; `Err(seconds)` to wait when it
    /// has not that many left.
    pub fn take(&self, events: usize) -> Result<(), u64> {
        let Some(bucket) = &self.rate else {
            return Ok(());
        };
        let mut bucket = bucket.lock().expect("the bucket's lock");
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64() * bucket.per_second;
        bucket.tokens = (bucket.tokens + refill).min(bucket.per_second);
        bucket.at = now;
        // A batch larger than a second's worth passes with a full bucket
        // and leaves a debt to wait off; asking for more than the bucket
        // holds would refuse it forever.
        let wanted = events as f64;
        let needed = wanted.min(bucket.per_second);
        if bucket.tokens >= needed {
            bucket.tokens -= wanted;
            Ok(())
        } else {
            let short = needed - bucket.tokens;
            Err((short / bucket.per_second).ceil().max(1.0) as u64)
        }
    }
}

/// Every write key.
pub struct Keys(HashMap<String, Source>);

impl Keys {
    /// Reads and checks the `--keys` file; the error names the file and
    /// what is wrong with it.
    pub fn load(path: &Path) -> Result<Keys, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: cannot read: {error}", path.display()))?;
        Keys::parse(&text).map_err(|problem| format!("{}: {problem}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Keys, String> {
        let file: KeysFile = toml::from_str(text).map_err(|error| {
            format!("{error}; accepted: [[key]] tables with write_key, source and an optional rate_per_second")
        })?;
        let mut keys = HashMap::new();
        for (index, entry) in file.key.into_iter().enumerate() {
            if entry.write_key.trim().is_empty() || entry.source.trim().is_empty() {
                return Err(format!(
                    "key {}: write_key and source must not be empty; accepted: any other text",
                    index + 1
                ));
            }
            if entry.rate_per_second == Some(0) {
                return Err(format!(
                    "key {}: rate_per_second is 0; accepted: at least 1, or none for no limit",
                    index + 1
                ));
            }
            let rate = entry.rate_per_second.map(|per_second| {
                Mutex::new(Bucket {
                    per_second: f64::from(per_second),
                    tokens: f64::from(per_second),
                    at: Instant::now(),
                })
            });
            let source = Source {
                name: entry.source,
                rate,
            };
            if keys.insert(entry.write_key, source).is_some() {
                return Err(format!(
                    "key {}: the same write_key twice; accepted: each write_key once",
                    index + 1
                ));
            }
        }
        if keys.is_empty() {
            return Err("no [[key]]; accepted: at least one".into());
        }
        Ok(Keys(keys))
    }

    pub fn get(&self, write_key: &str) -> Option<&Source> {
        self.0.get(write_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_and_their_mistakes_named() {
        let keys =
            Keys::parse("[[key]]\nwrite_key = \"wk_web\"\nsource = \"web\"\nrate_per_second = 2\n")
                .unwrap();
        let web = keys.get("wk_web").expect("the key");
        assert_eq!(web.name, "web");
        assert_eq!(web.take(2), Ok(()));
        assert_eq!(web.take(1), Err(1), "the second's two are spent");
        let batchy =
            Keys::parse("[[key]]\nwrite_key = \"k\"\nsource = \"s\"\nrate_per_second = 2\n")
                .unwrap();
        let batchy = batchy.get("k").unwrap();
        assert_eq!(
            batchy.take(5),
            Ok(()),
            "a batch over a second's worth passes a full bucket"
        );
        assert_eq!(
            batchy.take(1),
            Err(2),
            "and leaves a debt of 3: 2 s until one more is free"
        );
        assert!(keys.get("other").is_none());
        for (text, says) in [
            ("[[key]]\nwrite_key = \"a\"\n", "missing field `source`"),
            ("[[key]]\nwrite_key = \"a\"\nsource = \"s\"\nrate_per_second = 0\n", "rate_per_second is 0"),
            ("[[key]]\nwrite_key = \"a\"\nsource = \"s\"\n[[key]]\nwrite_key = \"a\"\nsource = \"t\"\n", "the same write_key twice"),
            ("key = []\n", "no [[key]]"),
        ] {
            let problem = Keys::parse(text).err().expect(text);
            assert!(problem.contains(says), "{problem}");
        }
    }
}
