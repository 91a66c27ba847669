//! Files (feature `std`): reading model files without trusting them, and writing files
//! atomically — the one helper behind [`Checkpoint::save`](crate::Checkpoint::save), the CLI's
//! outputs and the trainer's checkpoints.
//!
//! * [`read_model_file`] reads a `.safetensors` file only if it is a regular file whose size is
//!   exactly what its header declares, and reads no more than that: `/dev/zero`, a FIFO, a
//!   folder or a file with a lying header is an error before anything large is allocated.
//! * [`write_atomic`] writes through a temporary file in the same folder
//!   (`.<name>.tmp-<pid>`), fsyncs it, renames it over the target and fsyncs the folder, so a
//!   crash at any moment leaves either the old file or the new one, never a mix.
//!   [`remove_stale_temps`] deletes the temporary files that processes killed mid-write left.

use std::format;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

use crate::error::{Error, Result};
use crate::limits::MAX_HEADER_BYTES;
use crate::safetensors_io::sniff;

/// The temporary file [`write_atomic`] writes `path` through, for process `pid`.
pub fn temp_path(path: &Path, pid: u32) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Io(format!("{}: not a file path", path.display())))?;
    Ok(folder_of(path).join(format!(".{}.tmp-{pid}", name.to_string_lossy())))
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `bytes` to `path` atomically: temporary file in the same folder, fsync, rename,
/// fsync of the folder. On failure the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, &|| Ok(()))
}

/// [`write_atomic`] with `before_rename` run after the data is written and synced and before
/// it replaces `path` (tests simulate a crash there: an error from it leaves `path` as it was).
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    before_rename: &dyn Fn() -> std::io::Result<()>,
) -> Result<()> {
    let err = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let dir = folder_of(path);
    let tmp = temp_path(path, std::process::id())?;
    let result = (|| {
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        before_rename()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable; not every platform lets a folder be opened.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Whether process `pid` is running. Where that cannot be told (no `/proc`), `false`: a
/// temporary file of another process is then taken for a dead one's.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        Path::new("/proc").join(pid.to_string()).exists()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Removes the temporary files that [`write_atomic`] left beside `path` when the process
/// writing them died (`.<name>.tmp-<pid>` of a process that no longer runs); returns them.
/// Temporary files of running processes are left alone (on Linux, where that can be told).
pub fn remove_stale_temps(path: &Path) -> Result<Vec<PathBuf>> {
    let Some(name) = path.file_name() else {
        return Ok(Vec::new());
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let dir = folder_of(path);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Io(format!("{}: {e}", dir.display()))),
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if alive(pid) {
            continue;
        }
        let p = entry.path();
        std::fs::remove_file(&p).map_err(|e| Error::Io(format!("{}: {e}", p.display())))?;
        removed.push(p);
    }
    removed.sort();
    Ok(removed)
}

/// Reads a single-file `.safetensors` model: a regular file whose size is exactly
/// `8 + header + data` as its header declares. Nothing beyond the declared size is read, and
/// a header over [`MAX_HEADER_BYTES`] or a size that does not match is an
/// [`Error::MalformedFile`] before the data is read.
pub fn read_model_file(path: &Path) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| Error::Io(e.to_string());
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::Io(String::from(if meta.is_dir() {
            "a folder without params.safetensors and config.json, not a model file"
        } else {
            "not a regular file (a device, pipe or socket cannot be a model file)"
        })));
    }
    let size = meta.len();
    let mut head = [0u8; 8];
    let got = read_up_to(&mut file, &mut head).map_err(io)?;
    if let Some(what) = sniff(&head[..got]) {
        return Err(Error::MalformedFile(format!("this is {what}")));
    }
    if got < 8 {
        return Err(Error::MalformedFile(format!(
            "the file is {size} bytes long, too short for the 8-byte header length"
        )));
    }
    let n = u64::from_le_bytes(head);
    if n > MAX_HEADER_BYTES as u64 || n > size - 8 {
        return Err(Error::MalformedFile(format!(
            "the header claims {n} bytes but {} follow the length field{}",
            size - 8,
            if n > MAX_HEADER_BYTES as u64 {
                format!(" (and a header may have at most {MAX_HEADER_BYTES})")
            } else {
                " (truncated file?)".into()
            }
        )));
    }
    let mut header = std::vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    let data = declared_data_len(&header)?;
    let total = 8 + n + data;
    if total != size {
        return Err(Error::MalformedFile(format!(
            "the header declares {total} bytes in all but the file has {size}{}",
            if total > size {
                " (truncated file?)"
            } else {
                ""
            }
        )));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(total as usize)
        .map_err(|_| Error::OutOfMemory {
            what: "the model file".into(),
            bytes: total,
        })?;
    bytes.extend_from_slice(&head);
    bytes.extend_from_slice(&header);
    drop(header);
    (&mut file).take(data).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 != total {
        return Err(Error::MalformedFile(format!(
            "the file shrank while it was read ({} of {total} bytes)",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The bytes of a regular file of at most `max` bytes: a folder, a device (`/dev/zero`), a pipe
/// or a larger file is an [`Error::Io`] before anything is read.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| Error::Io(e.to_string());
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Error::Io(
            "not a regular file (a folder, device, pipe or socket)".into(),
        ));
    }
    if meta.len() > max {
        return Err(Error::Io(format!(
            "the file has {} bytes, more than the {max} it may have",
            meta.len()
        )));
    }
    let mut bytes = crate::tensor::try_vec(meta.len() as usize, "a file's bytes")?;
    file.take(max).read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Fills as much of `buf` as the reader has; the number of bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The length of the data section a safetensors header declares: the largest end offset.
fn declared_data_len(header: &[u8]) -> Result<u64> {
    let bad = |m: String| Error::MalformedFile(m);
    let text =
        core::str::from_utf8(header).map_err(|e| bad(format!("the header is not UTF-8: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("the header is not JSON: {e}")))?;
    let map = json
        .as_object()
        .ok_or_else(|| bad("the header is not a JSON object".into()))?;
    let mut end = 0u64;
    for (name, v) in map {
        if name == "__metadata__" {
            continue;
        }
        let offsets = v
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| o.get(1))
            .and_then(|e| e.as_u64())
            .ok_or_else(|| bad(format!("tensor `{name}` has no valid data_offsets")))?;
        end = end.max(offsets);
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cappa-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn atomic_writes_replace_or_keep_the_file() {
        let d = temp("atomic");
        let p = d.join("out.bin");
        write_atomic(&p, b"one").unwrap();
        let crash = || Err(std::io::Error::other("simulated crash"));
        assert!(write_atomic_with(&p, b"two", &crash).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "no temporary file left"
        );
        write_atomic(&p, b"three").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn stale_temporary_files_of_dead_processes_are_removed() {
        let d = temp("stale");
        let p = d.join("checkpoint.safetensors");
        // A pid far above any real one (Linux allows at most 2^22).
        let dead = temp_path(&p, 4_000_000_000).unwrap();
        let mine = temp_path(&p, std::process::id()).unwrap();
        let other = d.join(".model.safetensors.tmp-4000000000");
        for f in [&dead, &mine, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(&p).unwrap(), std::vec![dead.clone()]);
        assert!(!dead.exists() && mine.exists() && other.exists());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn model_files_are_read_only_as_far_as_declared() {
        let d = temp("read");
        let good = crate::safetensors_io::serialize(
            &[crate::safetensors_io::OwnedTensor::f32(
                "w",
                &crate::HostTensor::new(&[2], std::vec![1.0, 2.0]).unwrap(),
            )],
            &[],
        )
        .unwrap();
        let p = d.join("m.safetensors");
        std::fs::write(&p, &good).unwrap();
        assert_eq!(read_model_file(&p).unwrap(), good);
        let mut longer = good.clone();
        longer.extend_from_slice(&[0; 100]);
        std::fs::write(&p, &longer).unwrap();
        let e = read_model_file(&p).unwrap_err().to_string();
        assert!(e.contains("declares") && e.contains("has"), "{e}");
        std::fs::write(&p, b"PK\x03\x04 rest of a zip").unwrap();
        let e = read_model_file(&p).unwrap_err().to_string();
        assert!(e.contains("cappa convert"), "{e}");
        let e = read_model_file(&d).unwrap_err().to_string();
        assert!(e.contains("folder"), "{e}");
        #[cfg(unix)]
        {
            let e = read_model_file(Path::new("/dev/zero"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
        std::fs::remove_dir_all(&d).ok();
    }
}
