//! One process at a time in a data directory. `kairos run` holds its lock
//! for as long as it runs, and `kairos catalog load` while it writes: a
//! second `kairos run` would replay and publish alongside the first, and a
//! load under a running engine would change an index whose vectors the
//! engine has already read. The lock is the operating system's (released
//! when the process ends, however it ends), on `DIR/kairos.lock`, which
//! names its holder for the message the next one gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// Held while alive.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the lock of `dir` (created if missing) for `holder` (the command,
/// for the message another one gets). `Ok(Err(message))`: held by another
/// process, with who holds it and what is accepted.
pub fn lock(dir: &Path, holder: &str) -> anyhow::Result<Result<DataDirLock, String>> {
    std::fs::create_dir_all(dir)
        .map_err(|error| anyhow::anyhow!("creating data directory {}: {error}", dir.display()))?;
    let path = dir.join("kairos.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|error| anyhow::anyhow!("opening {}: {error}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut named = String::new();
            let _ = file.read_to_string(&mut named);
            let named = named.trim();
            let who = if named.is_empty() {
                "another kairos process"
            } else {
                named
            };
            return Ok(Err(format!(
                "the data directory {} is in use by {who}; accepted: a data directory no other kairos process uses (to change a running engine's catalog, publish the changes with `kairos catalog publish`)",
                dir.display()
            )));
        }
        Err(TryLockError::Error(error)) => {
            anyhow::bail!("locking {}: {error}", path.display())
        }
    }
    let holder = format!("{holder} (pid {})\n", std::process::id());
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(holder.as_bytes())?;
    Ok(Ok(DataDirLock { _file: file }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = lock(&data, "kairos run").unwrap().unwrap();
        // Locks are per open file: a second open in this process conflicts
        // as another process's would.
        let refused = lock(&data, "kairos catalog load").unwrap().unwrap_err();
        assert!(refused.contains("in use by kairos run (pid "), "{refused}");
        assert!(refused.contains("kairos catalog publish"), "{refused}");
        drop(first);
        lock(&data, "kairos catalog load").unwrap().unwrap();
    }
}
