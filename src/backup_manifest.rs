//! The checksums of a backup: `MANIFEST.sha256` in the backup directory, one line per file
//! in `sha256sum` format (`HEX  NAME`), so that `sha256sum -c MANIFEST.sha256` checks a copy
//! anywhere. `scepd restore` verifies every file against it before copying anything.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "MANIFEST.sha256";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{} does not match its checksum in {MANIFEST}: the backup was damaged in transit or on storage; \
         nothing was restored: copy the backup again from where it was made",
        path.display()
    )]
    Mismatch { path: PathBuf },
    #[error("{} is not listed in {MANIFEST}: nothing was restored", path.display())]
    Unlisted { path: PathBuf },
    #[error("{}: line {line} is not `SHA256  NAME`", path.display())]
    Malformed { path: PathBuf, line: usize },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ManifestError + '_ {
    move |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The SHA-256 of a file, read in chunks (a store can be large).
pub fn file_sha256(path: &Path) -> Result<[u8; 32], ManifestError> {
    let mut file = fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf).map_err(io(path))? {
            0 => return Ok(hasher.finalize().into()),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// Writes the manifest of `files` (names inside `dir`), durably, after the files themselves.
pub fn write(dir: &Path, files: &[&str]) -> Result<(), ManifestError> {
    let mut text = String::new();
    for name in files {
        text.push_str(&format!("{}  {name}\n", hex::encode(file_sha256(&dir.join(name))?)));
    }
    let path = dir.join(MANIFEST);
    fs::write(&path, text).map_err(io(&path))?;
    fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io(&path))
}

/// Checks `files` of the backup `dir` against its manifest. `Ok(false)`: the backup has no
/// manifest (made by a scepd from before manifests), so nothing could be checked.
pub fn verify(dir: &Path, files: &[&str]) -> Result<bool, ManifestError> {
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        read => read.map_err(io(&path))?,
    };
    let mut listed = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let (sum, name) = line.split_once("  ").ok_or(ManifestError::Malformed {
            path: path.clone(),
            line: i + 1,
        })?;
        listed.insert(name.to_string(), sum.to_ascii_lowercase());
    }
    for name in files {
        let file = dir.join(name);
        let expected = listed
            .get(*name)
            .ok_or(ManifestError::Unlisted { path: file.clone() })?;
        if hex::encode(file_sha256(&file)?) != *expected {
            return Err(ManifestError::Mismatch { path: file });
        }
    }
    Ok(true)
}
